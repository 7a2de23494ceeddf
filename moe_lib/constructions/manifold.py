"""Wang & E's shallow MoE on a manifold (Thm 4.8, Cor 4.9), written down weight by weight.

The network Psi in H^{2,E}_{l,m} (two MoE layers, E experts each, l-layer experts) works on a
*state vector* s. For the shallow theorem s = x in R^D; the deep construction (Thm 5.2) reuses the
same blocks on longer states, which is why every block takes ``read`` (the coordinates it looks
at) and ``carry`` (the coordinates it copies through unchanged, z = ReLU(z) - ReLU(-z)):

- ``PartitionNet``: the layer-1 dense block. Hidden layer 1 computes the bumps
  b_i(x) = psi(||x - c_i|| / r) of the partition of unity rho_i = b_i / sum_j b_j: on a unit
  sphere ||x - c_i||^2 = 2 - 2 <c_i, x>, so b_i is a 1-D function of the linear score <c_i, x>,
  interpolated piecewise linearly at K knots by K ReLUs. Hidden layer 2 (3-layer block only)
  divides, tau_i ~ q(b_i, sum_j b_j) with q(b, S) = b / S a 2-D function fitted once by random
  features and shared by all i. A 2-layer block stops after layer 1 and outputs the bumps
  themselves: argmax_i b_i = argmax_i rho_i, because rho = b / S with S > 0.
- ``argmax_gate``: the layer-2 gate W_R = [0 | I_E] reading the tau coordinates; top-1 picks
  i* = argmax_i tau_i.
- ``chart_expert`` (3 layers): g_i o psi_i with psi_i ~ phi_i (a chart, R^D -> R^d) and
  g_i ~ F_i = f o phi_i^{-1} (R^d -> R), the output map of psi_i merged into g_i's first layer.
  ``linear_chart_expert`` (2 layers, Cor 4.9): g_i(A_i x + a_i), the affine chart merged into
  g_i's first layer.
- ``layer_one`` / ``shallow_moe``: the DeepMoE of the two layers (layer 1 = E copies of the dense
  block behind a constant gate).
- ``SphereProblem`` / ``sphere_problem``: S^d in R^D, cap centres and the target
  f(x) = |<x, v>|^p, given in intrinsic coordinates; ``build_theorem_4_8`` (stereographic charts,
  H^{2,E}_{3,m}) and ``build_corollary_4_9`` (tangent-projection charts, H^{2,E}_{2,m}) fit every
  piece; ``evaluate`` measures what the proof uses (routes, tau - rho, chart and fit errors, the
  pointwise two-term bound); ``one_layer_moe`` moves layer 1 into a nonlinear router.
- The routing lemma on given partitions of unity: ``perturbed_scores``, ``valid_route_fraction``,
  ``adversarial_threshold``, ``routing_table``; ``critical_points`` where most caps overlap.
- ``theorem_4_8_sweep`` / ``corollary_4_9_sweep``: the chapters' grids over D and m.

Fitted pieces use one-hidden-layer random-feature networks (``moe_lib.random_features``); the
features in R^D are Gaussian (``fit_gaussian_features``), whose law restricted to an orthogonally
embedded manifold does not depend on D. Everything is float64.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import manifolds as mf
from .. import random_features as rf
from .. import validate
from ..architectures import MLPRouter
from ..experts import MLP, mlp_param_count, n_nonzero, n_params, relu_mlp_from_weights
from ..moe import DeepMoE, MoE
from ..progress import progress
from ..rates import loglog_slope
from ..routing import TopKGate

DTYPE = torch.float64

# ----------------------------------------------------------------------------------------------
# small helpers


def _index(idx, n: int, name: str) -> torch.Tensor:
    """Coordinates ``idx`` (a sequence of ints or a range) of a state of size n, as a tensor."""
    out = torch.as_tensor(list(idx), dtype=torch.long)
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D list of coordinates, "
                         f"got shape {tuple(out.shape)}")
    if out.numel() and (int(out.min()) < 0 or int(out.max()) >= n):
        raise ValueError(f"{name}: expected coordinates in [0, {n - 1}], got {out.tolist()}")
    if out.unique().numel() != out.numel():
        raise ValueError(f"{name}: expected distinct coordinates, got {out.tolist()}")
    return out


def _select(n_in: int, idx: torch.Tensor) -> torch.Tensor:
    """The (len(idx), n_in) 0/1 matrix picking the coordinates idx of a state."""
    sel = torch.zeros(idx.numel(), n_in, dtype=DTYPE)
    sel[torch.arange(idx.numel()), idx] = 1.0
    return sel


class _Layer:
    """A hidden layer under construction: rows of (weights on the previous layer, bias)."""

    def __init__(self, n_prev: int):
        self.n_prev = n_prev
        self.w: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []

    def add(self, w: torch.Tensor, b: torch.Tensor) -> slice:
        start = self.size
        self.w.append(w.to(DTYPE).reshape(-1, self.n_prev))
        self.b.append(b.to(DTYPE).reshape(-1))
        return slice(start, self.size)

    @property
    def size(self) -> int:
        return sum(int(w.shape[0]) for w in self.w)

    def matrices(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights padded with zero rows to ``width`` (zero neurons output ReLU(0) = 0)."""
        w = torch.cat(self.w) if self.w else torch.zeros(0, self.n_prev, dtype=DTYPE)
        b = torch.cat(self.b) if self.b else torch.zeros(0, dtype=DTYPE)
        pad = width - w.shape[0]
        return (torch.cat([w, torch.zeros(pad, self.n_prev, dtype=DTYPE)]),
                torch.cat([b, torch.zeros(pad, dtype=DTYPE)]))


