"""Data, models and measurements of Wang & E's two numerical experiments (Sec. 6, App. C).

Experiment I (``circle_*``): the unit circle M = {x in R^D : x_1^2 + x_2^2 = 1, x_i = 0 (i > 2)},
target f(x) = sin(5 x_1) + cos(3 x_2), a "1-4-MoE" (one MoE layer, bias-free linear top-1 gate,
4 experts, each a 2-layer ReLU net of width 10), D in {16, 32, 64, 128}.

Experiment II (``square_*``, ``exp2_*``): the compositional target of eq. (4) with L = 2, E = 3 on
[0, 3]^2 (``moe_lib.constructions.p2_compositional.cube_target``), a "2-3-MoE" (two MoE layers of 3
experts) against a "1-6-MoE" (one layer of 6 experts), 2-layer ReLU experts of width m.

Every model of a sweep lives in one ``moe_lib.models.stacked.StackedMoE`` (model axis = sweep value x
seed, sweep-major), so a whole sweep is one call of ``moe_lib.fitting.train.fit``
(``train_circle_stack`` for Experiment I's D sweeps). The samplers draw many steps at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .. import validate
from ..constructions.p2_compositional import cube_target
from ..fitting.sweeps import by_value, sweep_axis
from ..fitting.train import fit, function_sampler, mse
from ..models.moe import moe_class_member
from ..models.stacked import StackedMoE, stacked_class_members

# --- shared ------------------------------------------------------------------------------------


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
    """A ``moe_lib.fitting.train`` sampler: n points uniform (in angle) on the circle in R^D, and f.
    Its rows are drawn one by one (``function_sampler(..., serial=True)``), so ``fit`` draws many
    steps at once; the first D' < D coordinates of its points are those of ``circle_sampler(D')``."""
    D = validate.integer(D, "D", low=2)
    return function_sampler(
        lambda n, g: circle_embed(2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64), D),
        circle_target, serial=True)


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


def train_circle_stack(stack: StackedMoE, Ds: Sequence[int], seeds: Sequence[int], steps: int,
                       lr: float = 1e-3, batch_size: int = 128, n_test: int = 2048,
                       data_seed_offset: int = 1000, desc: str = "") -> dict:
    """Train a D-major stack over Ds x seeds (``exp1_moe``, ``exp1_dense``, ``exp1_d_free_init``)
    as one model with one ``fit``, and test it on ``circle_test_set(max(Ds), n_test)``.

    Model (D, s) draws its minibatches with data seed s + ``data_seed_offset`` from
    ``circle_sampler(max(Ds))`` and reads their first D coordinates, which are the points
    ``circle_sampler(D)`` draws with that seed: the data of ``moe_lib.fitting.train_sweep`` with
    one stack per D (the same stream for every D), in one loop instead of len(Ds). The results
    are those of such per-D stacks up to floating-point rounding: a model with D < max(Ds) is
    zero-padded, and a padded product may sum in another order.
    Returns {"mse": (n_D, n_seeds) test MSE, "final_train": the same shape, mean minibatch loss
    over the last 100 steps, "histories": one (steps, n_seeds) array per D, "stack": the stack}.
    """
    Ds, seeds = list(Ds), list(seeds)
    d_axis, s_axis = sweep_axis(Ds, seeds)
    if stack.in_dims != d_axis:
        raise ValueError(f"stack: expected the D-major input sizes {d_axis}, got {stack.in_dims}")
    result = fit(stack, circle_sampler(max(Ds)), steps, batch_size=batch_size, lr=lr,
                 seeds=[s + data_seed_offset for s in s_axis], desc=desc)
    x, y = circle_test_set(max(Ds), n_test)
    n = len(seeds)
    return {"mse": by_value(mse(stack, x, y), len(Ds)),
            "final_train": by_value(result.final(min(100, result.steps)), len(Ds)),
            "histories": [result.history[:, j * n:(j + 1) * n] for j in range(len(Ds))],
            "stack": stack}


# --- Experiment II: the compositional target on [0, 3]^2 ------------------------------------

ARCHITECTURES = {"2-3": ([2, 2, 2], 3), "1-6": ([2, 2], 6)}


def square_sampler(E: int = 3):
    """A ``moe_lib.fitting.train`` sampler: uniform points on [0, E]^2 and the eq. (4) target in
    R^2: the pairs of ``p2_compositional.cube_sampler(2, E)``, drawn row by row
    (``function_sampler(..., serial=True)``), so ``fit`` draws many steps at once."""
    E = validate.integer(E, "E", low=1)
    return function_sampler(lambda n, g: torch.rand(n, 2, generator=g, dtype=torch.float64) * E,
                            lambda x: torch.from_numpy(cube_target(x.numpy(), E)), serial=True)


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


