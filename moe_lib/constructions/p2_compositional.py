"""Deep MoEs for compositional targets (Wang & E, Thm 5.3), written in closed form.

The target lives on the cube M = [0, E]^L cut into E^L unit cells (the paper's eq. (4)):

    f(x) = (f_{1,i_1}(x_1), ..., f_{L,i_L}(x_L)),   i_l = ceil(x_l)  (cell of coordinate l),

with L*E one-dimensional sub-functions f_{l,i} on [i-1, i]. Two networks compute it; both are
``moe_lib.DeepMoE`` stacks of ``moe_lib.MoE`` layers with 2-layer ReLU experts and top-1 gates.

(a) ``build_hat_routed`` -- the theorem's depth-2L net in H^{2L,E}_{2,.}. The state between blocks
    is v in R^L, slot l holding x_l before block l and y_l = f_l(x) after it. Block l:
    - layer 2l-1 (E identical experts, zero gate): copies v and appends the hat features
      h_i(x_l) = relu(1 - |x_l - (i - 1/2)|), i = 1..E, built from E+2 ReLUs with shared knots;
    - layer 2l: the bias-free gate W_R = [0 | I_E] picks argmax_i h_i(x_l) = ceil(x_l); expert i
      writes the m-piece ReLU interpolant of f_{l,i} into slot l and copies the other slots.
(b) ``build_affine_routed`` -- a depth-L net (our observation, not the paper's): the gate of layer l
    scores s_i(z) = (i - 1/2) z - i(i-1)/2 on z = x_l, which needs a bias; it comes from a constant
    coordinate 1 appended to the input (the state is (v, 1)), so the gate stays a bias-free
    W_R applied to the state. s_{i+1} - s_i = z - i, so argmax_i s_i(z) = ceil(z).

Copying ("carrying") a coordinate through a hidden layer uses v = relu(v) - relu(-v): two neurons.
Without skip connections every expert must carry the whole state, which is why the parameter count
is not linear in L (see ``parameter_formula``).

Every parameter of a built net has a *role*: 1 = function (hat features, interpolants, gates),
2 = carry (copying the state), 0 = unused (an entry of a dense matrix the construction leaves at 0).
``parameter_count`` counts roles on the built tensors; ``parameter_formula`` is the closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import validate
from ..analysis.paths import n_distinct_paths
from ..models.experts import n_params
from ..models.moe import DeepMoE, MoE
from ..models.routing import top_k
from .wiring import (
    CARRY,
    FUNCTION,
    UNUSED,
    Block,
    carry_expert,
    collect_roles,
    gate_with_weights,
)

SubFunction = Callable[[int, int, np.ndarray], np.ndarray]


# --- the target ---------------------------------------------------------------------------------


def cube_subfunction(l: int, i: int, z):  # noqa: E741 (l is the paper's layer index)
    """The profile f_{l,i}(z) = i (i-1-z)^2 (z-i)^2 on [i-1, i] (the same for every l).

    Each piece is a polynomial (kappa = infinity on its cell); glued together they form a C^1, not
    C^2, profile on [0, E]: f'' jumps from 2i to 2(i+1) at z = i.
    """
    return i * (i - 1 - z) ** 2 * (z - i) ** 2


def _check_sizes(L: int, E: int, m: int | None = None) -> tuple[int, int, int | None]:
    L = validate.integer(L, "L", low=1)
    E = validate.integer(E, "E", low=1)
    if m is not None:
        m = validate.integer(m, "m", low=1)
    return L, E, m


def _eval_sub(f: SubFunction, l: int, i: int, z: np.ndarray) -> np.ndarray:  # noqa: E741
    out = np.asarray(f(l, i, z), dtype=np.float64)
    if out.shape != z.shape or not np.isfinite(out).all():
        bad = "" if np.isfinite(out).all() else " with NaN/inf"
        raise ValueError(f"f({l}, {i}, z): expected finite values of shape {z.shape}, "
                         f"got shape {out.shape}{bad}")
    return out


def cell_index(x, E: int) -> np.ndarray:
    """The cell i = ceil(x) of each coordinate, with 0 sent to cell 1: integers in [1, E]."""
    E = validate.integer(E, "E", low=1)
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > E or not np.isfinite(x).all()):
        raise ValueError(f"x: expected values in [0, {E}], got values in [{x.min()}, {x.max()}]")
    return np.clip(np.ceil(x), 1, E).astype(np.int64)


def cube_target(x, E: int, f: SubFunction = cube_subfunction) -> np.ndarray:
    """f(x) of eq. (4) on points x (N, L) of [0, E]^L: coordinate l is f_{l, ceil(x_l)}(x_l)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x: expected points as an (N, L) array, got shape {x.shape}")
    cells = cell_index(x, E)
    out = np.empty_like(x)
    for l in range(x.shape[1]):  # noqa: E741
        for i in range(1, E + 1):
            rows = cells[:, l] == i
            out[rows, l] = _eval_sub(f, l + 1, i, x[rows, l])
    return out


