# ruff: noqa: E741  (l is the paper's factor/block index)
"""Wang & E's deep MoE on a product of manifolds (Thm 5.2): L shallow blocks (Thm 4.8) in a row.

M = M_1 x ... x M_L, the factor M_l in its own coordinate block x_l of the input x = (x_1..x_L),
and a target of the paper's form (5) with f_out = identity:

    f(x) = (F_1(x_1), ..., F_L(x_L)),   F_l restricted to chart i of M_l is the piece f_{l,i}.

Each factor comes with its own shallow construction (``moe_lib.constructions.p2_shallow``,
``build_theorem_4_8``): a partition-of-unity net tau^(l) ~ rho^(l) and chart experts
g_{l,i} o psi_{l,i}. ``build_product_moe`` rewires those pieces, unchanged, into one depth-2L
``DeepMoE`` whose state carries what later blocks still need (the carry mechanism and parameter
roles of ``p2_compositional``):

- state before block l: (x_l, ..., x_L, y_1, ..., y_{l-1});
- layer 2l-1 (E identical experts, zero gate): copies the state and appends tau^(l)(x_l);
- layer 2l (gate [0 | I_E] on the tau coordinates): expert i copies x_{>l} and y_{<l}, drops x_l
  and tau, and appends y_l = g_{l,i}(psi_{l,i}(x_l)).

After block L the state is (y_1, ..., y_L). Slot l is computed by factor l's shallow network on
x_l alone, so the error in slot l is that network's error and the global error is the worst slot's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import geometry as geo
from .. import validate
from ..models.experts import n_nonzero
from ..models.moe import MoE
from ..validate import DTYPE
from . import p2_shallow as p2s
from .p2_compositional import CompositionalMoE
from .wiring import CARRY, FUNCTION, block_from_mlp, carry_expert, collect_roles, gate_with_weights


@dataclass
class TrigTarget:
    """F(x) = sin(a theta) + cos(b theta) on a circle, theta = ``manifold.angles(x)``.

    Smooth (kappa = infinity); its pieces on overlapping charts agree because they are restrictions
    of one function. |dF/dtheta| <= a + b, and arc <= (pi/2) chord, so ``lipschitz`` =
    (pi/2)(a + b) bounds it in the ambient distance.
    """

    manifold: geo.Sphere
    sin_freq: int = 3
    cos_freq: int = 5

    def __post_init__(self):
        if not isinstance(self.manifold, geo.Sphere) or self.manifold.d != 1:
            raise ValueError(f"manifold: expected a circle moe_lib.geometry.Sphere(1, D), "
                             f"got {self.manifold!r}")
        self.sin_freq = validate.integer(self.sin_freq, "sin_freq", low=0)
        self.cos_freq = validate.integer(self.cos_freq, "cos_freq", low=0)

    def of_angle(self, a) -> torch.Tensor:
        a = torch.as_tensor(a, dtype=DTYPE)
        return torch.sin(self.sin_freq * a) + torch.cos(self.cos_freq * a)

    def __call__(self, x) -> torch.Tensor:
        return self.of_angle(self.manifold.angles(x))

    @property
    def lipschitz(self) -> float:
        return math.pi / 2 * (self.sin_freq + self.cos_freq)


def circle_factors(L: int, E: int, D_factor: int, width: int, radius: float, seed: int = 0,
                   offset: float = 0.3, reuse: Sequence[p2s.ShallowConstruction] | None = None,
                   **build_kw) -> list[p2s.ShallowConstruction]:
    """L circles, circle l in R^{D_factor} under its own random rotation (seed + l), E arc charts
    at angles offset + 2 pi i / E, caps of chordal ``radius``, the target ``TrigTarget`` (the same
    on every factor), each built by ``p2_shallow.build_theorem_4_8`` (width m = ``width``) with the
    same fitting seed: the factors differ only by their embedding.

    ``reuse``: factors built before with the same L, E, D_factor, radius, seed (any width); their
    partition-of-unity nets and layers 1, which do not depend on m, are taken over instead of
    refitted (the result is the same)."""
    L = validate.integer(L, "L", low=1)
    E = validate.integer(E, "E", low=2)
    radius = validate.positive(radius, "radius")
    if radius <= 2 * math.sin(math.pi / (2 * E)) or radius >= 2:
        raise ValueError(f"radius: expected 2 sin(pi/(2E)) = {2 * math.sin(math.pi / (2 * E)):.4g} "
                         f"< radius < 2 (caps that cover the circle), got {radius}")
    if reuse is not None and (len(reuse) < L or any(con.radius != radius or con.n_experts != E
                                                    or con.manifold.D != D_factor for con in reuse)):
        raise ValueError(f"reuse: expected >= {L} factors with E = {E}, D_factor = {D_factor}, "
                         f"radius = {radius}, got {len(reuse)} others")
    out = []
    for l in range(L):
        circle = geo.Sphere(1, D_factor, seed=seed + l)
        centres = circle.arc_centres(E, offset=offset)
        kw = dict(build_kw)
        if reuse is not None:
            kw.update(partition=reuse[l].partition, layer1=reuse[l].network.layers[0])
        out.append(p2s.build_theorem_4_8((circle, centres, TrigTarget(circle)), radius, width,
                                        seed=seed, **kw))
    return out


@dataclass
class ProductMoE(CompositionalMoE):
    """The depth-2L net of ``build_product_moe``; ``factors`` are the shallow constructions and
    ``blocks[l]`` the input coordinates of factor l."""

    factors: list | None = None
    blocks: list | None = None

    def _augment(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=DTYPE)
        return validate.tensor(x, "x", ndim=2, last=self.net.d_in)

    def target(self, x) -> np.ndarray:
        """(F_1(x_1), ..., F_L(x_L)) on points x (N, D)."""
        x = self._augment(x)
        return torch.stack([con.target(x[:, b]) for con, b in zip(self.factors, self.blocks,
                                                                   strict=True)], dim=1).numpy()


def build_product_moe(factors: Sequence[p2s.ShallowConstruction]) -> ProductMoE:
    """Compose the shallow constructions of L factors into one depth-2L MoE (module docstring).

    Needs 3-layer constructions (``build_theorem_4_8``): the tau block is
    ``partition.block(D_l, ..., carry=[], depth=3)`` and expert i is ``chart_expert`` of the
    factor's (psi_i, g_i), both taken as they are and wrapped with carry neurons.
    """
    factors = list(factors)
    if not factors:
        raise ValueError("factors: expected at least one shallow construction, got none")
    E = factors[0].n_experts
    for l, con in enumerate(factors):
        if not isinstance(con, p2s.ShallowConstruction) or con.depth != 3:
            raise ValueError(f"factors[{l}]: expected a 3-layer ShallowConstruction "
                             f"(build_theorem_4_8), got {type(con).__name__}")
        if con.n_experts != E:
            raise ValueError(f"factors[{l}]: expected {E} charts (as factor 0), "
                             f"got {con.n_experts}")
    dims = [con.manifold.D for con in factors]
    starts = np.cumsum([0] + dims)
    blocks = [list(range(starts[l], starts[l + 1])) for l in range(len(factors))]
    layout = [("x", l, j) for l, D in enumerate(dims) for j in range(D)]
    layers, expert_roles, gate_roles = [], [], []
    for l, con in enumerate(factors):
        D, n_in = dims[l], len(layout)
        read = [layout.index(("x", l, j)) for j in range(D)]
        tau_net = con.partition.block(D, range(D), carry=[], depth=3)
        blk = block_from_mlp(tau_net, reads=read, writes=range(n_in, n_in + E))
        routing = [carry_expert(n_in, n_in + E, blk, [(j, j) for j in range(n_in)])
                   for _ in range(E)]
        gate, gr = gate_with_weights(np.zeros((E, n_in)),
                                     roles=torch.zeros(E, n_in, dtype=torch.int8))
        layers.append(MoE([r[0] for r in routing], gate, n_in, n_in + E))
        expert_roles.append([r[1] for r in routing])
        gate_roles.append(gr)

        kept = [lab for lab in layout if not (lab[0] == "x" and lab[1] == l)]
        new_layout = kept + [("y", l)]
        carry = [(layout.index(lab), k) for k, lab in enumerate(kept)]
        fitting = []
        for c in con.charts:
            expert = p2s.chart_expert(D, range(D), c.psi, c.g)
            fitting.append(carry_expert(n_in + E, len(new_layout),
                                        block_from_mlp(expert, read, [len(new_layout) - 1]),
                                        carry))
        W_R = np.hstack([np.zeros((E, n_in)), np.eye(E)])
        gate, gr = gate_with_weights(W_R, roles=torch.from_numpy((W_R != 0).astype(np.int8)))
        layers.append(MoE([f[0] for f in fitting], gate, n_in + E, len(new_layout)))
        expert_roles.append([f[1] for f in fitting])
        gate_roles.append(gr)
        layout = new_layout
    net, roles = collect_roles(layers, expert_roles, gate_roles)
    return ProductMoE(net, roles, len(factors), E, 0, "product", False,
                      list(range(1, 2 * len(factors), 2)), factors=factors, blocks=blocks)


def carry_formula(dims: Sequence[int], E: int, depth: int = 3) -> int:
    """Carry entries of ``build_product_moe`` for factor dimensions D_1..D_L and E charts.

    Before block l the state has n_l = (l - 1) + sum_{k >= l} D_k coordinates. A carried
    coordinate costs 2 (in) + 2 (through each middle layer, depth - 2 of them) + 2 (out) weights.
    Layer 2l-1 carries n_l coordinates, layer 2l carries n_l - D_l, each in E experts:
        carry = 2 depth E sum_l (2 n_l - D_l).
    """
    E = validate.integer(E, "E", low=1)
    dims = [validate.integer(D, "D_l", low=1) for D in dims]
    L = len(dims)
    n = [(l - 1) + sum(dims[l - 1:]) for l in range(1, L + 1)]
    return 2 * depth * E * sum(2 * n[l] - dims[l] for l in range(L))


def function_count_of_pieces(factors: Sequence[p2s.ShallowConstruction]) -> int:
    """Nonzero entries of the pieces themselves, counted on the factors' own networks: per factor,
    E copies of the tau block, the E chart experts g_i o psi_i, and the E gate entries."""
    total = 0
    for con in factors:
        D, E = con.manifold.D, con.n_experts
        tau = con.partition.block(D, range(D), carry=[], depth=3)
        total += E * n_nonzero(tau) + E
        total += sum(n_nonzero(p2s.chart_expert(D, range(D), c.psi, c.g)) for c in con.charts)
    return total


def role_counts(pm: ProductMoE) -> dict[str, int]:
    """Function / carry entries of a built ``ProductMoE`` (from its role tensors)."""
    out = {"function": 0, "carry": 0}
    for name, p in pm.net.named_parameters():
        role = pm.roles[name]
        if bool((p.detach()[role == 0] != 0).any()):
            raise ValueError(f"'{name}': an entry marked unused is nonzero")
        out["function"] += int((role == FUNCTION).sum())
        out["carry"] += int((role == CARRY).sum())
    return out


def points_from_angles(factors: Sequence[p2s.ShallowConstruction], angles) -> torch.Tensor:
    """Points (N, D) of the product of circles with the given angles (N, L), one per factor."""
    angles = validate.tensor(torch.as_tensor(angles, dtype=DTYPE), "angles", ndim=2,
                             last=len(factors))
    return torch.cat([con.manifold.from_angles(angles[:, l].contiguous())
                      for l, con in enumerate(factors)], dim=1)


def angle_grid_points(factors: Sequence[p2s.ShallowConstruction], per_factor: int,
                      phase: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The product grid of ``per_factor`` angles phase + 2 pi k / per_factor on every circle:
    points (per_factor^L, D) and their angles (per_factor^L, L)."""
    per_factor = validate.integer(per_factor, "per_factor", low=1)
    a = phase + 2 * math.pi * torch.arange(per_factor, dtype=DTYPE) / per_factor
    angles = torch.cartesian_prod(*([a] * len(factors))).reshape(-1, len(factors))
    return points_from_angles(factors, angles), angles


