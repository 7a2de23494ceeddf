"""Compact manifolds in R^D and points on them.

Everything is float64 torch. A manifold M is given in *intrinsic coordinates* of R^k (the unit
sphere S^d in R^{d+1}, the flat torus (S^1)^n in R^{2n}) and put in R^D, D >= k, by a random
orthogonal embedding x = Q y with Q in R^{D x k}, Q^T Q = I. Since Q is an isometry, distances,
angles, reach and the lower Lipschitz constants of charts are the same in R^k and in R^D.

- ``random_embedding(k, D, seed)`` -> Q; ``Sphere(d, D, seed)``, ``FlatTorus(n, D, seed)``:
  ``sample``, ``embed``/``intrinsic``, ``tangent_basis``, ``lift`` (inverse of the tangent
  projection), centres of caps (``axis_centres``, ``arc_centres``, ``grid_centres``).
- ``cover_radius``: the largest distance from a sample point to its nearest centre;
- ``ball_points``, ``ball_grid``, ``cap_points``: uniform points of a ball, a grid in a ball,
  uniform points of a cap; ``rotated_axis_centres``: the 2(d+1) axis centres in general position.

Partitions of unity are in ``partition``, charts and covers in ``charts``.
"""

from __future__ import annotations

import math

import torch

from .. import validate
from ..seed import generator
from ..validate import DTYPE

#: cdist without the ||a||^2 + ||b||^2 - 2<a,b> shortcut, which loses small distances to rounding.
EXACT = "donot_use_mm_for_euclid_dist"


# ----------------------------------------------------------------------------------------------
# randomness and embeddings


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


def as_points(x, name: str, dim: int) -> torch.Tensor:
    x = validate.tensor(x, name, ndim=2, last=dim)
    return x.to(DTYPE)


def as_centre(c, dim: int) -> torch.Tensor:
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
        return as_points(y, "y", self.k) @ self.Q.T

    def intrinsic(self, x) -> torch.Tensor:
        """Points of R^D (N, D) -> intrinsic coordinates Q^T x (N, k) (orthogonal projection)."""
        return as_points(x, "x", self.D) @ self.Q

    def sample_intrinsic(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """n points of M (uniform for the Riemannian volume) in intrinsic coordinates, (n, k)."""
        n = validate.integer(n, "n", low=1)
        return self._sample_intrinsic(n, generator(seed))

    def sample(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """n uniform points of M in R^D, (n, D)."""
        return self.embed(self.sample_intrinsic(n, seed))

    def residual(self, x) -> torch.Tensor:
        """Per point, a quantity that is 0 exactly on M: off-span part plus intrinsic defect."""
        x = as_points(x, "x", self.D)
        y = x @ self.Q
        off = torch.linalg.vector_norm(x - y @ self.Q.T, dim=1)
        return off + self._residual_intrinsic(y)

    # tangent spaces and charts
    def tangent_basis(self, centre) -> torch.Tensor:
        """A (d, D) matrix with orthonormal rows spanning the tangent space of M at ``centre``."""
        c = as_centre(centre, self.D)
        return self._tangent_intrinsic(c @ self.Q) @ self.Q.T

    def lift(self, centre, t) -> torch.Tensor:
        """Points x of M (N, D) with A (x - c) = t, A = ``tangent_basis(centre)``, near c.

        The inverse of the tangent projection on its injectivity domain (a hemisphere for S^d, a
        product of half circles for the torus); raises if some t lies outside its image.
        """
        c = as_centre(centre, self.D)
        t = as_points(t, "t", self.d)
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
        a = as_points(a, "a", self.d)
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


# ----------------------------------------------------------------------------------------------
# tangent-projection charts


# ----------------------------------------------------------------------------------------------
# lower Lipschitz constants and covers


# ----------------------------------------------------------------------------------------------
# one-sided finite differences


def ball_points(n: int, d: int, radius: float, seed: int | torch.Generator = 0) -> torch.Tensor:
    """n uniform points of the ball {|u| <= radius} in R^d, (n, d)."""
    n = validate.integer(n, "n", low=1)
    d = validate.integer(d, "d", low=1)
    radius = validate.positive(radius, "radius")
    gen = generator(seed)
    g = torch.randn(n, d, generator=gen, dtype=DTYPE)
    r = radius * torch.rand(n, 1, generator=gen, dtype=DTYPE) ** (1.0 / d)
    return r * g / torch.linalg.vector_norm(g, dim=1, keepdim=True)


def rotated_axis_centres(manifold: Sphere, seed: int = 0) -> torch.Tensor:
    """The 2(d+1) cap centres +-R e_j of S^d, R a fixed random rotation of the intrinsic
    coordinates, embedded: (2(d+1), D), ordered +R e_1, -R e_1, +R e_2, ...

    Same geometry as ``manifold.axis_centres()``, in general position with respect to the
    coordinate axes (an earlier tangent basis was unstable on the axes; the rotation is kept so
    the chapters' numbers stay as published).
    """
    if not isinstance(manifold, Sphere):
        raise ValueError(f"manifold: expected a moe_lib.geometry.Sphere, got {manifold!r}")
    rot = random_embedding(manifold.k, manifold.k, seed)
    eye = torch.eye(manifold.k, dtype=DTYPE)
    axis = torch.stack([eye, -eye], dim=1).reshape(2 * manifold.k, manifold.k)
    return manifold.embed(axis @ rot.T)


def cap_points(manifold: EmbeddedManifold, centre: torch.Tensor, radius: float, n: int,
                seed: int, intrinsic: bool = False) -> torch.Tensor:
    """n uniform points of M inside the cap ||x - c|| < r (rejection from uniform samples); with
    ``intrinsic`` the centre and the returned points are in intrinsic coordinates."""
    gen = generator(seed)
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


def ball_grid(d: int, radius: float, per_axis: int) -> torch.Tensor:
    """The points of the grid linspace(-R, R, per_axis)^d inside the ball |u| <= R."""
    axis = torch.linspace(-radius, radius, validate.integer(per_axis, "per_axis", low=2),
                          dtype=DTYPE)
    grid = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)
    return grid[torch.linalg.vector_norm(grid, dim=1) <= radius]
