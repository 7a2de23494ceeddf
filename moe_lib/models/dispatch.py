"""Grouped sparse dispatch for the MoE layer: tokens sorted by expert, experts run on their groups.

``grouped_forward(x, routing, experts)`` computes y(x) = sum_j w_j(x) f_{e_j(x)}(x) like the loop in
``MoE.forward``. The N k (token, slot) pairs are sorted by expert (a stable argsort), the experts
run on their groups of rows, and the outputs are gathered back to (N, k, d_out) and combined with
the gate weights. Two forms run the experts (``form="auto"`` picks segments when no gradient is
needed, padded otherwise):

- **segments** (inference): each expert's layers run on its contiguous block of sorted rows (views,
  no padding), the last layer written in place into one output. With T = ``torch.get_num_threads()``
  > 1 the experts are cut into T contiguous groups of about equal rows and each group runs in its
  own thread on single-threaded ops (the intra-op thread count is 1 for the duration of the call).
  A small multi-threaded GEMM waits for all threads at every op, which costs most when other
  processes share the cores; whole experts per thread do not synchronise at all.
- **padded** (autograd): each expert's first C rows go into a zero-padded block (E, C, d) and every
  affine map runs as one ``torch.baddbmm`` over the stacked weights (E, out, in); experts with more
  than C rows run the rest as one matmul per layer (views, no copy). A constant number of large,
  differentiable operations.

C minimises E C + sum_e [c_e > C] (overflow_cost + c_e - C) over the expert loads c_e: padding
rows are paid for in the batched matmul, an overflowing expert pays one small op per layer (about
``overflow_cost`` rows' worth of time). ``C = max c_e`` is plain padded bmm.

Stacked weights: in inference (no parameter needs a gradient) the experts' parameters are re-homed
once into stacked tensors and each parameter becomes a view of its slice, as ``nn.LSTM``'s
``flatten_parameters`` does; the stack then always holds the current values and costs no copy per
call. It is rebuilt when any parameter no longer points into it (``.to()``, reassignment). When
gradients are needed the stack is ``torch.stack`` of the parameters, so autograd reaches them.

``benchmarks/dispatch.py`` measures both forms, the expert calls alone and ``torch._grouped_mm`` as
floors, and one pass over the weights (with many experts, reading every expert's weights once per
forward bounds what any dispatch can reach).

Experts that are not uniform ``MLP``s (other modules, mixed shapes, forward hooks) take a sorted
segment loop that calls each expert module on its rows, with the same results.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import validate
from .experts import MLP, PReLU


@dataclass
class _Stack:
    """Per layer: weights (E, out, in), biases (E, out); per hidden activation: slopes (E,) or None."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    slopes: list[torch.Tensor | None]
    params: list[nn.Parameter]
    ptrs: list[int]
    ids: tuple[int, ...]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _mlp_params(m: MLP) -> tuple[list[nn.Linear], list[PReLU | None]]:
    lins, acts = [], []
    for mod in m.net:
        if isinstance(mod, nn.Linear):
            lins.append(mod)
        else:
            acts.append(mod if isinstance(mod, PReLU) else None)
    return lins, acts


def _uniform_mlps(experts: Sequence[nn.Module]) -> bool:
    """True when every expert is an ``MLP`` of one shape, activation and dtype, without hooks."""
    first = experts[0]
    if not isinstance(first, MLP):
        return False
    sig = [(type(m), tuple(p.shape), p.dtype) for m in first.net for p in m.parameters()]
    for m in experts:
        if not isinstance(m, MLP) or m._forward_hooks or m._forward_pre_hooks:
            return False
        if any(sub._forward_hooks or sub._forward_pre_hooks for sub in m.net):
            return False
        if [(type(s), tuple(p.shape), p.dtype) for s in m.net for p in s.parameters()] != sig:
            return False
    return True