def _pad_cols(w: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([w, torch.zeros(w.shape[0], width - w.shape[1], dtype=DTYPE)], dim=1)


def _build(layers: list[_Layer], out_w: torch.Tensor, out_b: torch.Tensor) -> MLP:
    """Assemble hidden layers (each a _Layer whose rows act on the previous, unpadded layer) and
    the output map into one ``MLP`` of equal hidden widths."""
    width = max(max(layer.size for layer in layers), 1)
    weights, biases = [], []
    for k, layer in enumerate(layers):
        w, b = layer.matrices(width)
        if k > 0:
            w = _pad_cols(w, width)
        weights.append(w)
        biases.append(b)
    weights.append(_pad_cols(out_w.to(DTYPE), width))
    biases.append(out_b.to(DTYPE))
    return relu_mlp_from_weights(weights, biases)


# ----------------------------------------------------------------------------------------------
# Gaussian random features (law on an orthogonally embedded manifold independent of D)


def gaussian_relu_features(d_in: int, width: int, seed: int | torch.Generator = 0,
                           bias_std: float = 1.0, centre=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ReLU(<w, x - c> + beta): w ~ N(0, I_{d_in}), beta ~ N(0, bias_std^2), returned as
    (W (width, d_in), b (width,)) with b = beta - <w, c> (c = ``centre``, default 0).

    For x = Q y with Q^T Q = I, <w, x> = <Q^T w, y> and Q^T w ~ N(0, I_k) whatever D is: the
    features restricted to the embedded manifold have the same law for every ambient dimension.
    """
    d_in = validate.integer(d_in, "d_in", low=1)
    width = validate.integer(width, "width", low=1)
    bias_std = validate.positive(bias_std, "bias_std")
    gen = mf.generator(seed)
    w = torch.randn(width, d_in, generator=gen, dtype=DTYPE)
    beta = bias_std * torch.randn(width, generator=gen, dtype=DTYPE)
    if centre is not None:
        c = validate.tensor(centre, "centre", ndim=1, last=d_in).to(DTYPE)
        beta = beta - w @ c
    return w, beta


def fit_gaussian_features(x, y, width: int, seed: int | torch.Generator = 0, bias_std: float = 1.0,
                          centre=None, ridge: float = rf.DEFAULT_RIDGE) -> rf.RandomFeatureNet:
    """Least-squares outer layer on ``gaussian_relu_features``; y (N,) or (N, d_out)."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y").to(DTYPE)
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected shape ({x.shape[0]},) or ({x.shape[0]}, d_out), "
                         f"got {tuple(y.shape)}")
    scalar = y.ndim == 1
    W, b = gaussian_relu_features(x.shape[1], width, seed, bias_std, centre)
    phi = torch.cat([rf.relu_features(x, W, b), torch.ones(x.shape[0], 1, dtype=DTYPE)], dim=1)
    c = rf.least_squares(phi, y[:, None] if scalar else y, ridge)
    return rf.RandomFeatureNet(W, b, c[:-1].contiguous(), c[-1].contiguous(), scalar)


# ----------------------------------------------------------------------------------------------
# targets and charts


@dataclass
class AbsPowerTarget:
    """f(x) = |<x, v>|^p. For 1 < p < 2 it is C^1 but not C^2 near {<x, v> = 0}: kappa(f) = 1.

    On the unit ball its gradient p |<x,v>|^{p-1} sign(<x,v>) v has norm <= p ||v||: that is
    ``lipschitz`` (for p >= 1).
    """

    direction: torch.Tensor
    power: float = 1.5

    def __post_init__(self):
        self.direction = validate.tensor(self.direction, "direction", ndim=1).to(DTYPE)
        p = validate.positive(self.power, "power")
        if p < 1:
            raise ValueError(f"power: expected p >= 1 (a Lipschitz target), got {p}")

    def __call__(self, x) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.direction.numel()).to(DTYPE)
        return (x @ self.direction).abs() ** self.power

    @property
    def lipschitz(self) -> float:
        return float(self.power * torch.linalg.vector_norm(self.direction))


class StereographicChart:
    """Stereographic projection of the unit sphere from -c onto the tangent space at c:

    u = A x / (1 + <c, x>),   x = phi^{-1}(u) = (2 A^T u + (1 - |u|^2) c) / (1 + |u|^2),

    A = ``manifold.tangent_basis(c)`` (orthonormal rows, A c = 0). phi is C^infinity on
    {<c, x> > -1} (so on every cap it is 'regular' in the sense of Def 4.7) and *not* linear in x;
    phi^{-1} is defined on all of R^d, conformal with factor 2 / (1 + |u|^2) <= 2, so
    Lip(f o phi^{-1}) <= 2 Lip(f) on R^d (``lipschitz_factor``).
    """

    lipschitz_factor = 2.0

    def __init__(self, manifold: mf.EmbeddedManifold, centre):
        if not isinstance(manifold, mf.Sphere):
            raise ValueError(f"manifold: expected a moe_lib.manifolds.Sphere, got {manifold!r}")
        self.manifold = manifold
        self.centre = validate.tensor(centre, "centre", ndim=1, last=manifold.D).to(DTYPE)
        self.A = manifold.tangent_basis(self.centre)

    @property
    def d(self) -> int:
        return self.A.shape[0]

    def __call__(self, x) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.A.shape[1]).to(DTYPE)
        return (x @ self.A.T) / (1.0 + x @ self.centre)[:, None]

    def inverse(self, u) -> torch.Tensor:
        u = validate.tensor(u, "u", ndim=2, last=self.d).to(DTYPE)
        sq = (u ** 2).sum(dim=1, keepdim=True)
        return (2.0 * u @ self.A + (1.0 - sq) * self.centre[None, :]) / (1.0 + sq)

    @staticmethod
    def cap_image_radius(radius: float) -> float:
        """|u| on the cap ||x - c|| < r: angle theta < 2 asin(r/2), |u| = tan(theta/2)."""
        radius = validate.positive(radius, "radius")
        if radius >= 2.0:
            raise ValueError(f"radius: expected a chordal radius < 2 (a cap, not the sphere), "
                             f"got {radius}")
        return math.tan(math.asin(radius / 2.0))


