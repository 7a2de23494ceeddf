"""Compact manifolds in R^D, their caps, partitions of unity and tangent-projection charts.

Everything is float64 torch. A manifold M is given in *intrinsic coordinates* of R^k (the unit
sphere S^d in R^{d+1}, the flat torus (S^1)^n in R^{2n}) and put in R^D, D >= k, by a random
orthogonal embedding x = Q y with Q in R^{D x k}, Q^T Q = I. Since Q is an isometry, distances,
angles, reach and the lower Lipschitz constants of charts are the same in R^k and in R^D.

- ``random_embedding(k, D, seed)`` -> Q; ``Sphere(d, D, seed)``, ``FlatTorus(n, D, seed)``:
  ``sample``, ``embed``/``intrinsic``, ``tangent_basis``, ``lift`` (inverse of the tangent
  projection), centres of caps (``axis_centres``, ``arc_centres``, ``grid_centres``).
- ``bump``, ``partition_of_unity``: rho_i = b_i / sum_j b_j, b_i(x) = psi(||x - c_i|| / r_i),
  psi(t) = exp(-1/(1 - t^2)) for |t| < 1 and 0 otherwise; points no cap covers are reported.
- ``TangentChart``: phi(x) = A (x - c) with A in R^{d x D} orthonormal rows spanning T_c M, its
  affine rescaling to [0,1]^d, the inverse on M, and ``affine_relu_mlp`` (exact as 2d ReLUs).
- ``lower_lipschitz``: min ||phi(x) - phi(y)|| / ||x - y|| over sampled pairs;
  ``max_chart_radius`` / ``greedy_chart_cover``: largest caps on which a tangent projection keeps
  a lower Lipschitz constant, and a greedy cover by such caps.
- ``one_sided_difference``: forward/backward k-th differences, for reading off smoothness orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import validate
from .experts import MLP, relu_mlp_from_weights

DTYPE = torch.float64
#: cdist without the ||a||^2 + ||b||^2 - 2<a,b> shortcut, which loses small distances to rounding.
EXACT = "donot_use_mm_for_euclid_dist"


# ----------------------------------------------------------------------------------------------
# randomness and embeddings


def generator(seed: int | torch.Generator) -> torch.Generator:
    """A torch Generator: ``seed`` itself if it is one, else a new one seeded with the integer."""
    if isinstance(seed, torch.Generator):
        return seed
    seed = validate.integer(seed, "seed", low=0)
    return torch.Generator().manual_seed(seed)


def random_embedding(k: int, D: int, seed: int | torch.Generator = 0) -> torch.Tensor:
    """A random Q in R^{D x k} with orthonormal columns (Haar on the Stiefel manifold), float64.

    QR of a Gaussian D x k matrix with the signs of R's diagonal moved into Q. ``D == k`` gives a
    random orthogonal matrix. Same seed, same Q.
    """
    k = validate.integer(k, "k", low=1)
    D = validate.integer(D, "D", low=1)
    if D < k:
        raise ValueError(f"D: expected an ambient dimension D >= k = {k}, got D = {D}")
    g = torch.randn(D, k, generator=generator(seed), dtype=DTYPE)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r))[None, :]


def _points(x, name: str, dim: int) -> torch.Tensor:
    x = validate.tensor(x, name, ndim=2, last=dim)
    return x.to(DTYPE)


def _centre(c, dim: int) -> torch.Tensor:
    c = validate.tensor(c, "centre", ndim=1, last=dim)
    return c.to(DTYPE)


# ----------------------------------------------------------------------------------------------
# manifolds


class EmbeddedManifold:
    """A compact d-manifold M in intrinsic coordinates of R^k, embedded in R^D as x = Q y.

    Subclasses give ``_sample_intrinsic``, ``_tangent_intrinsic`` (orthonormal rows spanning the
    tangent space at a point y of M), ``_lift_intrinsic`` (the inverse of the tangent projection
    on its injectivity domain) and ``_residual_intrinsic`` (how far y is from M).
    """

    name = "manifold"

    def __init__(self, d: int, k: int, D: int | None = None, seed: int | torch.Generator = 0):
        self.d = validate.integer(d, "d", low=1)
        self.k = validate.integer(k, "k", low=d)
        if D is None:
            self.Q = torch.eye(k, dtype=DTYPE)
        else:
            self.Q = random_embedding(k, D, seed)

    @property
    def D(self) -> int:
        """Ambient dimension."""
        return self.Q.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, d={self.d}, k={self.k}, D={self.D})"

    # coordinates
    def embed(self, y) -> torch.Tensor:
        """Intrinsic points (N, k) -> points of R^D (N, D): x = Q y."""
        return _points(y, "y", self.k) @ self.Q.T

    def intrinsic(self, x) -> torch.Tensor:
        """Points of R^D (N, D) -> intrinsic coordinates Q^T x (N, k) (orthogonal projection)."""
        return _points(x, "x", self.D) @ self.Q

    def sample_intrinsic(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """n points of M (uniform for the Riemannian volume) in intrinsic coordinates, (n, k)."""
        n = validate.integer(n, "n", low=1)
        return self._sample_intrinsic(n, generator(seed))

    def sample(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """n uniform points of M in R^D, (n, D)."""
        return self.embed(self.sample_intrinsic(n, seed))

    def residual(self, x) -> torch.Tensor:
        """Per point, a quantity that is 0 exactly on M: off-span part plus intrinsic defect."""
        x = _points(x, "x", self.D)
        y = x @ self.Q
        off = torch.linalg.vector_norm(x - y @ self.Q.T, dim=1)
        return off + self._residual_intrinsic(y)

    # tangent spaces and charts
    def tangent_basis(self, centre) -> torch.Tensor:
        """A (d, D) matrix with orthonormal rows spanning the tangent space of M at ``centre``."""
        c = _centre(centre, self.D)
        return self._tangent_intrinsic(c @ self.Q) @ self.Q.T

    def lift(self, centre, t) -> torch.Tensor:
        """Points x of M (N, D) with A (x - c) = t, A = ``tangent_basis(centre)``, near c.

        The inverse of the tangent projection on its injectivity domain (a hemisphere for S^d, a
        product of half circles for the torus); raises if some t lies outside its image.
        """
        c = _centre(centre, self.D)
        t = _points(t, "t", self.d)
        return self.embed(self._lift_intrinsic(c @ self.Q, t))

    # to be provided
    def _sample_intrinsic(self, n: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _tangent_intrinsic(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _lift_intrinsic(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _residual_intrinsic(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Sphere(EmbeddedManifold):
    """The unit sphere S^d = {y in R^{d+1}: ||y|| = 1}, d >= 1, embedded in R^D (D >= d + 1).

    ``Sphere(1, D)`` is the circle; for it ``from_angles``/``angles`` use y = (cos a, sin a) and
    ``arc_centres(E)`` gives E equally spaced centres.
    """

    def __init__(self, d: int, D: int | None = None, seed: int | torch.Generator = 0):
        super().__init__(d, d + 1, D, seed)
        self.name = f"S^{self.d}"

    def _sample_intrinsic(self, n, gen):
        g = torch.randn(n, self.k, generator=gen, dtype=DTYPE)
        return g / torch.linalg.vector_norm(g, dim=1, keepdim=True)

    def _tangent_intrinsic(self, y):
        norm = float(torch.linalg.vector_norm(y))
        if abs(norm - 1.0) > 1e-8:
            raise ValueError(f"centre: expected a point of {self.name} (norm 1), got norm {norm:.6g}")
        if self.d == 1:  # counter-clockwise unit tangent, so chart coordinate = sin(angle - a_c)
            return torch.stack([-y[1], y[0]])[None, :]
        # Householder reflection H with H y = -s e_j (j = first index of largest |y_j|, s its
        # sign): H is orthogonal and symmetric, so its other columns are an orthonormal basis of
        # y's complement. It depends smoothly on y while j stays the same; at y = +-e_j it gives
        # exactly the other unit vectors, unlike a QR completion, which is decided by rounding.
        j = int(torch.nonzero(y.abs() >= y.abs().max() - 1e-12)[0, 0])
        v = y.clone()
        v[j] += 1.0 if float(y[j]) >= 0 else -1.0
        h = torch.eye(self.k, dtype=DTYPE) - 2.0 * torch.outer(v, v) / (v @ v)
        return torch.cat([h[:j], h[j + 1:]])

    def _lift_intrinsic(self, y, t):
        sq = (t ** 2).sum(dim=1)
        if bool((sq > 1.0 + 1e-12).any()):
            raise ValueError(f"t: expected tangent coordinates with ||t|| <= 1 (a hemisphere), "
                             f"got max ||t|| = {float(sq.max().sqrt()):.6g}")
        a = self._tangent_intrinsic(y)
        return torch.sqrt((1.0 - sq).clamp_min(0.0))[:, None] * y[None, :] + t @ a

    def _residual_intrinsic(self, y):
        return (torch.linalg.vector_norm(y, dim=1) - 1.0).abs()

    # centres of caps
    def axis_centres(self) -> torch.Tensor:
        """The 2(d+1) points +-e_j (intrinsic), embedded: (2(d+1), D), ordered +e_1,-e_1,+e_2,..."""
        eye = torch.eye(self.k, dtype=DTYPE)
        return self.embed(torch.stack([eye, -eye], dim=1).reshape(2 * self.k, self.k))

    def axis_cover_radius(self) -> float:
        """Largest distance from a point of S^d to the nearest +-e_j: sqrt(2 - 2/sqrt(d+1)).

        Attained at (1,...,1)/sqrt(d+1); caps of radius r > this around ``axis_centres`` cover.
        """
        return math.sqrt(2.0 - 2.0 / math.sqrt(self.k))

    def from_angles(self, a) -> torch.Tensor:
        """Circle only: angles (N,) -> points (cos a, sin a) embedded, (N, D)."""
        self._circle_only("from_angles")
        a = validate.tensor(a, "a", ndim=1).to(DTYPE)
        return self.embed(torch.stack([torch.cos(a), torch.sin(a)], dim=1))

    def angles(self, x) -> torch.Tensor:
        """Circle only: points (N, D) -> angles atan2(y_2, y_1) in (-pi, pi], (N,)."""
        self._circle_only("angles")
        y = self.intrinsic(x)
        return torch.atan2(y[:, 1], y[:, 0])

    def arc_centres(self, E: int, offset: float = 0.0) -> torch.Tensor:
        """Circle only: E centres at angles offset + 2 pi i / E, (E, D).

        Caps of (chordal) radius r > 2 sin(pi / (2E)) around them cover the circle.
        """
        self._circle_only("arc_centres")
        E = validate.integer(E, "E", low=1)
        a = offset + 2.0 * math.pi * torch.arange(E, dtype=DTYPE) / E
        return self.from_angles(a)

    def _circle_only(self, what: str) -> None:
        if self.d != 1:
            raise ValueError(f"{what}: expected the circle S^1 (d = 1), got {self.name}")


class FlatTorus(EmbeddedManifold):
    """The flat torus (S^1)^n = {(cos a_1, sin a_1, ..., cos a_n, sin a_n)} in R^{2n}, in R^D.

    ``FlatTorus(2)`` is T^2 = (cos a, sin a, cos b, sin b). Every point has norm sqrt(n); the
    tangent basis at a point is the unit tangent of each circle factor, so chart coordinate j is
    sin(a_j - a_j(c)) and the tangent projection is injective where every |a_j - a_j(c)| < pi/2.
    """

    def __init__(self, n: int = 2, D: int | None = None, seed: int | torch.Generator = 0):
        n = validate.integer(n, "n", low=1)
        super().__init__(n, 2 * n, D, seed)
        self.name = f"T^{n}"

    def from_angles(self, a) -> torch.Tensor:
        """Angles (N, n) -> points (N, D)."""
        a = _points(a, "a", self.d)
        y = torch.stack([torch.cos(a), torch.sin(a)], dim=2).reshape(a.shape[0], self.k)
        return self.embed(y)

    def angles(self, x) -> torch.Tensor:
        """Points (N, D) -> angles (N, n) in (-pi, pi]."""
        y = self.intrinsic(x).reshape(-1, self.d, 2)
        return torch.atan2(y[..., 1], y[..., 0])

    def grid_centres(self, per_axis: int, offset: float = 0.0) -> torch.Tensor:
        """per_axis^n centres on the grid of angles offset + 2 pi i / per_axis, (per_axis^n, D).

        Caps of radius r > 2 sqrt(n) sin(pi / (2 per_axis)) around them cover the torus.
        """
        per_axis = validate.integer(per_axis, "per_axis", low=1)
        a = offset + 2.0 * math.pi * torch.arange(per_axis, dtype=DTYPE) / per_axis
        grid = torch.cartesian_prod(*([a] * self.d)).reshape(-1, self.d)
        return self.from_angles(grid)

    def _sample_intrinsic(self, n, gen):
        a = 2.0 * math.pi * torch.rand(n, self.d, generator=gen, dtype=DTYPE)
        return torch.stack([torch.cos(a), torch.sin(a)], dim=2).reshape(n, self.k)

    def _tangent_intrinsic(self, y):
        pairs = y.reshape(self.d, 2)
        norms = torch.linalg.vector_norm(pairs, dim=1)
        if bool(((norms - 1.0).abs() > 1e-8).any()):
            raise ValueError(f"centre: expected a point of {self.name} (each pair of norm 1), got "
                             f"pair norms {[round(float(v), 6) for v in norms]}")
        basis = torch.zeros(self.d, self.k, dtype=DTYPE)
        idx = torch.arange(self.d)
        basis[idx, 2 * idx] = -pairs[:, 1]
        basis[idx, 2 * idx + 1] = pairs[:, 0]
        return basis

    def _lift_intrinsic(self, y, t):
        if bool((t.abs() > 1.0 + 1e-12).any()):
            raise ValueError(f"t: expected tangent coordinates with |t_j| <= 1, "
                             f"got max |t_j| = {float(t.abs().max()):.6g}")
        pairs = y.reshape(self.d, 2)
        a = torch.atan2(pairs[:, 1], pairs[:, 0])[None, :] + torch.asin(t.clamp(-1.0, 1.0))
        return torch.stack([torch.cos(a), torch.sin(a)], dim=2).reshape(t.shape[0], self.k)

    def _residual_intrinsic(self, y):
        pairs = y.reshape(y.shape[0], self.d, 2)
        return (torch.linalg.vector_norm(pairs, dim=2) - 1.0).abs().sum(dim=1)


def cover_radius(x, centres) -> float:
    """max over the points x of min_i ||x - c_i||: caps of a larger radius cover these points.

    On a sample this is a lower estimate of the covering radius of M.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    centres = validate.tensor(centres, "centres", ndim=2, last=x.shape[1]).to(DTYPE)
    return float(torch.cdist(x, centres, compute_mode=EXACT).min(dim=1).values.max())