def _flatten(experts: Sequence[MLP]) -> _Stack:
    """Re-home the experts' parameters into stacked tensors (each parameter a view of its slice)."""
    per = [_mlp_params(m) for m in experts]
    weights, biases, slopes, params = [], [], [], []
    with torch.no_grad():
        for i in range(len(per[0][0])):
            for attr, out in (("weight", weights), ("bias", biases)):
                stack = torch.stack([getattr(lins[i], attr).detach() for lins, _ in per])
                for e, (lins, _) in enumerate(per):
                    p = getattr(lins[i], attr)
                    p.data = stack[e]
                    params.append(p)
                out.append(stack)
        for i in range(len(per[0][1])):
            if per[0][1][i] is None:
                slopes.append(None)
                continue
            stack = torch.stack([acts[i].a.detach() for _, acts in per])
            for e, (_, acts) in enumerate(per):
                acts[i].a.data = stack[e]
                params.append(acts[i].a)
            slopes.append(stack)
    return _Stack(weights, biases, slopes, params, [p.data_ptr() for p in params],
                  tuple(id(m) for m in experts))


def _current_params(experts: Sequence[MLP]) -> list[nn.Parameter]:
    """The parameters in ``_flatten``'s order (weights, biases per layer, then slopes), read cheaply."""
    per = [[mod for mod in m.net._modules.values() if isinstance(mod, nn.Linear)] for m in experts]
    out = [lins[i]._parameters[a] for i in range(len(per[0])) for a in ("weight", "bias") for lins in per]
    acts = [[mod for mod in m.net._modules.values() if isinstance(mod, PReLU)] for m in experts]
    out += [a[i]._parameters["a"] for i in range(len(acts[0])) for a in acts]
    return out


def stacked_weights(experts: Sequence[MLP]) -> tuple[_Stack, bool]:
    """The experts' stacked parameters and whether autograd must reach them.

    Without gradients: the cached zero-copy stack (re-homed on first use or when stale). With
    gradients: ``torch.stack`` of the parameters (a differentiable copy).
    """
    key = experts[0]
    st = _CACHE.get(key)
    ids = tuple(id(m) for m in experts)
    current = _current_params(experts)
    if (st is None or st.ids != ids or len(current) != len(st.params)
            or any(p is not q or p.data_ptr() != ptr
                   for p, q, ptr in zip(current, st.params, st.ptrs, strict=True))):
        st = _flatten(experts)
        _CACHE[key] = st
    need_grad = torch.is_grad_enabled() and any(p.requires_grad for p in current)
    if not need_grad:
        return st, False
    per = [_mlp_params(m) for m in experts]
    w = [torch.stack([lins[i].weight for lins, _ in per]) for i in range(len(st.weights))]
    b = [torch.stack([lins[i].bias for lins, _ in per]) for i in range(len(st.biases))]
    s = [None if st.slopes[i] is None else torch.stack([acts[i].a for _, acts in per])
         for i in range(len(st.slopes))]
    return _Stack(w, b, s, st.params, st.ptrs, ids), True


def choose_capacity(counts: torch.Tensor, overflow_cost: float = 64.0) -> int:
    """Padded group size C minimising E C + sum over experts above C of (overflow_cost + excess)."""
    counts = counts.to(torch.int64)
    cand = torch.unique(torch.cat([counts, counts.new_zeros(1)]))
    excess = (counts[None, :] - cand[:, None]).clamp(min=0)
    cost = counts.numel() * cand + excess.sum(1) + overflow_cost * (excess > 0).sum(1)
    return int(cand[torch.argmin(cost)])


