"""Charts of embedded manifolds and the covers they give.

- ``TangentChart`` / ``tangent_charts``: the tangent projection at a centre, rescaled to [0,1]^d;
- ``StereographicChart``: stereographic projection of the unit sphere from -c (not linear in x);
- ``EmbeddedChart``: a chart of the intrinsic sphere used on M = Q S^d in R^D;
- ``lower_lipschitz``, ``max_chart_radius``, ``greedy_chart_cover``, ``greedy_curve_cover``:
  lower Lipschitz constants of a chart and greedy covers by charts that keep it above a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .. import validate
from ..validate import DTYPE
from .manifolds import EXACT, EmbeddedManifold, Sphere, as_centre, as_points
from .partition import radii


class TangentChart:
    """The chart phi(x) = A (x - c) of a cap U = M cap B(c, r), A = ``manifold.tangent_basis(c)``.

    ``coords`` is the raw tangent projection (values in the ball of radius r of R^d on U);
    ``__call__`` is its affine rescaling u = A (x - c) / (2r) + 1/2, which maps U into [0,1]^d;
    ``inverse`` maps u back onto M (where the projection is injective); ``affine`` returns (W, b)
    with u = W x + b, the form that merges into a network's first layer.
    """

    def __init__(self, manifold: EmbeddedManifold, centre, radius: float):
        self.manifold = manifold
        self.centre = as_centre(centre, manifold.D)
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
        x = as_points(x, "x", self.D)
        return torch.linalg.vector_norm(x - self.centre, dim=1) < self.radius

    def coords(self, x) -> torch.Tensor:
        """Raw tangent coordinates A (x - c), (N, d)."""
        return (as_points(x, "x", self.D) - self.centre) @ self.A.T

    def __call__(self, x) -> torch.Tensor:
        """Rescaled chart u = A (x - c) / (2r) + 1/2 in [0,1]^d on the cap, (N, d)."""
        return self.coords(x) / (2.0 * self.radius) + 0.5

    def inverse(self, u) -> torch.Tensor:
        """Points of M (N, D) whose rescaled chart value is u (N, d)."""
        u = as_points(u, "u", self.d)
        return self.manifold.lift(self.centre, (u - 0.5) * (2.0 * self.radius))

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b), W (d, D), b (d,), with chart(x) = x W^T + b."""
        w = self.A / (2.0 * self.radius)
        return w, 0.5 - w @ self.centre


def tangent_charts(manifold: EmbeddedManifold, centres, radius) -> list[TangentChart]:
    """One ``TangentChart`` per centre (rows of ``centres``), radius shared or one per centre."""
    centres = validate.tensor(centres, "centres", ndim=2, last=manifold.D).to(DTYPE)
    r = radii(radius, centres.shape[0])
    return [TangentChart(manifold, c, float(ri)) for c, ri in zip(centres, r, strict=True)]


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
    c = as_centre(centre, x.shape[1])
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


class StereographicChart:
    """Stereographic projection of the unit sphere from -c onto the tangent space at c:

    u = A x / (1 + <c, x>),   x = phi^{-1}(u) = (2 A^T u + (1 - |u|^2) c) / (1 + |u|^2),

    A = ``manifold.tangent_basis(c)`` (orthonormal rows, A c = 0). phi is C^infinity on
    {<c, x> > -1} (so on every cap it is 'regular' in the sense of Def 4.7) and *not* linear in x;
    phi^{-1} is defined on all of R^d, conformal with factor 2 / (1 + |u|^2) <= 2, so
    Lip(f o phi^{-1}) <= 2 Lip(f) on R^d (``lipschitz_factor``).
    """

    lipschitz_factor = 2.0

    def __init__(self, manifold: EmbeddedManifold, centre):
        if not isinstance(manifold, Sphere):
            raise ValueError(f"manifold: expected a moe_lib.geometry.Sphere, got {manifold!r}")
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
