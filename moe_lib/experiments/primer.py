"""Facts about one MoE layer that the primer chapter measures: exactness of top-1 routing, sparse
versus dense dispatch, stored versus active parameters, what one input touches (measured by its
gradient), forward time as E grows."""

from __future__ import annotations

import statistics
import time

import torch

from .. import validate
from ..models.experts import MLP, mlp_param_count
from ..models.moe import MoE, moe_class_member
from ..models.routing import TopKGate


def random_layer(d_in: int, n_experts: int, width: int, k: int, d_out: int = 1,
                 depth: int = 2, dtype: torch.dtype = torch.float64) -> MoE:
    """An MoE layer with random (PyTorch default) weights and a bias-free top-k gate."""
    experts = [MLP(d_in, d_out, width, depth, dtype=dtype) for _ in range(n_experts)]
    return MoE(experts, TopKGate(d_in, n_experts, k, dtype=dtype), d_in, d_out)


def top1_is_chosen_expert(layer: MoE, x: torch.Tensor) -> dict:
    """Max |layer(x) - f_chosen(x)| over rows (K = 1), and how many experts were used.

    The reference runs each expert on the block of rows routed to it, so any difference comes from
    the layer's mixing (weights, accumulation), not from BLAS rounding on another batch shape.
    """
    idx = layer.route(x).idx[:, 0]
    ref = x.new_empty(x.shape[0], layer.d_out)
    for e in torch.unique(idx).tolist():
        rows = idx == e
        ref[rows] = layer.experts[e](x[rows])
    diff = (layer(x) - ref).abs().max().item()
    return {"max_abs_diff": diff, "experts_used": int(torch.unique(idx).numel())}


def full_topk_equals_softmax_mixture(layer: MoE, x: torch.Tensor) -> float:
    """With K = E, max |layer(x) - sum_e softmax(g(x))_e f_e(x)|."""
    if layer.router.k != layer.n_experts:
        raise ValueError(f"expected a layer with k = E = {layer.n_experts}, got k = {layer.router.k}")
    weights = torch.softmax(layer.router.scores(x), dim=1)
    mixture = sum(weights[:, e:e + 1] * f(x) for e, f in enumerate(layer.experts))
    return (layer(x) - mixture).abs().max().item()


def sparse_dense_gap(layer: MoE, x: torch.Tensor) -> float:
    return (layer(x) - layer.dense_forward(x)).abs().max().item()


def parameter_table(E_grid, d_in: int, width: int, ks=(1, 2), depth: int = 2) -> list[dict]:
    """Stored and active parameters of one layer for each E, with the closed forms beside them."""
    p_exp = mlp_param_count(d_in, 1, width, depth)
    rows = []
    for E in E_grid:
        row = {"E": E}
        for k in ks:
            layer = random_layer(d_in, E, width, k=min(k, E), depth=depth)
            row["stored"] = layer.stored_params()
            row[f"active_{k}"] = layer.active_params()
            row[f"active_experts_{k}"] = layer.active_params() - E * d_in
            row[f"active_formula_{k}"] = min(k, E) * p_exp + E * d_in
        row["stored_formula"] = E * p_exp + E * d_in
        rows.append(row)
    return rows


def class_counts(n_layers: int, n_experts: int, depth: int, width: int, d: int) -> dict:
    """Stored/active parameters of a member of H^{L,E}_{l,m} with all layer sizes d, and formulas."""
    net = moe_class_member(n_layers, n_experts, depth, width, [d] * (n_layers + 1), k=1)
    p_exp = mlp_param_count(d, d, width, depth)
    return {"stored": net.stored_params(), "active": net.active_params(),
            "stored_formula": n_layers * (n_experts * p_exp + n_experts * d),
            "active_formula": n_layers * (p_exp + n_experts * d)}


def time_forward(E_grid, d: int, width: int, n_tokens: int, repeats: int = 3,
                 threads: int = 1) -> dict[str, list[float]]:
    """Median seconds of one K = 1 forward pass, sparse dispatch and dense reference, per E."""
    torch.set_num_threads(threads)
    out = {"sparse": [], "dense": []}
    x = torch.randn(n_tokens, d, dtype=torch.float32)
    for E in E_grid:
        layer = random_layer(d, E, width, k=1, d_out=d, dtype=torch.float32)
        with torch.no_grad():
            for name, fn in (("sparse", layer.forward), ("dense", layer.dense_forward)):
                fn(x)  # warm-up
                runs = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    fn(x)
                    runs.append(time.perf_counter() - t0)
                out[name].append(statistics.median(runs))
    return out


def touched_by_gradient(layer: MoE, x: torch.Tensor) -> dict[str, list[int]]:
    """What each input touches, measured: one backward pass of sum(layer(x_i)) per row x_i.

    Per row: ``experts`` = how many experts receive a nonzero gradient somewhere, ``expert_params``
    = how many expert parameters have a nonzero gradient, ``gate_params`` = the same for the gate.
    An expert that did not run on x_i gets no gradient at all; a ReLU unit that is off on x_i gets
    a zero gradient too, so ``expert_params`` can fall below K P_exp, never above it.
    """
    x = validate.tensor(x, "x", ndim=2, last=layer.d_in)
    out = {"experts": [], "expert_params": [], "gate_params": []}

    def nonzero(params) -> int:
        return sum(int((p.grad != 0).sum()) for p in params if p.grad is not None)

    for i in range(x.shape[0]):
        layer.zero_grad(set_to_none=True)
        layer(x[i:i + 1]).sum().backward()
        per_expert = [nonzero(f.parameters()) for f in layer.experts]
        out["experts"].append(sum(1 for c in per_expert if c > 0))
        out["expert_params"].append(sum(per_expert))
        out["gate_params"].append(nonzero(layer.router.parameters()))
    layer.zero_grad(set_to_none=True)
    return out


def touched_sweep(E_grid, d_in: int, width: int, k: int, n_inputs: int, depth: int = 2) -> list[dict]:
    """For each E: the largest and smallest number of experts an input touches (gradient nonzero),
    the largest number of expert and gate parameters it touches, and the bounds K P_exp, K d_in.
    Values of E below k are skipped (a layer cannot route to more experts than it has)."""
    p_exp = mlp_param_count(d_in, 1, width, depth)
    x = torch.randn(n_inputs, d_in, dtype=torch.float64)
    rows = []
    for E in (E for E in E_grid if E >= k):
        kk = k
        t = touched_by_gradient(random_layer(d_in, E, width, k=kk, depth=depth), x)
        rows.append({"E": E, "k": kk, "experts_max": max(t["experts"]), "experts_min": min(t["experts"]),
                     "expert_params_max": max(t["expert_params"]), "gate_params_max": max(t["gate_params"]),
                     "expert_bound": kk * p_exp, "gate_bound": kk * d_in})
    return rows
