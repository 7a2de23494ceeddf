"""Wang & E's shallow MoE on a manifold (Thm 4.8, Cor 4.9), written down weight by weight.

The network Psi in H^{2,E}_{l,m} (two MoE layers, E experts each, l-layer experts) works on a
*state vector* s. For the shallow theorem s = x in R^D; the deep construction (Thm 5.2) reuses the
same blocks on longer states, which is why every block takes ``read`` (the coordinates it looks
at) and ``carry`` (the coordinates it copies through unchanged, z = ReLU(z) - ReLU(-z); the
weight-writing tools are in ``moe_lib.constructions.wiring``):

- ``PartitionNet``: the layer-1 dense block. Hidden layer 1 computes the bumps
  b_i(x) = psi(||x - c_i|| / r) of the partition of unity rho_i = b_i / sum_j b_j: on a unit
  sphere ||x - c_i||^2 = 2 - 2 <c_i, x>, so b_i is a 1-D function of the linear score <c_i, x>,
  interpolated piecewise linearly at K knots by K ReLUs. Hidden layer 2 (3-layer block only)
  divides, tau_i ~ q(b_i, sum_j b_j) with q(b, S) = b / S a 2-D function fitted once by random
  features and shared by all i. A 2-layer block stops after layer 1 and outputs the bumps
  themselves: argmax_i b_i = argmax_i rho_i, because rho = b / S with S > 0.
- the layer-2 gate is ``wiring.argmax_gate``: W_R = [0 | I_E] reading the tau coordinates.
- ``chart_expert`` (3 layers): g_i o psi_i with psi_i ~ phi_i (a chart, R^D -> R^d) and
  g_i ~ F_i = f o phi_i^{-1} (R^d -> R), the output map of psi_i merged into g_i's first layer.
  ``linear_chart_expert`` (2 layers, Cor 4.9): g_i(A_i x + a_i), the affine chart merged into
  g_i's first layer.
- ``layer_one`` / ``shallow_moe``: the DeepMoE of the two layers (layer 1 = E copies of the dense
  block behind a constant gate).
- ``build_theorem_4_8`` (stereographic charts, H^{2,E}_{3,m}) and ``build_corollary_4_9``
  (tangent-projection charts, H^{2,E}_{2,m}) fit every piece for a problem (manifold, centres,
  target), e.g. ``moe_lib.experiments.p2_shallow.sphere_problem``; ``one_layer_moe`` moves
  layer 1 into a nonlinear router.

Fitted pieces are random-feature nets (``moe_lib.fitting``; Gaussian features in R^D, whose law
on an orthogonally embedded manifold does not depend on D); float64. ``evaluate`` and the sweeps
are in ``moe_lib.experiments.p2_shallow``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import geometry as geo
from .. import validate
from ..fitting import random_features as rf
from ..fitting.random_features import fit_gaussian_features
from ..models.experts import MLP
from ..models.moe import DeepMoE, MoE
from ..models.routing import MLPRouter
from ..seed import generator
from ..validate import DTYPE
from .wiring import HiddenLayer, argmax_gate, assemble, constant_gate, coords, selector


def _bump_profile(s: torch.Tensor, radius: float) -> torch.Tensor:
    """beta(s) = psi(sqrt(2 - 2 s) / r): the bump b_i as a function of s = <c_i, x> on |x| = 1."""
    return geo.bump(torch.sqrt((2.0 - 2.0 * s).clamp_min(0.0)) / radius)


@dataclass
class PartitionNet:
    """Approximation of the bump partition of unity on a unit sphere (or circle) by a ReLU net.

    ``bumps(x)``: b_hat_i(x) = sum_k a_k ReLU(<c_i, x> - t_k), the piecewise-linear interpolant of
    beta(s) = psi(sqrt(2 - 2s)/r) at the knots t_0 = 1 - r^2/2 < ... < t_K = 1; b_hat_i = 0
    exactly where ||x - c_i|| >= r (s <= t_0), so supp b_hat_i = supp b_i.
    ``tau(x)``: tau_i = q_hat(b_hat_i, sum_j b_hat_j), q_hat ~ q(b, S) = b / S on
    {0 <= b <= min(S, 1/e), S_lo <= S <= S_hi} (needs ``division``).
    ``block(...)``: the same maps as one ReLU MLP (depth 2: bumps; depth 3: tau).
    """

    centres: torch.Tensor
    radius: float
    knots: torch.Tensor
    knot_coef: torch.Tensor
    division: rf.RandomFeatureNet | None = None
    b_shift: float = 0.0
    b_scale: float = 1.0
    s_shift: float = 0.0
    s_scale: float = 1.0
    s_range: tuple[float, float] = (0.0, 0.0)

    @property
    def n_charts(self) -> int:
        return self.centres.shape[0]

    @property
    def n_in(self) -> int:
        return self.centres.shape[1]

    def bumps(self, x) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.n_in).to(DTYPE)
        s = x @ self.centres.T                                          # (N, E)
        return torch.relu(s[:, :, None] - self.knots[None, None, :]) @ self.knot_coef

    def _division_input(self, b: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        return torch.stack([(b - self.b_shift) / self.b_scale,
                            ((total - self.s_shift) / self.s_scale).expand_as(b)], dim=-1)

    def tau(self, x) -> torch.Tensor:
        if self.division is None:
            raise ValueError("tau: this PartitionNet has no division net (division_width=None); "
                             "use bumps(), or fit with a division_width")
        b = self.bumps(x)
        z = self._division_input(b, b.sum(dim=1, keepdim=True))
        return self.division.predict(z.reshape(-1, 2)).reshape(b.shape)

    def block(self, n_in: int, read, carry=None, depth: int = 3) -> MLP:
        """MLP: state s (n_in) -> (s[carry], tau(s[read])) for depth 3, (s[carry], b_hat(s[read]))
        for depth 2. ``carry`` defaults to every coordinate (the identity carry of layer 1)."""
        n_in = validate.integer(n_in, "n_in", low=1)
        read = coords(read, n_in, "read")
        carry = coords(range(n_in) if carry is None else carry, n_in, "carry")
        depth = validate.choice(depth, "depth", (2, 3))
        if read.numel() != self.n_in:
            raise ValueError(f"read: expected {self.n_in} coordinates (the centres' dimension), "
                             f"got {read.numel()}")
        if depth == 3 and self.division is None:
            raise ValueError("depth: a 3-layer block needs the division net (division_width)")
        E, K = self.n_charts, self.knots.numel()
        sel_c, sel_r = selector(n_in, carry), selector(n_in, read)
        h1 = HiddenLayer(n_in)
        pos1 = h1.add(sel_c, torch.zeros(len(carry)))
        neg1 = h1.add(-sel_c, torch.zeros(len(carry)))
        # bump neuron (i, k): ReLU(<c_i, s[read]> - t_k), i-major
        w_b = (self.centres @ sel_r).repeat_interleave(K, dim=0)
        bmp = h1.add(w_b, -self.knots.repeat(E))
        # b_hat = B h1 with B (E, |h1|)
        B = torch.zeros(E, h1.size, dtype=DTYPE)
        for i in range(E):
            B[i, bmp.start + i * K: bmp.start + (i + 1) * K] = self.knot_coef
        n_c = len(carry)
        if depth == 2:
            out_w = torch.zeros(n_c + E, h1.size, dtype=DTYPE)
            out_w[:n_c, pos1] = torch.eye(n_c, dtype=DTYPE)
            out_w[:n_c, neg1] = -torch.eye(n_c, dtype=DTYPE)
            out_w[n_c:] = B
            return assemble([h1], out_w, torch.zeros(n_c + E, dtype=DTYPE))
        # hidden layer 2: carry again (ReLU of a nonnegative value is itself), then division
        h2 = HiddenLayer(h1.size)
        eye1 = torch.eye(h1.size, dtype=DTYPE)
        pos2 = h2.add(eye1[pos1], torch.zeros(n_c))
        neg2 = h2.add(eye1[neg1], torch.zeros(n_c))
        net = self.division
        Q = net.width
        wb, ws = net.W[:, 0] / self.b_scale, net.W[:, 1] / self.s_scale
        bias = (net.b - net.W[:, 0] * self.b_shift / self.b_scale
                - net.W[:, 1] * self.s_shift / self.s_scale)
        S_row = B.sum(dim=0)
        for i in range(E):
            h2.add(wb[:, None] * B[i][None, :] + ws[:, None] * S_row[None, :], bias)
        first_div = neg2.stop
        out_w = torch.zeros(n_c + E, h2.size, dtype=DTYPE)
        out_w[:n_c, pos2] = torch.eye(n_c, dtype=DTYPE)
        out_w[:n_c, neg2] = -torch.eye(n_c, dtype=DTYPE)
        for i in range(E):
            out_w[n_c + i, first_div + i * Q: first_div + (i + 1) * Q] = net.coef[:, 0]
        out_b = torch.cat([torch.zeros(n_c, dtype=DTYPE), net.intercept.expand(E)])
        return assemble([h1, h2], out_w, out_b)


def fit_partition_net(x_sample, centres, radius: float, n_knots: int = 64,
                      division_width: int | None = 128, seed: int = 0,
                      samples_per_feature: int = 30, margin: float = 0.1) -> PartitionNet:
    """Fit a ``PartitionNet`` for caps B(c_i, r) of the unit sphere containing ``x_sample``.

    ``x_sample`` (N, n): points of the manifold, used only to find the range [S_min, S_max] of
    S = sum_j b_j on it; the division net q_hat is fitted on ``samples_per_feature`` x width
    uniform points of {0 <= b <= min(S, 1/e), S in [(1 - margin) S_min, (1 + margin) S_max]}.
    ``division_width=None`` gives the bumps-only net (for 2-layer blocks).
    """
    x = validate.tensor(x_sample, "x_sample", ndim=2).to(DTYPE)
    C = validate.tensor(centres, "centres", ndim=2, last=x.shape[1]).to(DTYPE)
    radius = validate.positive(radius, "radius")
    if radius >= 2.0:
        raise ValueError(f"radius: expected a chordal radius < 2, got {radius}")
    norms = torch.linalg.vector_norm(torch.cat([x, C]), dim=1)
    if float((norms - 1.0).abs().max()) > 1e-8:
        raise ValueError("x_sample, centres: expected points of a unit sphere (norm 1), "
                         "got norms in "
                         f"[{float(norms.min()):.6g}, {float(norms.max()):.6g}]")
    n_knots = validate.integer(n_knots, "n_knots", low=1)
    s0 = 1.0 - radius ** 2 / 2.0
    nodes = s0 + (1.0 - s0) * torch.arange(n_knots + 1, dtype=DTYPE) / n_knots
    vals = _bump_profile(nodes, radius)
    slopes = (vals[1:] - vals[:-1]) / (nodes[1:] - nodes[:-1])
    coef = slopes - torch.cat([torch.zeros(1, dtype=DTYPE), slopes[:-1]])
    net = PartitionNet(C, radius, nodes[:-1].contiguous(), coef)
    pu = geo.partition_of_unity(x, C, radius)
    if pu.n_uncovered:
        raise ValueError(f"centres, radius: expected caps covering the sample, "
                         f"{pu.n_uncovered} points are in no cap")
    if division_width is None:
        return net
    division_width = validate.integer(division_width, "division_width", low=1)
    total = net.bumps(x).sum(dim=1)
    s_lo, s_hi = (1.0 - margin) * float(total.min()), (1.0 + margin) * float(total.max())
    b_max = math.exp(-1.0)
    gen = generator(seed)
    n = samples_per_feature * division_width
    S = s_lo + (s_hi - s_lo) * torch.rand(n, generator=gen, dtype=DTYPE)
    b = torch.rand(n, generator=gen, dtype=DTYPE) * S.clamp_max(b_max)
    net.b_shift, net.b_scale = b_max / 2, b_max / 2
    net.s_shift, net.s_scale = (s_lo + s_hi) / 2, (s_hi - s_lo) / 2
    net.s_range = (s_lo, s_hi)
    z = net._division_input(b[:, None], S[:, None]).reshape(-1, 2)
    net.division = rf.fit_random_features(z, b / S, division_width, seed=gen, bias_scale=1.5)
    return net


def chart_expert(n_in: int, read, psi: rf.RandomFeatureNet, g: rf.RandomFeatureNet,
                 carry=()) -> MLP:
    """3-layer MLP: state s (n_in) -> (s[carry], g(psi(s[read]))).

    Hidden 1 = psi's features ReLU(W_psi s[read] + b_psi); hidden 2 = g's features of psi's
    output, ReLU(W_g (C_psi^T h1 + c_psi) + b_g): psi's output map is merged into g's first layer.
    """
    n_in = validate.integer(n_in, "n_in", low=1)
    read = coords(read, n_in, "read")
    carry = coords(carry, n_in, "carry")
    if psi.d_in != read.numel() or g.d_in != psi.d_out:
        raise ValueError(f"psi, g: expected psi: R^{read.numel()} -> R^k and g: R^k -> R^q, got "
                         f"psi: R^{psi.d_in} -> R^{psi.d_out}, g: R^{g.d_in} -> R^{g.d_out}")
    n_c = carry.numel()
    sel_c = selector(n_in, carry)
    h1 = HiddenLayer(n_in)
    pos1 = h1.add(sel_c, torch.zeros(n_c))
    neg1 = h1.add(-sel_c, torch.zeros(n_c))
    feat1 = h1.add(psi.W @ selector(n_in, read), psi.b)
    h2 = HiddenLayer(h1.size)
    eye1 = torch.eye(h1.size, dtype=DTYPE)
    pos2 = h2.add(eye1[pos1], torch.zeros(n_c))
    neg2 = h2.add(eye1[neg1], torch.zeros(n_c))
    w2 = torch.zeros(g.width, h1.size, dtype=DTYPE)
    w2[:, feat1] = g.W @ psi.coef.T
    feat2 = h2.add(w2, g.W @ psi.intercept + g.b)
    out_w = torch.zeros(n_c + g.d_out, h2.size, dtype=DTYPE)
    out_w[:n_c, pos2] = torch.eye(n_c, dtype=DTYPE)
    out_w[:n_c, neg2] = -torch.eye(n_c, dtype=DTYPE)
    out_w[n_c:, feat2] = g.coef.T
    out_b = torch.cat([torch.zeros(n_c, dtype=DTYPE), g.intercept])
    return assemble([h1, h2], out_w, out_b)


def linear_chart_expert(n_in: int, read, A, a, g: rf.RandomFeatureNet, carry=()) -> MLP:
    """2-layer MLP: state s -> (s[carry], g(A s[read] + a)); the affine chart (A, a) is merged
    into g's first layer, W_g A and W_g a + b_g (Cor 4.9)."""
    n_in = validate.integer(n_in, "n_in", low=1)
    read = coords(read, n_in, "read")
    carry = coords(carry, n_in, "carry")
    A = validate.tensor(A, "A", ndim=2, last=read.numel()).to(DTYPE)
    a = validate.tensor(a, "a", ndim=1, last=A.shape[0]).to(DTYPE)
    if g.d_in != A.shape[0]:
        raise ValueError(f"g: expected an input dimension {A.shape[0]} (the chart's), got {g.d_in}")
    n_c = carry.numel()
    sel_c = selector(n_in, carry)
    h1 = HiddenLayer(n_in)
    pos1 = h1.add(sel_c, torch.zeros(n_c))
    neg1 = h1.add(-sel_c, torch.zeros(n_c))
    feat = h1.add(g.W @ A @ selector(n_in, read), g.W @ a + g.b)
    out_w = torch.zeros(n_c + g.d_out, h1.size, dtype=DTYPE)
    out_w[:n_c, pos1] = torch.eye(n_c, dtype=DTYPE)
    out_w[:n_c, neg1] = -torch.eye(n_c, dtype=DTYPE)
    out_w[n_c:, feat] = g.coef.T
    return assemble([h1], out_w, torch.cat([torch.zeros(n_c, dtype=DTYPE), g.intercept]))