# ----------------------------------------------------------------------------------------------
# bump functions and the partition of unity


def log_bump(t) -> torch.Tensor:
    """log psi(t) = -1 / (1 - t^2) for |t| < 1, -inf otherwise (elementwise)."""
    t = validate.tensor(t, "t").to(DTYPE)
    inside = t.abs() < 1.0
    safe = torch.where(inside, t, torch.zeros_like(t))
    return torch.where(inside, -1.0 / (1.0 - safe ** 2), torch.full_like(t, -math.inf))


def bump(t) -> torch.Tensor:
    """psi(t) = exp(-1 / (1 - t^2)) for |t| < 1, else 0: C^infinity, support [-1, 1]."""
    return torch.exp(log_bump(t))


@dataclass
class PartitionOfUnity:
    """rho (N, E), bumps b (N, E), total sum_j b_j (N,), and the mask of uncovered points (N,).

    An uncovered point (every b_j = 0) gets rho = 0 in every column instead of 0/0.
    """

    rho: torch.Tensor
    bumps: torch.Tensor
    total: torch.Tensor
    uncovered: torch.Tensor

    @property
    def n_uncovered(self) -> int:
        return int(self.uncovered.sum())


def partition_of_unity(x, centres, radius) -> PartitionOfUnity:
    """rho_i(x) = b_i(x) / sum_j b_j(x), b_i(x) = psi(||x - c_i|| / r_i), vectorised.

    ``radius`` is one number or one per cap (E,). The quotient is taken in log space
    (a softmax of log b_i), so it stays exact where every b_j underflows but some ||x - c_j|| < r_j;
    ``bumps`` and ``total`` are the plain values. rho_i is exactly 0 where ||x - c_i|| >= r_i.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    centres = validate.tensor(centres, "centres", ndim=2, last=x.shape[1]).to(DTYPE)
    r = _radii(radius, centres.shape[0])
    logb = log_bump(torch.cdist(x, centres, compute_mode=EXACT) / r[None, :])
    covered = torch.isfinite(logb).any(dim=1)
    safe = torch.where(covered[:, None], logb, torch.zeros_like(logb))
    rho = torch.where(covered[:, None], torch.softmax(safe, dim=1), torch.zeros_like(logb))
    bumps = torch.exp(logb)
    return PartitionOfUnity(rho, bumps, bumps.sum(dim=1), ~covered)


def _radii(radius, E: int) -> torch.Tensor:
    if isinstance(radius, (torch.Tensor, np.ndarray)):
        r = validate.tensor(radius, "radius", ndim=1).to(DTYPE)
        if r.shape[0] != E:
            raise ValueError(f"radius: expected one radius or {E} (one per centre), got {r.shape[0]}")
        if bool((r <= 0).any()):
            raise ValueError(f"radius: expected radii > 0, got min {float(r.min())}")
        return r
    return torch.full((E,), validate.positive(radius, "radius"), dtype=DTYPE)


# ----------------------------------------------------------------------------------------------
# tangent-projection charts


class TangentChart:
    """The chart phi(x) = A (x - c) of a cap U = M cap B(c, r), A = ``manifold.tangent_basis(c)``.

    ``coords`` is the raw tangent projection (values in the ball of radius r of R^d on U);
    ``__call__`` is its affine rescaling u = A (x - c) / (2r) + 1/2, which maps U into [0,1]^d;
    ``inverse`` maps u back onto M (where the projection is injective); ``affine`` returns (W, b)
    with u = W x + b, the form that merges into a network's first layer.
    """

    def __init__(self, manifold: EmbeddedManifold, centre, radius: float):
        self.manifold = manifold
        self.centre = _centre(centre, manifold.D)
        self.radius = validate.positive(radius, "radius")
        self.A = manifold.tangent_basis(self.centre)

    @property
    def d(self) -> int:
        return self.A.shape[0]

    @property
    def D(self) -> int:
        return self.A.shape[1]

    def in_domain(self, x) -> torch.Tensor:
        """Mask of the points with ||x - c|| < r (N,)."""
        x = _points(x, "x", self.D)
        return torch.linalg.vector_norm(x - self.centre, dim=1) < self.radius

    def coords(self, x) -> torch.Tensor:
        """Raw tangent coordinates A (x - c), (N, d)."""
        return (_points(x, "x", self.D) - self.centre) @ self.A.T

    def __call__(self, x) -> torch.Tensor:
        """Rescaled chart u = A (x - c) / (2r) + 1/2 in [0,1]^d on the cap, (N, d)."""
        return self.coords(x) / (2.0 * self.radius) + 0.5

    def inverse(self, u) -> torch.Tensor:
        """Points of M (N, D) whose rescaled chart value is u (N, d)."""
        u = _points(u, "u", self.d)
        return self.manifold.lift(self.centre, (u - 0.5) * (2.0 * self.radius))

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b), W (d, D), b (d,), with chart(x) = x W^T + b."""
        w = self.A / (2.0 * self.radius)
        return w, 0.5 - w @ self.centre