# ----------------------------------------------------------------------------------------------
# the partition-of-unity network (layer 1)


def _bump_profile(s: torch.Tensor, radius: float) -> torch.Tensor:
    """beta(s) = psi(sqrt(2 - 2 s) / r): the bump b_i as a function of s = <c_i, x> on |x| = 1."""
    return mf.bump(torch.sqrt((2.0 - 2.0 * s).clamp_min(0.0)) / radius)


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
        read = _index(read, n_in, "read")
        carry = _index(range(n_in) if carry is None else carry, n_in, "carry")
        depth = validate.choice(depth, "depth", (2, 3))
        if read.numel() != self.n_in:
            raise ValueError(f"read: expected {self.n_in} coordinates (the centres' dimension), "
                             f"got {read.numel()}")
        if depth == 3 and self.division is None:
            raise ValueError("depth: a 3-layer block needs the division net (division_width)")
        E, K = self.n_charts, self.knots.numel()
        sel_c, sel_r = _select(n_in, carry), _select(n_in, read)
        h1 = _Layer(n_in)
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
            return _build([h1], out_w, torch.zeros(n_c + E, dtype=DTYPE))
        # hidden layer 2: carry again (ReLU of a nonnegative value is itself), then division
        h2 = _Layer(h1.size)
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
        return _build([h1, h2], out_w, out_b)


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
    pu = mf.partition_of_unity(x, C, radius)
    if pu.n_uncovered:
        raise ValueError(f"centres, radius: expected caps covering the sample, "
                         f"{pu.n_uncovered} points are in no cap")
    if division_width is None:
        return net
    division_width = validate.integer(division_width, "division_width", low=1)
    total = net.bumps(x).sum(dim=1)
    s_lo, s_hi = (1.0 - margin) * float(total.min()), (1.0 + margin) * float(total.max())
    b_max = math.exp(-1.0)
    gen = mf.generator(seed)
    n = samples_per_feature * division_width
    S = s_lo + (s_hi - s_lo) * torch.rand(n, generator=gen, dtype=DTYPE)
    b = torch.rand(n, generator=gen, dtype=DTYPE) * S.clamp_max(b_max)
    net.b_shift, net.b_scale = b_max / 2, b_max / 2
    net.s_shift, net.s_scale = (s_lo + s_hi) / 2, (s_hi - s_lo) / 2
    net.s_range = (s_lo, s_hi)
    z = net._division_input(b[:, None], S[:, None]).reshape(-1, 2)
    net.division = rf.fit_random_features(z, b / S, division_width, seed=gen, bias_scale=1.5)
    return net


# ----------------------------------------------------------------------------------------------
# gates and experts (layer 2)