def layer_one(block: MLP, n_experts: int) -> MoE:
    """Layer 1 as an MoE layer: ``n_experts`` copies of the dense ``block`` behind a constant gate
    (every score ties, so every input goes to expert 0; the gate is irrelevant)."""
    n_experts = validate.integer(n_experts, "n_experts", low=1)
    copies = [block] + [copy.deepcopy(block) for _ in range(n_experts - 1)]
    return MoE(copies, constant_gate(block.d_in, n_experts), block.d_in, block.d_out)


def shallow_moe(layer1: MLP | MoE, experts: Sequence[MLP], tau_cols) -> DeepMoE:
    """The two-layer MoE: layer 1 (an MoE layer, or a dense block turned into one by
    ``layer_one``), then layer 2 = ``experts`` behind ``argmax_gate(d_mid, tau_cols)``."""
    E = len(experts)
    if E < 1:
        raise ValueError("experts: expected at least one expert, got none")
    if not isinstance(layer1, MoE):
        layer1 = layer_one(layer1, E)
    d_mid = layer1.d_out
    for i, e in enumerate(experts):
        if e.d_in != d_mid:
            raise ValueError(f"experts[{i}]: expected input size {d_mid} (layer 1's output), "
                             f"got {e.d_in}")
    layer2 = MoE(list(experts), argmax_gate(d_mid, tau_cols), d_mid, experts[0].d_out)
    return DeepMoE([layer1, layer2])