def tangent_charts(manifold: EmbeddedManifold, centres, radius) -> list[TangentChart]:
    """One ``TangentChart`` per centre (rows of ``centres``), radius shared or one per centre."""
    centres = validate.tensor(centres, "centres", ndim=2, last=manifold.D).to(DTYPE)
    r = _radii(radius, centres.shape[0])
    return [TangentChart(manifold, c, float(ri)) for c, ri in zip(centres, r, strict=True)]


def affine_relu_mlp(W, b) -> MLP:
    """The affine map y = x W^T + b as a one-hidden-layer ReLU MLP of width 2 d_out (float64).

    Exact up to rounding, from y = ReLU(y) - ReLU(-y): hidden weights [W; -W], biases [b; -b],
    output weights [I, -I], output bias 0.
    """
    W = validate.tensor(W, "W", ndim=2).to(DTYPE)
    b = validate.tensor(b, "b", ndim=1, last=W.shape[0]).to(DTYPE)
    eye = torch.eye(W.shape[0], dtype=DTYPE)
    return relu_mlp_from_weights([torch.cat([W, -W]), torch.cat([eye, -eye], dim=1)],
                                 [torch.cat([b, -b]), torch.zeros(W.shape[0], dtype=DTYPE)])


# ----------------------------------------------------------------------------------------------
# lower Lipschitz constants and covers