def axis_covering_angles(factors: Sequence[p2s.ShallowConstruction], n: int,
                         rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of the product whose angle on every circle runs through the whole grid
    2 pi k / n (a random permutation per factor): fine on every factor in only n points."""
    n = validate.integer(n, "n", low=1)
    a = 2 * math.pi * np.arange(n) / n - math.pi
    angles = torch.from_numpy(np.stack([a[rng.permutation(n)] for _ in factors], axis=1))
    return points_from_angles(factors, angles), angles


def measure(pm: ProductMoE, x) -> dict:
    """Run the deep net on points x (N, D) of the product and compare every slot with its factor.

    Per factor l (lists of length L): ``slot_error`` max |y_l - F_l(x_l)|; ``shallow_error`` the
    same for factor l's own shallow network on x_l; ``gap`` max |y_l - shallow_l(x_l)|;
    ``same_route`` fraction of points where layer 2l picks the shallow network's chart;
    ``valid`` fraction where the picked chart has rho_{l,i}(x_l) > 0; ``tau_rho`` sup |tau - rho|.
    Plus ``error`` (max over slots), ``n_paths``, and the arrays ``output``, ``paths`` and
    ``abs_error`` (N, L).
    """
    x = pm._augment(x)
    y, paths = pm.forward_with_paths(x)
    target = pm.target(x)
    out = {k: [] for k in ("slot_error", "shallow_error", "gap", "same_route", "valid", "tau_rho")}
    for l, (con, b) in enumerate(zip(pm.factors, pm.blocks, strict=True)):
        xl = x[:, b]
        with torch.no_grad():
            ys, ps = con.network.forward_with_paths(xl)
            tau = con.partition.tau(xl)
        rho = geo.partition_of_unity(xl, con.centres, con.radius).rho
        route = torch.from_numpy(paths[:, 2 * l + 1])
        out["slot_error"].append(float(np.abs(y[:, l] - target[:, l]).max()))
        out["shallow_error"].append(float(np.abs(ys[:, 0].numpy() - target[:, l]).max()))
        out["gap"].append(float(np.abs(ys[:, 0].numpy() - y[:, l]).max()))
        out["same_route"].append(float((ps[:, 1] == route).double().mean()))
        out["valid"].append(float((rho.gather(1, route[:, None])[:, 0] > 0).double().mean()))
        out["tau_rho"].append(float((tau - rho).abs().max()))
    out["error"] = max(out["slot_error"])
    out["n_paths"] = int(np.unique(paths, axis=0).shape[0])
    out["output"], out["paths"], out["abs_error"] = y, paths, np.abs(y - target)
    return out


def width_sweep(widths: Sequence[int], L: int, E: int, D_factor: int, radius: float, n: int,
                rng: np.random.Generator, seed: int = 0,
                reuse: Sequence[p2s.ShallowConstruction] | None = None, **build_kw) -> dict:
    """Sup error of the depth-2L net against the expert width m (Thm 5.2's rate in m).

    For every m in ``widths``: ``circle_factors(L, E, D_factor, m, radius, seed)``, the composed
    ``build_product_moe``, and max |Psi - f| over all slots on ``n`` axis-covering points
    (``axis_covering_angles``). Layer 1 (independent of m) is fitted once, or taken from
    ``reuse`` (factors of ``circle_factors`` with the same L, E, D_factor, radius and seed).
    Returns {"widths": [...], "error": [...]}, floats.
    """
    widths = [validate.integer(m, "widths[i]", low=1) for m in widths]
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 widths for a rate, got {widths}")
    errors, first = [], reuse
    for m in widths:
        factors = circle_factors(L, E, D_factor, m, radius, seed=seed, reuse=first, **build_kw)
        first = first or factors
        net = build_product_moe(factors)
        x, _ = axis_covering_angles(factors, n, rng)
        errors.append(float(np.abs(net(x) - net.target(x)).max()))
    return {"widths": widths, "error": errors}