@dataclass
class LocalFit:
    """g_i ~ F_i = f o phi_i^{-1} on the ball {|u| <= radius} of chart space, with
    ``grid_sup`` = max |g_i - F_i| over a grid of that ball (the grid estimate of ||g_i - F_i||)."""

    g: rf.RandomFeatureNet
    radius: float
    grid_sup: float


@dataclass
class ChartFit:
    """Expert i's pieces: the chart, g (for a stereographic chart inside a ``LocalFit``), and psi
    (None for a linear chart, whose expert is g(phi(x)) exactly)."""

    chart: object
    g: rf.RandomFeatureNet
    psi: rf.RandomFeatureNet | None = None
    local: LocalFit | None = None


@dataclass
class ShallowConstruction:
    """A built Psi in H^{2,E}_{l,m} with everything needed to evaluate the proof's quantities."""

    manifold: geo.EmbeddedManifold
    centres: torch.Tensor
    radius: float
    target: Callable
    partition: PartitionNet
    charts: list[ChartFit]
    network: DeepMoE
    depth: int
    normalised: bool

    @property
    def n_experts(self) -> int:
        return len(self.charts)

    def expert_output(self, i: int, x) -> torch.Tensor:
        """g_i(psi_i(x)) (or g_i(phi_i(x)) for a linear chart) from the fitted pieces, (N,)."""
        c = self.charts[i]
        u = c.chart(x) if c.psi is None else c.psi.predict(x).reshape(-1, c.g.d_in)
        return c.g.predict(u).reshape(-1)

    def local_target(self, i: int, u) -> torch.Tensor:
        """F_i(u) = f(phi_i^{-1}(u))."""
        return self.target(self.charts[i].chart.inverse(u))