# --- one-dimensional pieces ---------------------------------------------------------------------


def hat_features(z, E: int):
    """h_i(z) = relu(1 - |z - (i - 1/2)|), i = 1..E, as a (N, E) array: the routing features of (a).

    On [0, E], h_{ceil z}(z) >= 1/2 >= its neighbours (equality only at integers) and the others are
    0, so argmax_i h_i(z) = ceil(z) (lower index on the tie at an integer).
    """
    E = validate.integer(E, "E", low=1)
    z = np.asarray(z, dtype=np.float64)[:, None]
    centres = np.arange(1, E + 1) - 0.5
    return np.maximum(0.0, 1.0 - np.abs(z - centres))


def affine_scores(z, E: int) -> torch.Tensor:
    """s_i(z) = (i - 1/2) z - i (i-1)/2, i = 1..E, as a (N, E) float64 tensor: the gate of (b)."""
    E = validate.integer(E, "E", low=1)
    z = torch.as_tensor(np.asarray(z, dtype=np.float64)).reshape(-1, 1)
    i = torch.arange(1, E + 1, dtype=torch.float64)
    return (i - 0.5) * z - i * (i - 1) / 2


def affine_route(z, E: int) -> np.ndarray:
    """argmax_i s_i(z) (1-based, ties to the lower index as in every gate of moe_lib)."""
    return top_k(affine_scores(z, E), 1).idx[:, 0].numpy() + 1


def interpolant(f: SubFunction, l: int, i: int, m: int):  # noqa: E741
    """The m-piece linear interpolant of f_{l,i} on [i-1, i] as m ReLUs: (knots t, coef a, bias c).

    p(z) = c + sum_k a_k relu(z - t_k) with t_k = i - 1 + k/m (k = 0..m-1), c = f(t_0), a_0 the
    first slope and a_k the change of slope at t_k. p equals the interpolant on [i-1, i].
    """
    m = validate.integer(m, "m", low=1)
    t = (i - 1) + np.arange(m + 1) / m
    v = _eval_sub(f, l, i, t)
    slopes = np.diff(v) * m
    coef = np.concatenate([slopes[:1], np.diff(slopes)])
    return t[:-1], coef, float(v[0])


def interpolation_error(f: SubFunction, l: int, i: int, m: int, z) -> float:  # noqa: E741
    """max over the points z in [i-1, i] of |f_{l,i} - its m-piece interpolant| (numpy only)."""
    m = validate.integer(m, "m", low=1)
    z = np.asarray(z, dtype=np.float64)
    z = z[(z >= i - 1) & (z <= i)]
    if z.size == 0:
        raise ValueError(f"z: expected points in [{i - 1}, {i}], got none")
    t = (i - 1) + np.arange(m + 1) / m
    return float(np.max(np.abs(np.interp(z, t, _eval_sub(f, l, i, t)) - _eval_sub(f, l, i, z))))


def worst_subfunction_error(f: SubFunction, L: int, E: int, m: int, z) -> float:
    """max_{l,i} of ``interpolation_error``: the right-hand side of Thm 5.3 for these experts."""
    L, E, m = _check_sizes(L, E, m)
    return max(interpolation_error(f, k, i, m, z) for k in range(1, L + 1) for i in range(1, E + 1))


# --- experts that carry the state ---------------------------------------------------------------


# --- the two networks ---------------------------------------------------------------------------


