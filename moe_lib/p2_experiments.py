"""Data, models and measurements of Wang & E's two numerical experiments (Sec. 6, App. C).

Experiment I (``circle_*``): the unit circle M = {x in R^D : x_1^2 + x_2^2 = 1, x_i = 0 (i > 2)},
target f(x) = sin(5 x_1) + cos(3 x_2), a "1-4-MoE" (one MoE layer, bias-free linear top-1 gate,
4 experts, each a 2-layer ReLU net of width 10), D in {16, 32, 64, 128}.

Experiment II (``square_*``, ``exp2_*``): the compositional target of eq. (4) with L = 2, E = 3 on
[0, 3]^2 (``moe_lib.constructions.compositional.cube_target``), a "2-3-MoE" (two MoE layers of 3
experts) against a "1-6-MoE" (one layer of 6 experts), 2-layer ReLU experts of width m.

Every model of a sweep lives in one ``moe_lib.stacked.StackedMoE`` (model axis = sweep value x
seed, sweep-major), so a whole sweep is one call of ``moe_lib.train.fit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import validate
from .constructions.compositional import cube_target
from .moe import moe_class_member
from .stacked import StackedMoE, stacked_class_members
from .train import fit, mse

# --- shared ------------------------------------------------------------------------------------


def sweep_axis(values: Sequence, seeds: Sequence[int]) -> tuple[list, list[int]]:
    """The model axis of a sweep: (value, seed) pairs, value-major, as two flat lists."""
    values, seeds = list(values), list(seeds)
    if not values or not seeds:
        raise ValueError(f"expected at least one sweep value and one seed, "
                         f"got {values} and {seeds}")
    return [v for v in values for _ in seeds], [s for _ in values for s in seeds]


def by_value(per_model: np.ndarray, n_values: int) -> np.ndarray:
    """Reshape a per-model array (S,) of a value-major sweep into (n_values, n_seeds)."""
    per_model = np.asarray(per_model, dtype=np.float64)
    if per_model.ndim != 1 or per_model.size % n_values:
        raise ValueError(f"per_model: expected a flat array whose length is a multiple of "
                         f"{n_values}, got shape {per_model.shape}")
    return per_model.reshape(n_values, -1)


def dense_width(active: int, d_in: int, d_out: int = 1) -> int:
    """Hidden width w of a 2-layer ReLU net d_in -> w -> d_out whose parameter count
    w (d_in + 1) + w d_out + d_out is closest to ``active`` (ties to the smaller w)."""
    active = validate.integer(active, "active", low=1)
    d_in = validate.integer(d_in, "d_in", low=1)
    d_out = validate.integer(d_out, "d_out", low=1)
    per_unit = d_in + 1 + d_out
    lo = max(1, (active - d_out) // per_unit)
    return min((lo, lo + 1), key=lambda w: (abs(w * per_unit + d_out - active), w))


def train_sweep(build: Callable[[object, list[int]], StackedMoE], values: Sequence,
                seeds: Sequence[int], sampler, test, steps: int, lr: float = 1e-3,
                batch_size: int = 128, data_seed_offset: int = 1000, desc: str = "") -> dict:
    """Train one stack ``build(value, seeds)`` per sweep value (S = len(seeds) models each) with
    ``moe_lib.train.fit``; model seed s draws its minibatches with data seed s + data_seed_offset,
    the same stream for every value (common random numbers across the sweep).

    ``sampler`` (a ``moe_lib.train`` sampler) and ``test`` (a pair x, y) are either one object for
    every value or a dict {value: object} (e.g. inputs of a different size per value). Either
    object (or a dict's entry) may also be a *list with one entry per seed*: model s then trains
    on its own sampler (e.g. its own fixed training set, for train/test gaps over independent
    samples) and its test MSE is taken on its own test pair.

    Returns {"mse": (n_values, n_seeds) test MSE, "final_train": the same shape, mean minibatch loss
    over the last 100 steps, "stacks": the trained stacks, "histories": (steps, n_seeds) arrays}.
    """
    values, seeds = list(values), list(seeds)
    if not values or not seeds:
        raise ValueError(f"expected at least one sweep value and one seed, "
                         f"got {values} and {seeds}")
    data_seeds = [s + data_seed_offset for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {seeds}")
    out: dict = {"mse": [], "final_train": [], "stacks": [], "histories": []}
    for name, obj in (("sampler", sampler), ("test", test)):
        if isinstance(obj, dict) and set(obj) != set(values):
            raise ValueError(f"{name}: expected a dict keyed by the sweep values {values}, "
                             f"got keys {sorted(obj)}")
    for v in values:
        smp = sampler[v] if isinstance(sampler, dict) else sampler
        tst = test[v] if isinstance(test, dict) else test
        x_test, y_test = (tst, None) if isinstance(tst, list) else tst
        stack = build(v, seeds)
        if stack.n_models != len(seeds):
            raise ValueError(f"build({v!r}, seeds): expected a stack of {len(seeds)} models, "
                             f"got {stack.n_models}")
        result = fit(stack, _per_seed_sampler(smp, data_seeds), steps, batch_size=batch_size,
                     lr=lr, seeds=data_seeds, desc=f"{desc} {v}".strip())
        out["mse"].append(_per_seed_mse(stack, x_test, y_test, len(seeds)))
        out["final_train"].append(result.final(min(100, result.steps)))
        out["stacks"].append(stack)
        out["histories"].append(result.history)
    out["mse"] = np.array(out["mse"])
    out["final_train"] = np.array(out["final_train"])
    return out


def _per_seed_sampler(sampler, data_seeds: list[int]):
    """One sampler, or a list of one sampler per model dispatched on the generator's seed."""
    if not isinstance(sampler, list):
        return sampler
    if len(sampler) != len(data_seeds):
        raise ValueError(f"sampler: expected one sampler per seed ({len(data_seeds)}), "
                         f"got a list of {len(sampler)}")
    by_seed = dict(zip(data_seeds, sampler, strict=True))

    def sample(n: int, generator: torch.Generator):
        return by_seed[generator.initial_seed()](n, generator)

    return sample


def _per_seed_mse(stack, x_test, y_test, n_seeds: int) -> np.ndarray:
    """Test MSE of every model: on one shared pair, or model s on the s-th pair of a list."""
    if y_test is not None:
        return mse(stack, x_test, y_test)
    if len(x_test) != n_seeds:
        raise ValueError(f"test: expected one (x, y) pair per seed ({n_seeds}), "
                         f"got a list of {len(x_test)}")
    return np.array([mse(stack, x, y)[s] for s, (x, y) in enumerate(x_test)])


# --- Experiment I: the circle in R^D ----------------------------------------------------------


def circle_embed(theta: torch.Tensor, D: int) -> torch.Tensor:
    """Points (cos t, sin t, 0, ..., 0) in R^D, float64, shape (N, D)."""
    D = validate.integer(D, "D", low=2)
    theta = validate.tensor(theta, "theta", ndim=1)
    x = torch.zeros(theta.shape[0], D, dtype=torch.float64)
    x[:, 0] = torch.cos(theta.double())
    x[:, 1] = torch.sin(theta.double())
    return x


def circle_target(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sin(5 x_1) + cos(3 x_2) as a column (N, 1)."""
    x = validate.tensor(x, "x", ndim=2)
    if x.shape[1] < 2:
        raise ValueError(f"x: expected at least 2 coordinates, got {x.shape[1]}")
    return (torch.sin(5 * x[:, 0]) + torch.cos(3 * x[:, 1]))[:, None]


def circle_sampler(D: int):
    """A ``moe_lib.train`` sampler: n points uniform (in angle) on the circle in R^D, and f."""
    D = validate.integer(D, "D", low=2)

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        x = torch.zeros(n, D, dtype=torch.float64)
        x[:, 0] = torch.cos(theta)
        x[:, 1] = torch.sin(theta)
        return x, (torch.sin(5 * x[:, 0]) + torch.cos(3 * x[:, 1]))[:, None]

    return sample


def circle_test_set(D: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n equally spaced angles 2 pi (j + 1/2) / n on the circle in R^D and f there: the MSE on this
    set is the midpoint rule for the mean square error under the uniform law on the circle."""
    n = validate.integer(n, "n", low=1)
    theta = 2 * math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x = circle_embed(theta, D)
    return x, circle_target(x)


def exp1_moe(Ds: Sequence[int], seeds: Sequence[int], width: int = 10, n_experts: int = 4,
             router_grad: str = "straight_through",
             dtype: torch.dtype = torch.float64) -> StackedMoE:
    """The 1-4-MoE for every (D, seed), D-major, in one stack (input size max(Ds); model (D, s)
    reads the first D coordinates). Model (D, s) is ``moe_class_member`` under seed s."""
    d_axis, s_axis = sweep_axis(Ds, seeds)
    return stacked_class_members([max(d_axis), 1], n_experts, width, s_axis, in_dims=d_axis,
                                 router_grad=router_grad, dtype=dtype)


def exp1_dense(Ds: Sequence[int], seeds: Sequence[int], width: int,
               dtype: torch.dtype = torch.float64) -> StackedMoE:
    """Dense 2-layer ReLU nets D -> width -> 1 for every (D, seed): a stack with E = 1 (the gate of
    a one-expert layer always picks the expert, and gets no gradient)."""
    d_axis, s_axis = sweep_axis(Ds, seeds)
    return stacked_class_members([max(d_axis), 1], 1, width, s_axis, in_dims=d_axis, dtype=dtype)


def exp1_d_free_init(stack: StackedMoE, seeds: Sequence[int]) -> StackedMoE:
    """Control for the role of D: a copy of ``stack`` (value-major over D, then ``seeds``) in
    which every weight that acts on M, i.e. all parameters except the input columns 3..D of the
    gate and of the experts' first layers, is that of the D = 2 member with the same seed
    (PyTorch's initialisation of a D = 2 net); the columns 3..D keep their random values.

    Those columns multiply coordinates that are 0 on M, so they change neither the output nor any
    gradient: if training then gives the same errors for every D, D acted only through the
    initialisation (its scale U(-1/sqrt(D), 1/sqrt(D)) and the random stream), not through the
    geometry.
    """
    seeds = list(seeds)
    if stack.n_layers != 1 or stack.n_models % len(seeds):
        raise ValueError(f"expected a one-layer stack whose {stack.n_models} models are a multiple "
                         f"of the {len(seeds)} seeds")
    out = StackedMoE.from_deep_moe([stack.to_deep_moe(s) for s in range(stack.n_models)],
                                   router_grad=stack.router_grad)
    with torch.no_grad():
        for s in range(out.n_models):
            state = torch.random.get_rng_state()
            torch.manual_seed(seeds[s % len(seeds)])
            small = moe_class_member(1, out.n_experts, out.depth, out.widths[s], [2, out.d_out],
                                     dtype=out.gate_w[0].dtype)
            torch.random.set_rng_state(state)
            layer = small.layers[0]
            out.gate_w[0][s, :, :2].copy_(layer.router.linear.weight)
            for e, expert in enumerate(layer.experts):
                for j, lin in enumerate(expert.linears):
                    o, i = lin.weight.shape
                    out.weights[j][s, e, :o, :i].copy_(lin.weight)
                    out.biases[j][s, e, :o].copy_(lin.bias)
    return out


# --- Experiment II: the compositional target on [0, 3]^2 ------------------------------------

ARCHITECTURES = {"2-3": ([2, 2, 2], 3), "1-6": ([2, 2], 6)}


def square_target(x: torch.Tensor, E: int = 3) -> torch.Tensor:
    """Eq. (4) on [0, E]^L with the catalogue's sub-functions, in torch: coordinate l of the output
    is i (i - 1 - z)^2 (z - i)^2 with z = x_l and i = ceil(z) clipped to [1, E]. Equals
    ``constructions.compositional.cube_target`` (the unit tests check it)."""
    x = validate.tensor(x, "x", ndim=2)
    i = torch.clamp(torch.ceil(x), 1, E)
    return i * (i - 1 - x) ** 2 * (x - i) ** 2


def square_sampler(E: int = 3):
    """A ``moe_lib.train`` sampler: uniform points on [0, E]^2 and the eq. (4) target in R^2."""
    E = validate.integer(E, "E", low=1)

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = E * torch.rand(n, 2, generator=generator, dtype=torch.float64)
        i = torch.clamp(torch.ceil(x), 1, E)
        return x, i * (i - 1 - x) ** 2 * (x - i) ** 2

    return sample


def square_grid(E: int = 3, per_unit: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell midpoints of a uniform grid with ``per_unit`` cells per unit length on [0, E]^2, and the
    target there: the MSE on this set is the midpoint rule for the uniform mean square error."""
    E = validate.integer(E, "E", low=1)
    per_unit = validate.integer(per_unit, "per_unit", low=1)
    z = (torch.arange(E * per_unit, dtype=torch.float64) + 0.5) / per_unit
    xx, yy = torch.meshgrid(z, z, indexing="ij")
    x = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return x, torch.from_numpy(cube_target(x.numpy(), E))


def exp2_models(arch: str, widths: Sequence[int], seeds: Sequence[int],
                router_grad: str = "straight_through", gate_bias: bool = False,
                dtype: torch.dtype = torch.float64) -> StackedMoE:
    """"2-3" (dims 2 -> 2 -> 2, E = 3 per layer) or "1-6" (2 -> 2, E = 6) for every (width,
    seed), width-major, in one stack. Both have 30 m + 24 stored parameters (bias-free gates)."""
    dims, n_experts = ARCHITECTURES[validate.choice(arch, "arch", tuple(ARCHITECTURES))]
    w_axis, s_axis = sweep_axis(widths, seeds)
    return stacked_class_members(dims, n_experts, w_axis, s_axis, gate_bias=gate_bias,
                                 router_grad=router_grad, dtype=dtype)


def path_ids(paths: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Number the routing paths (i_1, ..., i_L) (last axis) as sum_l i_l E^(L-l), one integer."""
    paths = validate.tensor(paths, "paths")
    L = paths.shape[-1]
    weights = n_experts ** torch.arange(L - 1, -1, -1)
    return (paths * weights).sum(dim=-1)


def cell_purity(paths: torch.Tensor, cells: torch.Tensor) -> float:
    """Fraction of points whose path is the most common path of their cell (1 = every cell of the
    target is routed along a single path), for one model: paths and cells are integer (N,)."""
    paths = validate.tensor(paths, "paths", ndim=1)
    cells = validate.tensor(cells, "cells", ndim=1)
    if paths.shape != cells.shape:
        raise ValueError(f"paths, cells: expected equal shapes, got {tuple(paths.shape)} and "
                         f"{tuple(cells.shape)}")
    agree = 0
    for c in torch.unique(cells).tolist():
        agree += int(torch.bincount(paths[cells == c]).max())
    return agree / paths.shape[0]