def _check(x: torch.Tensor, routing, experts: Sequence[nn.Module]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(experts) == 0:
        raise ValueError("experts: expected at least one expert, got none")
    x = validate.tensor(x, "x", ndim=2, finite=False)  # NaN propagates, as in the loop
    if not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor, got dtype {x.dtype}")
    pdtype = next((p.dtype for p in experts[0].parameters()), x.dtype)
    if x.dtype != pdtype:
        raise ValueError(f"x: expected dtype {pdtype} (the experts' parameter dtype), got {x.dtype}")
    d_in = getattr(experts[0], "d_in", None)
    if d_in is not None and x.shape[1] != d_in:
        raise ValueError(f"x: expected last dimension {d_in} (the experts' d_in), got shape {tuple(x.shape)}")
    idx, w = getattr(routing, "idx", None), getattr(routing, "weight", None)
    if not isinstance(idx, torch.Tensor) or not isinstance(w, torch.Tensor):
        raise ValueError(f"routing: expected a Routing with tensors idx and weight, "
                         f"got {type(routing).__name__}")
    if idx.ndim != 2 or idx.shape[0] != x.shape[0] or idx.shape[1] < 1:
        raise ValueError(f"routing.idx: expected shape ({x.shape[0]}, k) with k >= 1 (one row per row "
                         f"of x), got {tuple(idx.shape)}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"routing.idx: expected an integer tensor, got dtype {idx.dtype}")
    if w.shape != idx.shape:
        raise ValueError(f"routing.weight: expected shape {tuple(idx.shape)} (as routing.idx), "
                         f"got {tuple(w.shape)}")
    if not w.is_floating_point():
        raise ValueError(f"routing.weight: expected a floating-point tensor, got dtype {w.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(experts)):
        raise ValueError(f"routing.idx: expected expert indices in [0, {len(experts) - 1}], "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    return idx.to(torch.int64), w.to(x.dtype)


def _act(h: torch.Tensor, slope: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    if slope is None:
        return h.relu_() if inplace else torch.relu(h)
    return torch.maximum(h, slope * h)


FORMS = ("auto", "segments", "padded")


def grouped_forward(x: torch.Tensor, routing, experts: Sequence[nn.Module], d_out: int | None = None,
                    *, overflow_cost: float = 64.0, form: str = "auto") -> torch.Tensor:
    """Sparse MoE output sum_j routing.weight[:, j] * experts[routing.idx[:, j]](x), shape (N, d_out).

    Exact for any k and routing (empty experts included), float32 and float64, differentiable in
    x, the routing weights and the experts' parameters. ``d_out`` is needed only for non-MLP experts
    when no row is routed at all. ``form`` (see the module docstring) applies to uniform MLP
    experts; ``"segments"`` when a gradient is needed is a ValueError.
    """
    form = validate.choice(form, "form", FORMS)
    idx, w = _check(x, routing, experts)
    n, k = idx.shape
    n_exp = len(experts)
    if d_out is None:
        d_out = getattr(experts[0], "d_out", None)
    if n == 0:
        if d_out is None:
            raise ValueError("d_out: expected the experts' output size for an empty batch, got None")
        return x.new_zeros(0, d_out)
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n_exp)
    xs = x.index_select(0, order // k)  # rows in expert order
    if _uniform_mlps(experts):
        st, grad = stacked_weights(experts)
        grad = grad or (torch.is_grad_enabled() and xs.requires_grad)
        if form == "segments" and grad:
            raise ValueError("form: expected 'auto' or 'padded' when a gradient is needed (the segments "
                             "form writes in place), got 'segments'")
        if form == "padded" or grad:
            ys, pos = _padded_mlp(xs, flat[order], counts, st, grad, overflow_cost)
        else:
            ys, pos = _segment_mlp(xs, counts, st, torch.get_num_threads()), torch.arange(n * k)
    else:
        ys, pos = _segment_loop(xs, counts, experts), torch.arange(n * k)
    where = torch.empty_like(pos)
    where[order] = pos
    y = ys.index_select(0, where).view(n, k, -1)
    return (y * w.unsqueeze(-1)).sum(dim=1)


def _padded_mlp(xs: torch.Tensor, sorted_e: torch.Tensor, counts: torch.Tensor, st: _Stack, grad: bool,
                overflow_cost: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of the sorted rows as one tensor, and each sorted row's position in it."""
    n_exp, nk = counts.numel(), xs.shape[0]
    cap = choose_capacity(counts, overflow_cost)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(nk) - starts[sorted_e]
    inslot = rank < cap
    pos = torch.where(inslot, sorted_e * cap + rank, n_exp * cap + torch.cumsum(~inslot, 0) - 1)
    parts = []
    if cap > 0:
        if bool(inslot.all()) and cap * n_exp == nk:
            h = xs
        else:
            h = xs.new_zeros(n_exp * cap, xs.shape[1]).index_copy(0, pos[inslot], xs[inslot])
        h = h.view(n_exp, cap, -1)
        for i, (wt, b) in enumerate(zip(st.weights, st.biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, wt.transpose(1, 2))
            if i < len(st.slopes):
                s = st.slopes[i]
                h = _act(h, None if s is None else s.view(-1, 1, 1), not grad)
        parts.append(h.reshape(n_exp * cap, -1))
    over = (counts > cap).nonzero().flatten().tolist()
    if over:
        segs = xs[~inslot].split((counts[over] - cap).tolist())
        for e, h in zip(over, segs, strict=True):
            for i, (wt, b) in enumerate(zip(st.weights, st.biases, strict=True)):
                h = F.linear(h, wt[e], b[e])
                if i < len(st.slopes):
                    h = _act(h, None if st.slopes[i] is None else st.slopes[i][e], not grad)
            parts.append(h)
    return (torch.cat(parts) if len(parts) > 1 else parts[0]), pos


_POOL: dict = {}
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if n not in _POOL:
            _POOL[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="moe-dispatch")
        return _POOL[n]


def _segment_mlp(xs: torch.Tensor, counts: torch.Tensor, st: _Stack, threads: int) -> torch.Tensor:
    """Inference: the sorted rows' outputs, each expert's layers on its block of rows (no padding)."""
    ends = counts.cumsum(0).tolist()
    starts = [0] + ends[:-1]
    ys = xs.new_empty(xs.shape[0], st.weights[-1].shape[1])
    last = len(st.weights) - 1

    def run(lo: int, hi: int) -> None:
        for e in range(lo, hi):
            a, b = starts[e], ends[e]
            if a == b:
                continue
            h = xs[a:b]
            for i in range(last):
                h = F.linear(h, st.weights[i][e], st.biases[i][e])
                h = _act(h, None if st.slopes[i] is None else st.slopes[i][e], True)
            torch.addmm(st.biases[last][e], h, st.weights[last][e].t(), out=ys[a:b])

    n_exp, total = counts.numel(), ends[-1]
    if threads <= 1 or n_exp == 1 or total == 0:
        run(0, n_exp)
        return ys
    # contiguous groups of experts with about total / threads rows each
    bounds = sorted({0, n_exp, *(min(bisect.bisect_left(ends, j * total / threads) + 1, n_exp)
                                  for j in range(1, threads))})
    groups = list(zip(bounds[:-1], bounds[1:], strict=True))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        futures = [_pool(threads).submit(run, lo, hi) for lo, hi in groups[1:]]
        run(*groups[0])  # the calling thread takes the first group
        for f in futures:
            f.result()
    finally:
        torch.set_num_threads(previous)
    return ys


def _segment_loop(xs: torch.Tensor, counts: torch.Tensor, experts: Sequence[nn.Module]) -> torch.Tensor:
    """Fallback: each expert module called once on its contiguous block of sorted rows."""
    segs = xs.split(counts.tolist())
    return torch.cat([experts[e](s) for e, s in enumerate(segs) if s.shape[0] > 0])


def dense_reference(x: torch.Tensor, routing, experts: Sequence[nn.Module]) -> torch.Tensor:
    """Every expert on every row, masked by the routing weights (as ``MoE.dense_forward``, any routing).

    Accumulates expert by expert, so memory stays O(N d) instead of O(N E d).
    """
    idx, w = _check(x, routing, experts)
    mask = x.new_zeros(x.shape[0], len(experts)).scatter_add_(1, idx, w)
    out = None
    for e, f in enumerate(experts):
        term = mask[:, e:e + 1] * f(x)
        out = term if out is None else out + term
    return out