def fit_local_functions(manifold: geo.Sphere, centres, radius: float, target: Callable,
                        width: int, *, seed: int = 0, samples_per_feature: int = 8,
                        margin: float = 0.1, grid_per_axis: int | None = None) -> list[LocalFit]:
    """For each cap i: g_i, random features in R^d of width ``width``, least-squares fitted to
    F_i = f o phi_i^{-1} (stereographic chart) on ``samples_per_feature`` x width uniform points of
    the ball |u| <= R, R = (1 + margin) x the radius of the cap's chart image (the slightly
    enlarged chart domain; phi_i^{-1} is defined on all of R^d, so F_i is too)."""
    C = validate.tensor(centres, "centres", ndim=2, last=manifold.D).to(DTYPE)
    width = validate.integer(width, "width", low=1)
    d = manifold.d
    R = (1.0 + margin) * geo.StereographicChart.cap_image_radius(radius)
    grid = geo.ball_grid(d, R, grid_per_axis or (1001 if d == 1 else 21))
    out = []
    for i in range(C.shape[0]):
        chart = geo.StereographicChart(manifold, C[i])
        gen = generator(seed + 300 + i)
        u = geo.ball_points(samples_per_feature * width, d, R, gen)
        g = rf.fit_random_features(u, target(chart.inverse(u)), width, seed=gen, bias_scale=R)
        sup = float((g.predict(grid) - target(chart.inverse(grid))).abs().max())
        out.append(LocalFit(g, R, sup))
    return out