def lower_lipschitz(x, y, chunk: int = 1024, min_dist: float = 1e-12) -> float:
    """min over pairs i != j of ||y_i - y_j|| / ||x_i - x_j||, pairs with ||x_i - x_j|| <= min_dist
    skipped (duplicates). ``y`` is the image of ``x`` under a map (e.g. a chart); a value > 0 on a
    sample is necessary for injectivity, and small values flag near-collisions. Exact over all
    pairs, in row chunks; returns inf for fewer than two distinct points.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y", ndim=2).to(DTYPE)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows (one image per point of x), got {y.shape[0]}")
    chunk = validate.integer(chunk, "chunk", low=1)
    best = math.inf
    for s in range(0, x.shape[0], chunk):
        dx = torch.cdist(x[s:s + chunk], x, compute_mode=EXACT)
        dy = torch.cdist(y[s:s + chunk], y, compute_mode=EXACT)
        ok = dx > min_dist
        if bool(ok.any()):
            best = min(best, float((dy[ok] / dx[ok]).min()))
    return best


def max_chart_radius(x, centre, basis, threshold: float) -> float:
    """Largest r such that x -> basis (x - centre) has lower Lipschitz constant >= threshold on
    the sample points with ||x - centre|| < r (inf if no pair violates it).

    A pair (i, j) joins the cap at radius max(||x_i - c||, ||x_j - c||), so the answer is the
    smallest such radius over the violating pairs, ratio ||A (x_i - x_j)|| / ||x_i - x_j|| < threshold.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    c = _centre(centre, x.shape[1])
    A = validate.tensor(basis, "basis", ndim=2, last=x.shape[1]).to(DTYPE)
    return _max_radius(_unit_chords(x), x, c, A, float(threshold))


