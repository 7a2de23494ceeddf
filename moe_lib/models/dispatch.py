"""Grouped sparse dispatch for the MoE layer: tokens sorted by expert, each expert run once on its block.

``grouped_forward(x, routing, experts)`` computes y(x) = sum_j w_j(x) f_{e_j(x)}(x) like the loop in
``MoE.forward``, with O(N k log(N k)) bookkeeping instead of the loop's O(N k E) row selection:

1. the N k (token, slot) pairs are sorted by expert (a stable argsort), so each expert's rows form
   one contiguous block of the sorted input, in token order;
2. each expert module is called once on its block (a view, no copy; empty experts are skipped);
3. the outputs are put back in (token, slot) order and combined with the gate weights.

Each expert sees exactly the rows, in the same order, that the loop gives it, so with k = 1 the
output equals the loop's bit for bit; with k >= 2 the k terms are summed in slot order (equal up
to rounding). Any expert module works, in any dtype, and autograd reaches x, the routing weights
and the experts' parameters.

Why not padded batched matmuls over stacked expert weights (``torch.baddbmm`` on (E, C, d) groups,
or ``torch._grouped_mm``): we built and measured them (``benchmarks/dispatch.py``); on a CPU each
batch entry is still one small GEMM of the BLAS, so they were no faster than these per-expert calls
once the sort removes the loop's selection cost, and they cost padding, a re-homed copy of the
weights and a second code path for gradients. What remains between this and the matmul limit is the
BLAS rate on small blocks and the traffic of reading every expert's weights once (the benchmark
reports both floors).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import validate


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


def grouped_forward(x: torch.Tensor, routing, experts: Sequence[nn.Module],
                    d_out: int | None = None) -> torch.Tensor:
    """Sparse MoE output sum_j routing.weight[:, j] * experts[routing.idx[:, j]](x), shape (N, d_out).

    Exact for any k and routing (empty experts included), differentiable. ``d_out`` is needed only
    when the batch is empty and the experts do not declare ``d_out``.
    """
    idx, w = _check(x, routing, experts)
    n, k = idx.shape
    if n == 0:
        d_out = getattr(experts[0], "d_out", None) if d_out is None else d_out
        if d_out is None:
            raise ValueError("d_out: expected the experts' output size for an empty batch, got None")
        return x.new_zeros(0, d_out)
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=len(experts)).tolist()
    blocks = x.index_select(0, order // k).split(counts)  # each expert's rows, contiguous, in token order
    outs = [experts[e](b) for e, b in enumerate(blocks) if counts[e]]
    ys = torch.cat(outs) if len(outs) > 1 else outs[0]
    back = torch.empty_like(order)
    back[order] = torch.arange(n * k)
    y = ys.index_select(0, back).view(n, k, -1)  # (token, slot) order again
    return (y * w.unsqueeze(-1)).sum(dim=1)


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