def _unpack_problem(problem) -> tuple:
    """(manifold, centres, target) from a problem object that unpacks as such a triple (e.g. a
    ``moe_lib.experiments.p2_shallow.SphereProblem``) or from the tuple itself."""
    try:
        parts = tuple(problem)
    except TypeError:
        parts = ()
    if len(parts) != 3:
        raise ValueError("problem: expected a SphereProblem or a (manifold, centres, target) tuple, "
                         f"got {type(problem).__name__}")
    return parts


def build_theorem_4_8(problem, radius: float, width: int, *, n_knots: int = 64,
                      division_width: int = 128, seed: int = 0, samples_per_feature: int = 8,
                      partition: PartitionNet | None = None, layer1: MoE | None = None,
                      local_fits: Sequence[LocalFit] | None = None) -> ShallowConstruction:
    """Psi in H^{2,E}_{3,m}: layer 1 = E copies of the 3-layer ``PartitionNet`` block
    x -> (x, tau(x)); layer 2 = experts g_i o psi_i with stereographic charts phi_i.

    psi_i: Gaussian random features in R^D of width ``width`` fitted to phi_i on
    ``samples_per_feature`` x width points of cap i; g_i from ``fit_local_functions`` (same width).
    ``partition``, ``layer1`` and ``local_fits`` may be passed in to reuse pieces that do not
    depend on m (layer 1) or on D (g_i).
    """
    manifold, C, target = _unpack_problem(problem)
    width = validate.integer(width, "width", low=1)
    E, D = C.shape[0], manifold.D
    if partition is None:
        partition = fit_partition_net(manifold.sample(20000, seed + 1), C, radius, n_knots,
                                      division_width, seed + 2)
    if local_fits is None:
        local_fits = fit_local_functions(manifold, C, radius, target, width, seed=seed,
                                         samples_per_feature=samples_per_feature)
    if len(local_fits) != E:
        raise ValueError(f"local_fits: expected one per cap ({E}), got {len(local_fits)}")
    fits, experts = [], []
    for i in range(E):
        chart = geo.StereographicChart(manifold, C[i])
        xs = geo.cap_points(manifold, C[i], radius, samples_per_feature * width, seed + 100 + i)
        psi = fit_gaussian_features(xs, chart(xs), width, seed + 200 + i,
                                    bias_std=radius / 2, centre=C[i])
        fits.append(ChartFit(chart, local_fits[i].g, psi, local_fits[i]))
        experts.append(chart_expert(D + E, range(D), psi, local_fits[i].g))
    if layer1 is None:
        layer1 = layer_one(partition.block(D, range(D), depth=3), E)
    net = shallow_moe(layer1, experts, range(D, D + E))
    return ShallowConstruction(manifold, C, radius, target, partition, fits, net, 3, True)