@dataclass
class CompositionalMoE:
    """A built deep MoE for eq. (4), with the role of every parameter (see the module docstring).

    ``constant_input``: the net reads (x, 1) and returns (y, 1); ``__call__`` adds and strips it.
    """

    net: DeepMoE
    roles: dict[str, torch.Tensor]
    L: int
    E: int
    m: int
    variant: str
    constant_input: bool = False
    routed_layers: list[int] = field(default_factory=list)

    def _augment(self, x) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        x = validate.tensor(x, "x", ndim=2, last=self.L)
        if self.constant_input:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        return x

    def __call__(self, x) -> np.ndarray:
        return self.forward_with_paths(x)[0]

    def forward_with_paths(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (N, L) and the chosen expert of every layer (N, depth), 0-based."""
        with torch.no_grad():
            y, paths = self.net.forward_with_paths(self._augment(x))
        return y[:, :self.L].numpy(), paths.numpy()

    def cells(self, x) -> np.ndarray:
        """The cell (1-based) each coordinate was routed to: the routed layers' choices + 1."""
        return self.forward_with_paths(x)[1][:, self.routed_layers] + 1

    @property
    def n_experts(self) -> int:
        return sum(layer.n_experts for layer in self.net.layers)


def _hat_block(slot: int, L: int, E: int) -> Block:
    """Hats h_1..h_E of state[slot], written after the L state slots; knots k - 1/2, k = 0..E+1."""
    knots = np.arange(E + 2) - 0.5
    w_in = np.ones((E + 2, 1))
    b_in = -knots
    w_out = np.zeros((E, E + 2))
    for i in range(E):  # h_{i+1} = u_i - 2 u_{i+1} + u_{i+2}
        w_out[i, i:i + 3] = [1.0, -2.0, 1.0]
    return Block([slot], list(range(L, L + E)), [w_in, w_out], [b_in, np.zeros(E)],
                 masks=[np.ones_like(w_in, bool), w_out != 0],
                 bias_masks=[np.ones(E + 2, bool), np.zeros(E, bool)])


def _interp_block(f: SubFunction, l: int, i: int, m: int, slot: int) -> Block:  # noqa: E741
    t, a, c = interpolant(f, l, i, m)
    return Block([slot], [slot], [np.ones((m, 1)), a[None, :]], [-t, np.array([c])])


def build_hat_routed(L: int, E: int, m: int, f: SubFunction = cube_subfunction) -> CompositionalMoE:
    """(a) The theorem's depth-2L MoE: hat-feature layers alternate with routed fitting layers."""
    L, E, m = _check_sizes(L, E, m)
    layers, expert_roles, gate_roles = [], [], []
    for l in range(L):  # noqa: E741
        carry_all = [(j, j) for j in range(L)]
        hat, hat_roles = carry_expert(L, L + E, _hat_block(l, L, E), carry_all)
        experts = [hat] + [carry_expert(L, L + E, _hat_block(l, L, E), carry_all)[0]
                           for _ in range(E - 1)]
        gate, gr = gate_with_weights(np.zeros((E, L)), roles=torch.zeros(E, L, dtype=torch.int8))
        layers.append(MoE(experts, gate, L, L + E))
        expert_roles.append([hat_roles] * E)
        gate_roles.append(gr)

        carry_rest = [(j, j) for j in range(L) if j != l]
        built = [carry_expert(L + E, L, _interp_block(f, l + 1, i, m, l), carry_rest)
                 for i in range(1, E + 1)]
        W_R = np.hstack([np.zeros((E, L)), np.eye(E)])
        gate, gr = gate_with_weights(W_R, roles=torch.from_numpy((W_R != 0).astype(np.int8)))
        layers.append(MoE([b[0] for b in built], gate, L + E, L))
        expert_roles.append([b[1] for b in built])
        gate_roles.append(gr)
    net, roles = collect_roles(layers, expert_roles, gate_roles)
    return CompositionalMoE(net, roles, L, E, m, "hat", False, list(range(1, 2 * L, 2)))


def build_affine_routed(L: int, E: int, m: int,
                        f: SubFunction = cube_subfunction) -> CompositionalMoE:
    """(b) A depth-L MoE: the gate of layer l scores s_i(x_l) using the constant coordinate."""
    L, E, m = _check_sizes(L, E, m)
    i = np.arange(1, E + 1)
    layers, expert_roles, gate_roles = [], [], []
    for l in range(L):  # noqa: E741
        carry_rest = [(j, j) for j in range(L) if j != l]
        built = []
        for ii in range(1, E + 1):
            blk = _interp_block(f, l + 1, ii, m, l)
            # the output bias of coordinate L rewrites the constant 1 (a carry of the constant)
            w_out = np.vstack([blk.weights[1], np.zeros((1, m))])
            blk = Block(blk.reads, [l, L], [blk.weights[0], w_out],
                        [blk.biases[0], np.array([blk.biases[1][0], 1.0])],
                        masks=[np.ones((m, 1), bool), np.arange(2)[:, None] == np.zeros((1, m))])
            net_i, roles_i = carry_expert(L + 1, L + 1, blk, carry_rest)
            roles_i[-1][1][L] = CARRY
            built.append((net_i, roles_i))
        W_R = np.zeros((E, L + 1))
        W_R[:, l] = i - 0.5
        W_R[:, L] = -i * (i - 1) / 2
        role = np.zeros((E, L + 1), np.int8)
        role[:, [l, L]] = FUNCTION
        gate, gr = gate_with_weights(W_R, roles=torch.from_numpy(role))
        layers.append(MoE([b[0] for b in built], gate, L + 1, L + 1))
        expert_roles.append([b[1] for b in built])
        gate_roles.append(gr)
    net, roles = collect_roles(layers, expert_roles, gate_roles)
    return CompositionalMoE(net, roles, L, E, m, "affine", True, list(range(L)))


# --- parameter counts ---------------------------------------------------------------------------


def parameter_count(cnet: CompositionalMoE) -> dict[str, int]:
    """Counts on the built tensors: function / carry / used (= function + carry) entries, all stored
    (dense) entries, and nonzero entries. Raises if an entry marked unused is not zero."""
    counts = {"function": 0, "carry": 0, "unused": 0}
    nonzero = 0
    for name, p in cnet.net.named_parameters():
        role = cnet.roles.get(name)
        if role is None or role.shape != p.shape:
            got = None if role is None else tuple(role.shape)
            raise ValueError(f"roles: expected a role tensor of shape {tuple(p.shape)} for "
                             f"'{name}', got {got}")
        if bool((p.detach()[role == UNUSED] != 0).any()):
            raise ValueError(f"'{name}': an entry marked unused is nonzero")
        counts["function"] += int((role == FUNCTION).sum())
        counts["carry"] += int((role == CARRY).sum())
        counts["unused"] += int((role == UNUSED).sum())
        nonzero += int((p != 0).sum())
    counts["used"] = counts["function"] + counts["carry"]
    counts["dense"] = n_params(cnet.net)
    counts["nonzero"] = nonzero
    return counts


def parameter_formula(L: int, E: int, m: int, variant: str = "hat") -> dict[str, int]:
    """Closed-form parameter counts of ``build_hat_routed`` ("hat") / ``build_affine_routed``.

    Per block of (a): a hat expert uses 2(E+2) knot weights/biases + 3E hat weights = 5E + 4 and
    carries L slots (4 weights each: two in, two out); a fitting expert uses 3m + 1 (m knots, m
    slopes, 1 bias) and carries L - 1 slots; the routed gate uses E entries. So
        function = L E (3m + 5E + 6),   carry = L E (4L + 4(L-1)) = 4 L E (2L - 1),
        dense    = L E [(2L + E + 1)(m + 4L + E) + 4L + 2E]   (every entry of every matrix).
    (b): function = L E (3m + 3) (interpolant + 2 gate entries), carry = L E (4(L-1) + 1) (the +1
    rewrites the constant), dense = L E [(m + 2L - 2)(2L + 3) + 2L + 2].
    """
    L, E, m = _check_sizes(L, E, m)
    validate.choice(variant, "variant", ("hat", "affine"))
    if variant == "hat":
        function = L * E * (3 * m + 5 * E + 6)
        carry = 4 * L * E * (2 * L - 1)
        dense = L * E * ((2 * L + E + 1) * (m + 4 * L + E) + 4 * L + 2 * E)
        experts = 2 * L * E
    else:
        function = L * E * (3 * m + 3)
        carry = L * E * (4 * L - 3)
        dense = L * E * ((m + 2 * L - 2) * (2 * L + 3) + 2 * L + 2)
        experts = L * E
    return {"function": function, "carry": carry, "used": function + carry, "dense": dense,
            "experts": experts}


# --- evaluation helpers -------------------------------------------------------------------------


def fine_grid(E: int, points_per_unit: int) -> np.ndarray:
    """Uniform grid of [0, E], ``points_per_unit`` intervals per unit cell (integers included)."""
    E = validate.integer(E, "E", low=1)
    n = validate.integer(points_per_unit, "points_per_unit", low=1)
    return np.arange(E * n + 1) / n


def axis_covering_points(z, L: int, rng: np.random.Generator) -> np.ndarray:
    """N points of R^L whose every coordinate runs through all N values of ``z`` (a random
    permutation per axis, as in a Latin hypercube): a fine 1-D grid on every axis in N points."""
    L = validate.integer(L, "L", low=1)
    z = np.asarray(z, dtype=np.float64)
    return np.stack([z[rng.permutation(z.size)] for _ in range(L)], axis=1)


def cell_midpoints(L: int, E: int) -> np.ndarray:
    """The E^L cube midpoints (i_1 - 1/2, ..., i_L - 1/2), row-major in (i_1, ..., i_L)."""
    L, E, _ = _check_sizes(L, E)
    axes = np.meshgrid(*[np.arange(1, E + 1) - 0.5] * L, indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def measure(L: int, E: int, m: int, z, rng: np.random.Generator,
            f: SubFunction = cube_subfunction) -> dict:
    """Build (a) and (b) for (L, E, m) and measure what Thm 5.3 is about.

    On the E^L cell midpoints: distinct routing paths of each net and whether every midpoint is
    routed to its own cell. On ``axis_covering_points(z, L)``: the sup error of each net against
    eq. (4), the worst 1-D interpolation error on z (computed without any network), the largest
    |(a) - (b)|, and whether every point is routed to its cell. Plus both nets' parameter counts.
    """
    L, E, m = _check_sizes(L, E, m)
    nets = {"hat": build_hat_routed(L, E, m, f), "affine": build_affine_routed(L, E, m, f)}
    mid = cell_midpoints(L, E)
    x = axis_covering_points(z, L, rng)
    target = cube_target(x, E, f)
    out: dict = {"L": L, "E": E, "m": m, "worst_1d": worst_subfunction_error(f, L, E, m, z)}
    ys = {}
    for name, net in nets.items():
        _, paths = net.forward_with_paths(mid)
        out[f"paths_{name}"] = n_distinct_paths(paths)
        out[f"midpoints_to_own_cell_{name}"] = bool((net.cells(mid) == cell_index(mid, E)).all())
        ys[name], _ = net.forward_with_paths(x)
        out[f"points_to_own_cell_{name}"] = bool((net.cells(x) == cell_index(x, E)).all())
        out[f"sup_error_{name}"] = float(np.abs(ys[name] - target).max())
        out[f"counts_{name}"] = parameter_count(net)
        out[f"experts_{name}"] = net.n_experts
    out["agreement"] = float(np.abs(ys["hat"] - ys["affine"]).max())
    out["n_points"] = int(x.shape[0])
    return out


def routing_test_points(E: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n non-integer points of (0, E): uniform draws plus j -/+ 10^-u (j = 1..E-1, u = 1..12), the
    points closest to the cell walls where a wrong tie-break or rounding would show."""
    E = validate.integer(E, "E", low=1)
    near = (np.arange(1, E)[:, None, None] + np.array([-1.0, 1.0])[None, :, None]
            * 10.0 ** -np.arange(1, 13)[None, None, :]).ravel()
    n = validate.integer(n, "n", low=near.size + 1)
    z = np.concatenate([rng.uniform(0, E, n - near.size), near])
    z = z[(z > 0) & (z != np.round(z))]
    if z.size != n:  # a uniform draw hit an integer or 0 (probability ~ 0): draw the rest again
        z = np.concatenate([z, routing_test_points(E, n - z.size + near.size, rng)[:n - z.size]])
    return z


def cube_sampler(L: int, E: int, f: SubFunction = cube_subfunction):
    """A ``moe_lib.fitting.train`` sampler: n points uniform on [0, E]^L (float64) and eq. (4) on them."""
    L, E, _ = _check_sizes(L, E)

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(n, L, generator=generator, dtype=torch.float64) * E
        return x, torch.from_numpy(cube_target(x.numpy(), E, f))

    return sample