def argmax_gate(n_in: int, cols) -> TopKGate:
    """Bias-free top-1 gate whose score i is the state coordinate cols[i]: W_R = [0 | I_E]."""
    n_in = validate.integer(n_in, "n_in", low=1)
    cols = _index(cols, n_in, "cols")
    gate = TopKGate(n_in, cols.numel(), k=1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        gate.linear.weight.copy_(_select(n_in, cols))
    return gate


def constant_gate(n_in: int, n_experts: int) -> TopKGate:
    """Bias-free gate with W_R = 0: every score ties and top-1 picks expert 0 (lower index)."""
    gate = TopKGate(n_in, n_experts, k=1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        gate.linear.weight.zero_()
    return gate


def chart_expert(n_in: int, read, psi: rf.RandomFeatureNet, g: rf.RandomFeatureNet,
                 carry=()) -> MLP:
    """3-layer MLP: state s (n_in) -> (s[carry], g(psi(s[read]))).

    Hidden 1 = psi's features ReLU(W_psi s[read] + b_psi); hidden 2 = g's features of psi's
    output, ReLU(W_g (C_psi^T h1 + c_psi) + b_g): psi's output map is merged into g's first layer.
    """
    n_in = validate.integer(n_in, "n_in", low=1)
    read = _index(read, n_in, "read")
    carry = _index(carry, n_in, "carry")
    if psi.d_in != read.numel() or g.d_in != psi.d_out:
        raise ValueError(f"psi, g: expected psi: R^{read.numel()} -> R^k and g: R^k -> R^q, got "
                         f"psi: R^{psi.d_in} -> R^{psi.d_out}, g: R^{g.d_in} -> R^{g.d_out}")
    n_c = carry.numel()
    sel_c = _select(n_in, carry)
    h1 = _Layer(n_in)
    pos1 = h1.add(sel_c, torch.zeros(n_c))
    neg1 = h1.add(-sel_c, torch.zeros(n_c))
    feat1 = h1.add(psi.W @ _select(n_in, read), psi.b)
    h2 = _Layer(h1.size)
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
    return _build([h1, h2], out_w, out_b)


def linear_chart_expert(n_in: int, read, A, a, g: rf.RandomFeatureNet, carry=()) -> MLP:
    """2-layer MLP: state s -> (s[carry], g(A s[read] + a)); the affine chart (A, a) is merged
    into g's first layer, W_g A and W_g a + b_g (Cor 4.9)."""
    n_in = validate.integer(n_in, "n_in", low=1)
    read = _index(read, n_in, "read")
    carry = _index(carry, n_in, "carry")
    A = validate.tensor(A, "A", ndim=2, last=read.numel()).to(DTYPE)
    a = validate.tensor(a, "a", ndim=1, last=A.shape[0]).to(DTYPE)
    if g.d_in != A.shape[0]:
        raise ValueError(f"g: expected an input dimension {A.shape[0]} (the chart's), got {g.d_in}")
    n_c = carry.numel()
    sel_c = _select(n_in, carry)
    h1 = _Layer(n_in)
    pos1 = h1.add(sel_c, torch.zeros(n_c))
    neg1 = h1.add(-sel_c, torch.zeros(n_c))
    feat = h1.add(g.W @ A @ _select(n_in, read), g.W @ a + g.b)
    out_w = torch.zeros(n_c + g.d_out, h1.size, dtype=DTYPE)
    out_w[:n_c, pos1] = torch.eye(n_c, dtype=DTYPE)
    out_w[:n_c, neg1] = -torch.eye(n_c, dtype=DTYPE)
    out_w[n_c:, feat] = g.coef.T
    return _build([h1], out_w, torch.cat([torch.zeros(n_c, dtype=DTYPE), g.intercept]))


def layer_one(block: MLP, n_experts: int) -> MoE:
    """Layer 1 as an MoE layer: ``n_experts`` copies of the dense ``block`` behind a constant gate
    (every score ties, so every input goes to expert 0; the gate is irrelevant)."""
    n_experts = validate.integer(n_experts, "n_experts", low=1)
    copies = [block] + [_copy_mlp(block) for _ in range(n_experts - 1)]
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


def _copy_mlp(net: MLP) -> MLP:
    return copy.deepcopy(net)


# ----------------------------------------------------------------------------------------------
# the constructions of Thm 4.8 and Cor 4.9 on a sphere


def ball_points(n: int, d: int, radius: float, seed: int | torch.Generator = 0) -> torch.Tensor:
    """n uniform points of the ball {|u| <= radius} in R^d, (n, d)."""
    n = validate.integer(n, "n", low=1)
    d = validate.integer(d, "d", low=1)
    radius = validate.positive(radius, "radius")
    gen = mf.generator(seed)
    g = torch.randn(n, d, generator=gen, dtype=DTYPE)
    r = radius * torch.rand(n, 1, generator=gen, dtype=DTYPE) ** (1.0 / d)
    return r * g / torch.linalg.vector_norm(g, dim=1, keepdim=True)


def rotated_axis_centres(manifold: mf.Sphere, seed: int = 0) -> torch.Tensor:
    """The 2(d+1) cap centres +-R e_j of S^d, R a fixed random rotation of the intrinsic
    coordinates, embedded: (2(d+1), D), ordered +R e_1, -R e_1, +R e_2, ...

    Same geometry as ``manifold.axis_centres()``, in general position with respect to the
    coordinate axes (an earlier tangent basis was unstable on the axes; the rotation is kept so
    the chapters' numbers stay as published).
    """
    if not isinstance(manifold, mf.Sphere):
        raise ValueError(f"manifold: expected a moe_lib.manifolds.Sphere, got {manifold!r}")
    rot = mf.random_embedding(manifold.k, manifold.k, seed)
    eye = torch.eye(manifold.k, dtype=DTYPE)
    axis = torch.stack([eye, -eye], dim=1).reshape(2 * manifold.k, manifold.k)
    return manifold.embed(axis @ rot.T)


def _cap_points(manifold: mf.EmbeddedManifold, centre: torch.Tensor, radius: float, n: int,
                seed: int, intrinsic: bool = False) -> torch.Tensor:
    """n uniform points of M inside the cap ||x - c|| < r (rejection from uniform samples); with
    ``intrinsic`` the centre and the returned points are in intrinsic coordinates."""
    gen = mf.generator(seed)
    c = centre if intrinsic else centre @ manifold.Q
    out, have = [], 0
    for _ in range(200):
        y = manifold.sample_intrinsic(max(4 * n, 256), gen)
        y = y[torch.linalg.vector_norm(y - c, dim=1) < radius]
        out.append(y)
        have += y.shape[0]
        if have >= n:
            y = torch.cat(out)[:n]
            return y if intrinsic else manifold.embed(y)
    raise ValueError(f"radius: the cap of radius {radius} is too small to sample {n} points")


class EmbeddedChart:
    """A chart of the intrinsic sphere (``chart0``, on R^k) used on M = Q S^d in R^D:
    phi(x) = chart0(Q^T x), phi^{-1}(u) = Q chart0^{-1}(u), and for an affine chart0 (W0, b0) the
    affine map (W0 Q^T, b0) on R^D. Built from intrinsic numbers only, so it is the same chart for
    every D up to the rounding of Q^T x."""

    def __init__(self, chart0, Q: torch.Tensor):
        self.chart0 = chart0
        self.Q = validate.tensor(Q, "Q", ndim=2).to(DTYPE)

    def __call__(self, x) -> torch.Tensor:
        return self.chart0(validate.tensor(x, "x", ndim=2, last=self.Q.shape[0]).to(DTYPE) @ self.Q)

    def inverse(self, u) -> torch.Tensor:
        return self.chart0.inverse(u) @ self.Q.T

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        W0, b0 = self.chart0.affine()
        return W0 @ self.Q.T, b0


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

    manifold: mf.EmbeddedManifold
    centres: torch.Tensor
    radius: float
    target: AbsPowerTarget
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


def ball_grid(d: int, radius: float, per_axis: int) -> torch.Tensor:
    """The points of the grid linspace(-R, R, per_axis)^d inside the ball |u| <= R."""
    axis = torch.linspace(-radius, radius, validate.integer(per_axis, "per_axis", low=2),
                          dtype=DTYPE)
    grid = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)
    return grid[torch.linalg.vector_norm(grid, dim=1) <= radius]


def fit_local_functions(manifold: mf.Sphere, centres, radius: float, target: AbsPowerTarget,
                        width: int, *, seed: int = 0, samples_per_feature: int = 8,
                        margin: float = 0.1, grid_per_axis: int | None = None) -> list[LocalFit]:
    """For each cap i: g_i, random features in R^d of width ``width``, least-squares fitted to
    F_i = f o phi_i^{-1} (stereographic chart) on ``samples_per_feature`` x width uniform points of
    the ball |u| <= R, R = (1 + margin) x the radius of the cap's chart image (the slightly
    enlarged chart domain; phi_i^{-1} is defined on all of R^d, so F_i is too)."""
    C = validate.tensor(centres, "centres", ndim=2, last=manifold.D).to(DTYPE)
    width = validate.integer(width, "width", low=1)
    d = manifold.d
    R = (1.0 + margin) * StereographicChart.cap_image_radius(radius)
    grid = ball_grid(d, R, grid_per_axis or (1001 if d == 1 else 21))
    out = []
    for i in range(C.shape[0]):
        chart = StereographicChart(manifold, C[i])
        gen = mf.generator(seed + 300 + i)
        u = ball_points(samples_per_feature * width, d, R, gen)
        g = rf.fit_random_features(u, target(chart.inverse(u)), width, seed=gen, bias_scale=R)
        sup = float((g.predict(grid) - target(chart.inverse(grid))).abs().max())
        out.append(LocalFit(g, R, sup))
    return out


def _unpack_problem(problem) -> tuple:
    """(manifold, centres, target) from a SphereProblem or such a tuple."""
    if not isinstance(problem, (SphereProblem, tuple)) or len(tuple(problem)) != 3:
        raise ValueError("problem: expected a SphereProblem or a (manifold, centres, target) tuple, "
                         f"got {type(problem).__name__}")
    return tuple(problem)


def build_theorem_4_8(problem: SphereProblem | tuple, radius: float, width: int, *, n_knots: int = 64,
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
        chart = StereographicChart(manifold, C[i])
        xs = _cap_points(manifold, C[i], radius, samples_per_feature * width, seed + 100 + i)
        psi = fit_gaussian_features(xs, chart(xs), width, seed + 200 + i,
                                    bias_std=radius / 2, centre=C[i])
        fits.append(ChartFit(chart, local_fits[i].g, psi, local_fits[i]))
        experts.append(chart_expert(D + E, range(D), psi, local_fits[i].g))
    if layer1 is None:
        layer1 = layer_one(partition.block(D, range(D), depth=3), E)
    net = shallow_moe(layer1, experts, range(D, D + E))
    return ShallowConstruction(manifold, C, radius, target, partition, fits, net, 3, True)


def build_corollary_4_9(problem: SphereProblem, radius: float, width: int, *, n_knots: int = 64,
                        seed: int = 0,
                        samples_per_feature: int = 8, partition: PartitionNet | None = None,
                        layer1: MoE | None = None) -> ShallowConstruction:
    """Psi in H^{2,E}_{2,m}: layer 1 = E copies of the 2-layer ``PartitionNet`` block
    x -> (x, b_hat(x)) (bumps, no division: argmax b = argmax rho); layer 2 = experts
    g_i(A_i x + a_i) with the tangent-projection charts of ``moe_lib.manifolds`` (affine,
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
    M0, C0, f0 = mf.Sphere(d), problem.centres_intrinsic, problem.intrinsic_target
    mid = torch.full((d,), 0.5, dtype=DTYPE)     # the chart image is a ball around (1/2, ..., 1/2)
    fits, experts = [], []
    for i in range(E):
        chart0 = mf.TangentChart(M0, C0[i], radius)
        y = _cap_points(M0, C0[i], radius, samples_per_feature * width, seed + 100 + i, True)
        g0 = rf.fit_random_features(chart0(y) - mid, f0(y), width, seed=seed + 300 + i,
                                    bias_scale=0.5)
        g = rf.RandomFeatureNet(g0.W, g0.b - g0.W @ mid, g0.coef, g0.intercept, True)
        chart = EmbeddedChart(chart0, manifold.Q)
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
    (``moe_lib.architectures.MLPRouter``)."""
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


# ----------------------------------------------------------------------------------------------
# measuring the construction


def evaluate(con: ShallowConstruction, x, mid: torch.Tensor | None = None) -> dict:
    """Run Psi on the points x of M and measure every quantity of the proof. Returns a dict:

    output, target, error (N,) |Psi - f|; route (N,) the layer-2 expert; rho (N, E);
    mid (N, D + E) the output of layer 1 (pass it back as ``mid`` to skip recomputing layer 1
    when only layer 2 changed); carry_err max |mid[:, :D] - x|; score (N, E) what the gate reads
    (tau, or the bumps b_hat); score_err ||tau - rho||_inf, or ||b_hat / S - rho||_inf for bumps
    (S = sum_j b_j, the rescaling that does not change the argmax); valid (N,) rho_route(x) > 0;
    piece_gap max |Psi - g_i(psi_i(x))| (the network computes its pieces).
    Stereographic charts: chart_err (N,) |psi_i(x) - phi_i(x)| for the routed i; fit_sup (E,)
    max |g_i - F_i| over the grid of the chart ball and the routed images psi_i(x) inside it;
    in_ball (N,); lipschitz = Lip(f) x 2 >= Lip(F_i); bound (N,) fit_sup[i] + Lip * chart_err.
    Linear charts: chart_fit_err (N,) |g_i(u) - F_i(u)| at u = phi_i(x), in chart space.
    """
    x = validate.tensor(x, "x", ndim=2, last=con.manifold.D).to(DTYPE)
    E, D = con.n_experts, con.manifold.D
    layer1, layer2 = con.network.layers
    with torch.no_grad():
        if mid is None:
            mid = layer1(x)
        mid = validate.tensor(mid, "mid", ndim=2, last=D + E)
        routing = layer2.route(mid)
        out = layer2(mid, routing=routing)[:, 0]
    route = routing.idx[:, 0]
    pu = mf.partition_of_unity(x, con.centres, con.radius)
    score = mid[:, D:]
    f = con.target(x)
    res = {"output": out, "target": f, "error": (out - f).abs(), "route": route, "rho": pu.rho,
           "mid": mid, "score": score, "carry_err": float((mid[:, :D] - x).abs().max())}
    scaled = score if con.normalised else score / pu.total[:, None]
    res["score_err"] = float((scaled - pu.rho).abs().max())
    res["valid"] = pu.rho.gather(1, route[:, None])[:, 0] > 0
    pieces = torch.empty(x.shape[0], dtype=DTYPE)
    for i in range(E):
        rows = route == i
        if bool(rows.any()):
            pieces[rows] = con.expert_output(i, x[rows])
    res["piece_gap"] = float((pieces - out).abs().max())
    if con.charts[0].psi is None:
        cfe = torch.empty(x.shape[0], dtype=DTYPE)
        for i in range(E):
            rows = route == i
            if bool(rows.any()):
                u = con.charts[i].chart(x[rows])
                cfe[rows] = (con.charts[i].g.predict(u).reshape(-1) - con.local_target(i, u)).abs()
        res["chart_fit_err"] = cfe
        return res
    lip = con.target.lipschitz * StereographicChart.lipschitz_factor
    d = con.manifold.d
    chart_err = torch.zeros(x.shape[0], dtype=DTYPE)
    in_ball = torch.ones(x.shape[0], dtype=torch.bool)
    fit_sup = torch.empty(E, dtype=DTYPE)
    for i in range(E):
        c = con.charts[i]
        rows = route == i
        sup = c.local.grid_sup
        if bool(rows.any()):
            v = c.psi.predict(x[rows]).reshape(-1, d)
            chart_err[rows] = torch.linalg.vector_norm(v - c.chart(x[rows]), dim=1)
            inside = torch.linalg.vector_norm(v, dim=1) <= c.local.radius
            in_ball[rows] = inside
            if bool(inside.any()):
                at = (c.g.predict(v[inside]).reshape(-1) - con.local_target(i, v[inside])).abs()
                sup = max(sup, float(at.max()))
        fit_sup[i] = sup
    res.update(chart_err=chart_err, in_ball=in_ball, fit_sup=fit_sup, lipschitz=lip,
               bound=fit_sup[route] + lip * chart_err)
    return res


# ----------------------------------------------------------------------------------------------
# the routing lemma on given partitions of unity


def valid_route_fraction(rho, scores) -> float:
    """Fraction of rows where the top-1 index of ``scores`` (ties to the lower index, as the
    gate) has rho > 0, i.e. x lies in the support of the chosen chart's rho."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    scores = validate.tensor(scores, "scores", ndim=2, last=rho.shape[1]).to(DTYPE)
    if scores.shape[0] != rho.shape[0]:
        raise ValueError(f"scores: expected {rho.shape[0]} rows, got {scores.shape[0]}")
    idx = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :1]
    return float((rho.gather(1, idx) > 0).double().mean())


def perturbed_scores(rho, size: float, kind: str = "uniform",
                     seed: int | torch.Generator = 0) -> torch.Tensor:
    """tau = rho + eta with sup |eta| <= ``size``.

    kind "uniform": eta iid U[-size, size]. kind "adversarial": eta = +size on the charts with
    rho_j(x) = 0 and -size on the others, the perturbation of this size most likely to route x
    outside its valid charts.
    """
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    size = validate.positive(size, "size")
    kind = validate.choice(kind, "kind", ("uniform", "adversarial"))
    if kind == "uniform":
        gen = mf.generator(seed)
        return rho + size * (2.0 * torch.rand(rho.shape, generator=gen, dtype=DTYPE) - 1.0)
    return rho + torch.where(rho > 0, -size, size)


def adversarial_threshold(rho) -> float:
    """min over rows with some rho_j = 0 of max_i rho_i / 2: no perturbation with sup < this can
    route such a row to a chart with rho = 0, and the adversarial one of any larger size does.
    (Rows where every rho_j > 0 can never be misrouted.) Always >= 1 / (2E)."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    exposed = (rho == 0).any(dim=1)
    if not bool(exposed.any()):
        return math.inf
    return float(rho[exposed].max(dim=1).values.min() / 2.0)


# ----------------------------------------------------------------------------------------------
# parameter counts


def parameter_table(net: DeepMoE) -> list[dict]:
    """Per layer: stored parameters, active parameters (gate + one expert, top-1), and the
    nonzero active parameters (zero padding and identity blocks not counted)."""
    rows = []
    for k, layer in enumerate(net.layers):
        big = max(layer.experts, key=n_params)
        rows.append({"layer": k + 1, "stored": layer.stored_params(),
                     "active": layer.active_params(),
                     "active_nonzero": n_nonzero(layer.router) + n_nonzero(big)})
    return rows


# ----------------------------------------------------------------------------------------------
# the experiments of the chapters


@dataclass
class SphereProblem:
    """A test problem on S^d in R^D, given in intrinsic coordinates: cap centres c~_i (E, d+1) and
    the target f(x) = |<x, v>|^p with v = Q v~. Everything the constructions *fit* is computed from
    these intrinsic numbers, so with fixed seeds the fits are bitwise the same for every D; only
    evaluating the embedded network rounds differently. Unpacks as (manifold, centres, target)."""

    manifold: mf.Sphere
    centres_intrinsic: torch.Tensor
    direction_intrinsic: torch.Tensor
    power: float = 1.5

    @property
    def centres(self) -> torch.Tensor:
        return self.manifold.embed(self.centres_intrinsic)

    @property
    def target(self) -> AbsPowerTarget:
        return AbsPowerTarget(self.manifold.embed(self.direction_intrinsic[None, :])[0], self.power)

    @property
    def intrinsic_target(self) -> AbsPowerTarget:
        return AbsPowerTarget(self.direction_intrinsic, self.power)

    @property
    def n_charts(self) -> int:
        return self.centres_intrinsic.shape[0]

    def __iter__(self):
        return iter((self.manifold, self.centres, self.target))


def sphere_problem(d: int, D: int, *, embed_seed: int = 0, centre_seed: int = 0,
                   power: float = 1.5) -> SphereProblem:
    """The test problem of the shallow-MoE chapters: S^d in R^D (random orthogonal embedding),
    cap centres (E = 4 equally spaced arcs for d = 1, the 2(d+1) rotated axis points for d >= 2)
    and f(x) = |<x, v>|^power with v the embedded unit vector along (1, 2, ..., d+1)."""
    M = mf.Sphere(d, D, seed=embed_seed)
    M0 = mf.Sphere(d)
    C0 = M0.arc_centres(4) if d == 1 else rotated_axis_centres(M0, centre_seed)
    v = torch.arange(1, d + 2, dtype=DTYPE)
    return SphereProblem(M, C0, v / torch.linalg.vector_norm(v), power)


def critical_points(manifold: mf.Sphere, n_charts: int | None = None,
                    centre_seed: int = 0) -> torch.Tensor:
    """The points of S^d where the caps of ``sphere_problem`` overlap most, i.e. where
    max_j rho_j is smallest and routing is most fragile, (P, D).

    d = 1 (``n_charts`` equally spaced arcs): the midpoints between neighbouring centres.
    d >= 2 (rotated axis centres): the 2^(d+1) points R s / sqrt(d+1), s in {-1, 1}^(d+1), each
    equidistant from d + 1 centres.
    """
    if not isinstance(manifold, mf.Sphere):
        raise ValueError(f"manifold: expected a moe_lib.manifolds.Sphere, got {manifold!r}")
    if manifold.d == 1:
        E = validate.integer(4 if n_charts is None else n_charts, "n_charts", low=1)
        a = math.pi / E + 2.0 * math.pi * torch.arange(E, dtype=DTYPE) / E
        return manifold.from_angles(a)
    k = manifold.k
    signs = torch.cartesian_prod(*([torch.tensor([-1.0, 1.0], dtype=DTYPE)] * k)).reshape(-1, k)
    rot = mf.random_embedding(k, k, centre_seed)
    return manifold.embed(signs @ rot.T / math.sqrt(k))


def effective_expert_params(D: int, d: int, width: int) -> int:
    """Parameters of one layer-2 expert in factored form: psi (R^D -> R^d) plus g (R^d -> R),
    one hidden layer of ``width`` each. (Merged, psi's output map and g's input map become one
    width x width matrix of rank d: that is what the 3-layer MLP stores.)"""
    return mlp_param_count(D, d, width, 2) + mlp_param_count(d, 1, width, 2)


def theorem_4_8_sweep(d: int, Ds: Sequence[int], widths: Sequence[int], radius: float,
                      n_test: int, *, seed: int = 0, embed_seed: int = 0, centre_seed: int = 0,
                      n_knots: int = 64, division_width: int = 128,
                      g_samples_per_feature: int = 20, psi_samples_per_feature: int = 8,
                      power: float = 1.5, dense_samples_per_feature: int = 8) -> dict:
    """Build Psi in H^{2,E}_{3,m} for every ambient D and expert width m, and measure it on
    ``n_test`` uniform points of S^d (the same intrinsic points for every D).

    g_i depends on m only (chart space is R^d), so it is fitted once per m and shared by all D;
    psi_i and layer 1 are rebuilt for each D. Alongside, a dense one-hidden-layer network in R^D
    with (D + 2) w + 1 = ``effective_expert_params`` parameters is fitted to f (Gaussian random
    features on points of M). The test points are the ``n_test`` samples plus the
    ``critical_points``. Returns a dict of lists indexed [D][m] (``error``, ``fit_sup``,
    ``chart_err``, ``dense_error``, ``dense_width``), per-D ``slope``, ``dense_slope``,
    ``score_err`` (||tau - rho||_inf), ``params`` (``parameter_table`` at the largest m) and the
    worst values over the whole grid: ``bound_slack`` = max (|Psi - f| - bound), ``valid``
    (min route-valid fraction), ``in_ball`` (all images psi(x) inside the fitted ball),
    ``piece_gap``, ``carry_err``.
    """
    widths = [validate.integer(m, "width", low=1) for m in widths]
    Ds = [validate.integer(D, "D", low=d + 1) for D in Ds]
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 widths for a slope, got {widths}")
    local: dict[int, list[LocalFit]] = {}
    out = {k: {} for k in ("error", "fit_sup", "chart_err", "dense_error", "dense_width",
                           "slope", "dense_slope", "score_err", "params")}
    worst = {"bound_slack": -math.inf, "valid": 1.0, "in_ball": True, "piece_gap": 0.0,
             "carry_err": 0.0}
    for D in progress(Ds, desc=f"S^{d}: D"):
        problem = sphere_problem(d, D, embed_seed=embed_seed, centre_seed=centre_seed,
                                 power=power)
        M, C, f = problem
        x = torch.cat([M.sample(n_test, seed + 7),
                       critical_points(M, C.shape[0], centre_seed)])
        partition = fit_partition_net(M.sample(20000, seed + 1), C, radius, n_knots,
                                      division_width, seed + 2)
        layer1, mid = None, None
        rows = {k: [] for k in ("error", "fit_sup", "chart_err", "dense_error", "dense_width")}
        for m in widths:
            if m not in local:
                local[m] = fit_local_functions(M, C, radius, f, m, seed=seed,
                                               samples_per_feature=g_samples_per_feature)
            con = build_theorem_4_8(problem, radius, m, seed=seed, partition=partition,
                                    layer1=layer1, local_fits=local[m],
                                    samples_per_feature=psi_samples_per_feature)
            layer1 = con.network.layers[0]
            res = evaluate(con, x, mid)
            mid = res["mid"]
            rows["error"].append(float(res["error"].max()))
            rows["fit_sup"].append(float(res["fit_sup"].max()))
            rows["chart_err"].append(float(res["chart_err"].max()))
            slack = float((res["error"] - res["bound"]).max())
            worst["bound_slack"] = max(worst["bound_slack"], slack)
            worst["valid"] = min(worst["valid"], float(res["valid"].double().mean()))
            worst["in_ball"] = worst["in_ball"] and bool(res["in_ball"].all())
            worst["piece_gap"] = max(worst["piece_gap"], res["piece_gap"])
            worst["carry_err"] = max(worst["carry_err"], res["carry_err"])
            w = max(1, round((effective_expert_params(D, d, m) - 1) / (D + 2)))
            xs = M.sample(dense_samples_per_feature * w, seed + 11)
            dense = fit_gaussian_features(xs, f(xs), w, seed + 12)
            rows["dense_error"].append(float((dense.predict(x) - f(x)).abs().max()))
            rows["dense_width"].append(w)
        for k, v in rows.items():
            out[k][D] = v
        out["slope"][D] = loglog_slope(widths, rows["error"])
        out["dense_slope"][D] = loglog_slope(widths, rows["dense_error"])
        out["score_err"][D] = res["score_err"]
        out["params"][D] = parameter_table(con.network)
    out.update(worst)
    out["widths"], out["Ds"], out["n_experts"] = widths, Ds, int(C.shape[0])
    return out


def corollary_4_9_sweep(d: int, Ds: Sequence[int], widths: Sequence[int], radius: float,
                        n_test: int, *, seed: int = 0, embed_seed: int = 0, centre_seed: int = 0,
                        n_knots: int = 64, samples_per_feature: int = 8,
                        power: float = 1.5) -> dict:
    """Build Psi in H^{2,E}_{2,m} (linear charts) for every D and m and measure it on ``n_test``
    uniform points of S^d (the same intrinsic points for every D). Route validity is also checked
    at the ``critical_points``; they are left out of the error, because several charts tie there
    exactly and rounding, which differs between D, picks among them.

    Returns dicts indexed [D] of lists over m: ``error`` (sup |Psi - f|), ``chart_error`` (max
    over experts of the chart-space error |g_i(u) - F_i(u)| at the routed points u = phi_i(x),
    computed without the network); per D: ``slope`` of ``error`` in m, ``score_err``
    (||b_hat / S - rho||_inf), ``params``; and worst values: ``gap`` = max |error - chart_error|,
    ``across_D`` = max over m of (max_D error - min_D error), ``valid``, ``piece_gap``,
    ``carry_err``.
    """
    widths = [validate.integer(m, "width", low=1) for m in widths]
    Ds = [validate.integer(D, "D", low=d + 1) for D in Ds]
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 widths for a slope, got {widths}")
    out = {k: {} for k in ("error", "chart_error", "slope", "score_err", "params")}
    worst = {"gap": 0.0, "valid": 1.0, "piece_gap": 0.0, "carry_err": 0.0}
    for D in progress(Ds, desc=f"S^{d}: D"):
        problem = sphere_problem(d, D, embed_seed=embed_seed, centre_seed=centre_seed,
                                 power=power)
        M, C, f = problem
        x = M.sample(n_test, seed + 7)
        crit = critical_points(M, C.shape[0], centre_seed)
        partition = fit_partition_net(M.sample(20000, seed + 1), C, radius, n_knots, None,
                                      seed + 2)
        layer1, mid = None, None
        err, cerr = [], []
        for m in widths:
            con = build_corollary_4_9(problem, radius, m, seed=seed, partition=partition,
                                      layer1=layer1, samples_per_feature=samples_per_feature)
            layer1 = con.network.layers[0]
            res = evaluate(con, x, mid)
            mid = res["mid"]
            err.append(float(res["error"].max()))
            cerr.append(float(res["chart_fit_err"].max()))
            worst["gap"] = max(worst["gap"], abs(err[-1] - cerr[-1]))
            worst["valid"] = min(worst["valid"], float(res["valid"].double().mean()))
            if m == widths[0]:      # routes depend on layer 1 only, the same for every m
                at_crit = evaluate(con, crit)
                worst["valid"] = min(worst["valid"], float(at_crit["valid"].double().mean()))
            worst["piece_gap"] = max(worst["piece_gap"], res["piece_gap"])
            worst["carry_err"] = max(worst["carry_err"], res["carry_err"])
        out["error"][D], out["chart_error"][D] = err, cerr
        out["slope"][D] = loglog_slope(widths, err)
        out["score_err"][D] = res["score_err"]
        out["params"][D] = parameter_table(con.network)
    errs = torch.tensor([out["error"][D] for D in Ds], dtype=DTYPE)
    worst["across_D"] = float((errs.max(dim=0).values - errs.min(dim=0).values).max())
    out.update(worst)
    out["widths"], out["Ds"], out["n_experts"] = widths, Ds, int(C.shape[0])
    return out


def routing_table(rho, sizes: Sequence[float], kinds: Sequence[str] = ("uniform", "adversarial"),
                  seed: int = 0) -> list[dict]:
    """For each kind and size: tau = ``perturbed_scores(rho, size, kind)``, the measured
    ||tau - rho||_inf and the valid-route fraction of argmax tau."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    rows = []
    for kind in kinds:
        for j, size in enumerate(sizes):
            tau = perturbed_scores(rho, size, kind, seed + j)
            rows.append({"kind": kind, "size": float(size),
                         "measured": float((tau - rho).abs().max()),
                         "valid": valid_route_fraction(rho, tau)})
    return rows