def build_corollary_4_9(problem, radius: float, width: int, *, n_knots: int = 64,
                        seed: int = 0,
                        samples_per_feature: int = 8, partition: PartitionNet | None = None,
                        layer1: MoE | None = None) -> ShallowConstruction:
    """Psi in H^{2,E}_{2,m}: layer 1 = E copies of the 2-layer ``PartitionNet`` block
    x -> (x, b_hat(x)) (bumps, no division: argmax b = argmax rho); layer 2 = experts
    g_i(A_i x + a_i) with the tangent-projection charts of ``moe_lib.geometry`` (affine,
    rescaled to [0,1]^d on the cap), built on the intrinsic sphere and embedded
    (``EmbeddedChart``).

    g_i: random features in R^d of width ``width`` (hyperplanes centred on the chart image, the
    ball around (1/2, ..., 1/2): features of u - 1/2 with biases in [-1/2, 1/2], the shift moved
    into the biases) fitted to F_i = f o phi_i^{-1} on the chart images phi_i(x) of
    ``samples_per_feature`` x width points of cap i. Points, charts and target values are
    computed in intrinsic coordinates, so with a fixed seed every fit is bitwise the same for
    every D (least squares would amplify rounding differences of 1e-16 by its condition number).
    """
    manifold, C, target = _unpack_problem(problem)
    width = validate.integer(width, "width", low=1)
    E, D, d = C.shape[0], manifold.D, manifold.d
    if partition is None:
        partition = fit_partition_net(manifold.sample(20000, seed + 1), C, radius, n_knots,
                                      None, seed + 2)
    M0, C0, f0 = geo.Sphere(d), problem.centres_intrinsic, problem.intrinsic_target
    mid = torch.full((d,), 0.5, dtype=DTYPE)     # the chart image is a ball around (1/2, ..., 1/2)
    fits, experts = [], []
    for i in range(E):
        chart0 = geo.TangentChart(M0, C0[i], radius)
        y = geo.cap_points(M0, C0[i], radius, samples_per_feature * width, seed + 100 + i, True)
        g0 = rf.fit_random_features(chart0(y) - mid, f0(y), width, seed=seed + 300 + i,
                                    bias_scale=0.5)
        g = rf.RandomFeatureNet(g0.W, g0.b - g0.W @ mid, g0.coef, g0.intercept, True)
        chart = geo.EmbeddedChart(chart0, manifold.Q)
        fits.append(ChartFit(chart, g))
        A, a = chart.affine()
        experts.append(linear_chart_expert(D + E, range(D), A, a, g))
    if layer1 is None:
        layer1 = layer_one(partition.block(D, range(D), depth=2), E)
    net = shallow_moe(layer1, experts, range(D, D + E))
    return ShallowConstruction(manifold, C, radius, target, partition, fits, net, 2, False)


def one_layer_moe(con: ShallowConstruction, router_depth: int = 2) -> MoE:
    """The same experts as ``con``'s layer 2, reading x in R^D directly, behind a *nonlinear*
    router: the ``PartitionNet`` block without the identity carry, as a ReLU MLP computing the
    scores (depth 2: the bumps b_hat; depth 3: tau ~ rho). One MoE layer instead of two
    (``moe_lib.models.routing.MLPRouter``)."""
    D, E = con.manifold.D, con.n_experts
    scores = con.partition.block(D, range(D), carry=(), depth=router_depth)
    experts = []
    for c in con.charts:
        if c.psi is None:
            A, a = c.chart.affine()
            experts.append(linear_chart_expert(D, range(D), A, a, c.g))
        else:
            experts.append(chart_expert(D, range(D), c.psi, c.g))
    if scores.d_out != E:
        raise ValueError(f"con: expected {E} router scores, got {scores.d_out}")
    return MoE(experts, MLPRouter(scores), D, 1)