def _unit_chords(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors (x_i - x_j)/||x_i - x_j|| (N, N, D) and the mask of distinct pairs (N, N)."""
    diff = x[:, None, :] - x[None, :, :]
    norm = torch.linalg.vector_norm(diff, dim=2)
    ok = norm > 1e-12
    return diff / torch.where(ok, norm, torch.ones_like(norm))[:, :, None], ok


def _max_radius(chords: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, c: torch.Tensor,
                A: torch.Tensor, threshold: float) -> float:
    unit, ok = chords
    bad = (torch.linalg.vector_norm(unit @ A.T, dim=2) < threshold) & ok
    if not bool(bad.any()):
        return math.inf
    dist = torch.linalg.vector_norm(x - c, dim=1)
    return float(torch.maximum(dist[:, None], dist[None, :])[bad].min())


def greedy_chart_cover(x, bases, threshold: float, candidates: Sequence[int] | None = None,
                       max_radius: float = math.inf) -> dict:
    """Greedy cover of the sample x (N, D) by caps B(x_c, r_c) on which the tangent projection
    at x_c has lower Lipschitz constant >= threshold.

    ``bases`` (N, d, D) holds the tangent basis at every sample point; ``candidates`` are the
    indices allowed as centres (default all). Each candidate's radius is ``max_chart_radius``
    (capped by ``max_radius``); then the candidate covering most uncovered points is taken until
    every point is covered. Returns {"centres": indices, "radii": list, "n_charts": int}. Cost
    O(|candidates| N^2 D): meant for curves and small samples.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    bases = validate.tensor(bases, "bases", ndim=3, last=x.shape[1]).to(DTYPE)
    if bases.shape[0] != x.shape[0]:
        raise ValueError(f"bases: expected one basis per point ({x.shape[0]}), got {bases.shape[0]}")
    threshold = validate.positive(threshold, "threshold")
    cand = list(range(x.shape[0])) if candidates is None else [int(i) for i in candidates]
    chords = _unit_chords(x)
    radii = torch.tensor([min(_max_radius(chords, x, x[i], bases[i], threshold), max_radius)
                          for i in cand], dtype=DTYPE)
    covers = torch.cdist(x[cand], x, compute_mode=EXACT) < radii[:, None]  # (C, N)
    uncovered = torch.ones(x.shape[0], dtype=torch.bool)
    chosen: list[int] = []
    while bool(uncovered.any()):
        gain = (covers & uncovered[None, :]).sum(dim=1)
        best = int(torch.argmax(gain))
        if int(gain[best]) == 0:
            raise ValueError(f"candidates: expected caps that cover every point, "
                             f"{int(uncovered.sum())} points stay uncovered")
        chosen.append(best)
        uncovered &= ~covers[best]
    return {"centres": [cand[i] for i in chosen], "radii": [float(radii[i]) for i in chosen],
            "n_charts": len(chosen)}


def greedy_curve_cover(x, bases, threshold: float, candidates: Sequence[int] | None = None,
                       max_radius: float = math.inf) -> dict:
    """Cover a closed curve, sampled in order (x (N, D), x_N = x_0), by charts as in
    ``greedy_chart_cover``, each chart counted on the arc of samples around its centre that its
    cap contains. Classic interval covering: the first chart is the one over sample 0 reaching
    farthest forward; each next chart is the one starting inside the covered stretch that reaches
    farthest, until the stretch closes up. At most one more chart than the fewest possible with
    these arcs. Returns {"centres", "radii", "arcs" ((start, end) sample indices), "n_charts"}.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    bases = validate.tensor(bases, "bases", ndim=3, last=x.shape[1]).to(DTYPE)
    n = x.shape[0]
    if bases.shape[0] != n:
        raise ValueError(f"bases: expected one basis per point ({n}), got {bases.shape[0]}")
    threshold = validate.positive(threshold, "threshold")
    cand = list(range(n)) if candidates is None else [int(i) % n for i in candidates]
    chords = _unit_chords(x)
    arcs = []  # (start, end, centre, radius), start <= centre <= end, unwrapped indices
    for c in cand:
        r = min(_max_radius(chords, x, x[c], bases[c], threshold), max_radius)
        inside = (torch.linalg.vector_norm(x - x[c], dim=1) < r).tolist()
        if all(inside):
            return {"centres": [c], "radii": [r], "arcs": [(0, n - 1)], "n_charts": 1}
        lo = hi = c
        while inside[(lo - 1) % n]:
            lo -= 1
        while inside[(hi + 1) % n]:
            hi += 1
        arcs.append((lo, hi, c, r))
    shifted = [(a - n * k, b - n * k, c, r) for a, b, c, r in arcs for k in (-1, 0, 1)]
    first = max((a for a in shifted if a[0] <= 0 <= a[1]), key=lambda a: a[1], default=None)
    if first is None:
        raise ValueError("candidates: expected some chart over sample 0, got none")
    chosen, reach, goal = [first], first[1], first[0] + n - 1
    while reach < goal:
        nxt = max((a for a in shifted if a[0] <= reach + 1), key=lambda a: a[1])
        if nxt[1] <= reach:
            raise ValueError(f"candidates: expected charts that cover the curve, none reaches "
                             f"past sample {reach % n}")
        chosen.append(nxt)
        reach = nxt[1]
    return {"centres": [a[2] for a in chosen], "radii": [a[3] for a in chosen],
            "arcs": [(a[0] % n, a[1] % n) for a in chosen], "n_charts": len(chosen)}


# ----------------------------------------------------------------------------------------------
# one-sided finite differences


def one_sided_difference(f: Callable[[torch.Tensor], torch.Tensor], t0: float, h, order: int,
                         side: str) -> torch.Tensor:
    """k-th one-sided difference quotient of f at t0, one value per step h.

    side "right": sum_j (-1)^(k-j) C(k,j) f(t0 + j h) / h^k (forward);
    side "left":  sum_j (-1)^j C(k,j) f(t0 - j h) / h^k (backward).
    Each uses f on one side of t0 only, and is within O(h) of the one-sided k-th derivative when f
    is C^{k+1} on that side. ``order`` 0 returns f(t0 +- h). f maps a float64 tensor (M,) to (M,).
    """
    order = validate.integer(order, "order", low=0)
    validate.choice(side, "side", ("left", "right"))
    h = torch.as_tensor(h, dtype=DTYPE).reshape(-1)
    if bool((h <= 0).any()) or not bool(torch.isfinite(h).all()):
        raise ValueError(f"h: expected finite steps > 0, got {h.tolist()}")
    if order == 0:
        return torch.as_tensor(f(t0 + (h if side == "right" else -h)), dtype=DTYPE)
    j = torch.arange(order + 1, dtype=DTYPE)
    coef = torch.tensor([math.comb(order, int(i)) for i in j], dtype=DTYPE)
    if side == "right":
        t = t0 + j[None, :] * h[:, None]
        coef = coef * (-1.0) ** (order - j)
    else:
        t = t0 - j[None, :] * h[:, None]
        coef = coef * (-1.0) ** j
    vals = torch.as_tensor(f(t.reshape(-1)), dtype=DTYPE).reshape(t.shape)
    return (vals * coef[None, :]).sum(dim=1) / h ** order
