"""Targets, samplers and problems of P2's geometry chapters (Thm 3.1, Thm 4.4, Ex 4.6, Def 4.7).

- Thm 3.1 (dense rate): ``kink_profile`` g(t) = ReLU(t - 0.3)^2 and ``kink_target``
  f(x) = sum_i g(x_i) (C^1, not C^2), ``cube_points`` uniform in [-1, 1]^D;
- Thm 4.4 (atlas): ``atlas_problem(name, D, seed, radii)``: a manifold, its cap centres, cap radius
  and covering radius; ``ChartPullback``: t -> g((lift_c(t) - p) . v), f o phi^{-1} on a circle;
- Ex 4.6 (linear charts): ``arcs_needed`` (fewest equal arcs whose caps of a given angle cover a
  sampled circle), ``ellipse`` (points and unit tangents of (cos t, b sin t), embedded),
  ``audit_curve_cover`` (re-measures a chart cover: fraction covered, worst lower Lipschitz constant);
- Def 4.7 (regular atlas): ``stereo_problem``: a circle in R^D, its stereographic chart at one
  point and train / validation / test points on an arc around it; ``slope_spread_test``: are
  mean slopes (over repeated draws) equal across D? (Tukey's studentized range);
  ``slope_with_se`` (least-squares log-log slope and its standard error), ``range_allowance``
  (the studentized-range allowance for the spread of k estimates with known standard errors).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from .. import geometry as geo
from .. import validate
from ..analysis import slope_interval
from ..validate import DTYPE

#: The kink of the Thm 3.1 target: g(t) = ReLU(t - KINK)^2.
KINK = 0.3


def kink_profile(t: torch.Tensor) -> torch.Tensor:
    """g(t) = ReLU(t - 0.3)^2: C^1 but not C^2 at t = 0.3."""
    return torch.relu(t - KINK).pow(2)


def kink_target(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sum_i ReLU(x_i - 0.3)^2 on rows x (N, D): (N,)."""
    return torch.relu(x - KINK).pow(2).sum(dim=1)


def cube_points(n: int, D: int, gen: torch.Generator) -> torch.Tensor:
    """n uniform points of [-1, 1]^D (float64), drawn from ``gen``."""
    return 2 * torch.rand(n, D, generator=gen, dtype=DTYPE) - 1


def atlas_problem(name: str, D: int, seed: int, radii: dict) -> tuple:
    """(manifold, centres, cap radius r, covering radius R) of the atlas chapter: "S^1" (4 arcs),
    "S^2" and "S^3" (axis centres), "T^2" (a 4 x 4 grid); ``radii`` maps each name to its r."""
    validate.choice(name, "name", ("S^1", "S^2", "T^2", "S^3"))
    if name == "S^1":
        m = geo.Sphere(1, D, seed)
        return m, m.arc_centres(4), radii[name], 2 * math.sin(math.pi / 8)
    if name == "S^2":
        m = geo.Sphere(2, D, seed)
        return m, m.axis_centres(), radii[name], m.axis_cover_radius()
    if name == "T^2":
        m = geo.FlatTorus(2, D, seed)
        return m, m.grid_centres(4), radii[name], 2 * math.sqrt(2) * math.sin(math.pi / 8)
    m = geo.Sphere(3, D, seed)
    return m, m.axis_centres(), radii[name], m.axis_cover_radius()


class ChartPullback:
    """F(t) = g((lift_c(t) - p) . v): a function g of the signed tangent offset from p, pulled back
    through the tangent chart at c of a circle (f o phi^{-1} of the smoothness experiment)."""

    def __init__(self, g: Callable, manifold: geo.EmbeddedManifold, chart: geo.TangentChart,
                 p: torch.Tensor, v: torch.Tensor):
        self.g, self.manifold, self.chart, self.p, self.v = g, manifold, chart, p, v

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return self.g((self.manifold.lift(self.chart.centre, t[:, None]) - self.p) @ self.v)


def arcs_needed(a: float, ring: torch.Tensor, circle: geo.Sphere, max_arcs: int = 1000) -> int:
    """The fewest E equally spaced centres whose caps of angle ``a`` (chord 2 sin(a/2)) cover the
    sampled circle ``ring``."""
    chord = 2 * math.sin(a / 2)
    return next(E for E in range(1, max_arcs) if geo.cover_radius(ring, circle.arc_centres(E)) < chord)


def ellipse(b: float, n_curve: int, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_curve`` points of the ellipse (cos t, b sin t) and their unit tangents (N, 1, D),
    embedded by Q (D, 2)."""
    t = torch.linspace(0, 2 * math.pi, n_curve + 1, dtype=DTYPE)[:-1]
    x = torch.stack([torch.cos(t), b * torch.sin(t)], dim=1)
    tangent = torch.stack([-torch.sin(t), b * torch.cos(t)], dim=1)
    tangent = tangent / torch.linalg.vector_norm(tangent, dim=1, keepdim=True)
    return x @ Q.T, (tangent @ Q.T)[:, None, :]


def audit_curve_cover(x: torch.Tensor, bases: torch.Tensor, cover: dict) -> dict:
    """Check a cover of sampled curve points x (N, D) by ball charts, independently of how it was
    built: ``cover`` has "centres" (sample indices) and "radii"; ``bases`` (N, d, D) holds the
    tangent basis at each sample. Returns {"covered": fraction of samples in some open ball
    B(x_c, r_c), "min_ell": the smallest lower Lipschitz constant of the tangent projection
    x -> (x - x_c) A_c^T over the samples in its ball, "n_charts"}."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    bases = validate.tensor(bases, "bases", ndim=3, last=x.shape[1]).to(DTYPE)
    if bases.shape[0] != x.shape[0]:
        raise ValueError(f"bases: expected one basis per point ({x.shape[0]}), got {bases.shape[0]}")
    if len(cover["centres"]) != len(cover["radii"]) or not cover["centres"]:
        raise ValueError(f"cover: expected as many radii as centres (at least one), got "
                         f"{len(cover['centres'])} centres and {len(cover['radii'])} radii")
    covered = torch.zeros(x.shape[0], dtype=torch.bool)
    ells = []
    for c, r in zip(cover["centres"], cover["radii"], strict=True):
        inside = torch.linalg.vector_norm(x - x[c], dim=1) < r
        covered |= inside
        pts = x[inside]
        ells.append(geo.lower_lipschitz(pts, (pts - x[c]) @ bases[c].T))
    return {"covered": float(covered.double().mean()), "min_ell": min(ells),
            "n_charts": len(cover["centres"])}


def stereo_problem(D: int, seed: int, half_angle: float, n_train: int, n_val: int,
                   n_test: int) -> tuple:
    """Circle in R^D, the stereographic chart s at c, and train/validation/test points on the arc
    of half-angle ``half_angle`` around c (the same angles in every D): (circle, (x, s(x), x_val,
    s(x_val), x_test, s(x_test)))."""
    circle = geo.Sphere(1, D, seed)
    c = circle.from_angles(torch.zeros(1, dtype=DTYPE))[0]
    e = circle.tangent_basis(c)[0]
    gen = torch.Generator().manual_seed(seed)

    def arc(n):
        return circle.from_angles((2 * torch.rand(n, generator=gen, dtype=DTYPE) - 1) * half_angle)

    def s(x):
        return (x @ e) / (1 + x @ c)

    x, x_val, x_test = arc(n_train), arc(n_val), arc(n_test)
    return circle, (x, s(x), x_val, s(x_val), x_test, s(x_test))


def equal_effective_windows(widths, fractions: dict) -> dict:
    """Index windows of ``widths`` (increasing) at equal effective widths f_key * m: each key's window
    starts at the width whose f_key * m is closest (in log) to max(f) * widths[0], and all windows
    have the number of points the latest start leaves. Returns {key: [indices]}."""
    w = torch.as_tensor(widths, dtype=DTYPE)
    if w.ndim != 1 or w.numel() < 2 or not bool((w[1:] > w[:-1]).all()) or not bool((w > 0).all()):
        raise ValueError(f"widths: expected an increasing list of >= 2 positive widths, got {widths}")
    if not fractions or not all(0 < float(f) <= 1 for f in fractions.values()):
        raise ValueError(f"fractions: expected fractions in (0, 1] per key, got {fractions}")
    e0 = max(float(f) for f in fractions.values()) * float(w[0])
    start = {k: int(w.mul(float(f) / e0).log().abs().argmin()) for k, f in fractions.items()}
    n = len(w) - max(start.values())
    if n < 2:
        raise ValueError(f"widths: the effective widths of {sorted(fractions)} overlap on fewer than "
                         f"2 grid points of {widths}; extend the grid")
    return {k: list(range(s, s + n)) for k, s in start.items()}


def slope_spread_test(slopes: dict, level: float = 0.95) -> dict:
    """Spread of the mean slopes across groups (e.g. ambient dimensions), each a list of per-draw
    slopes of equal length n >= 2, against Tukey's studentized-range allowance: under "all groups
    have the same mean", max - min of the k means exceeds q_level(k, k (n - 1)) s_p / sqrt(n) with
    probability 1 - level, s_p the pooled per-draw standard deviation.

    Returns {"means", "spread", "allowance", "q", "pooled_sd"}.
    """
    if len(slopes) < 2:
        raise ValueError(f"slopes: expected at least two groups, got {len(slopes)}")
    rows = {key: torch.as_tensor(v, dtype=DTYPE).reshape(-1) for key, v in slopes.items()}
    n = {r.numel() for r in rows.values()}
    if len(n) != 1 or min(n) < 2:
        raise ValueError(f"slopes: expected the same number (>= 2) of draws per group, got "
                         f"{sorted(r.numel() for r in rows.values())}")
    n, k = n.pop(), len(rows)
    level = validate.positive(level, "level")
    if not level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    means = {key: float(r.mean()) for key, r in rows.items()}
    pooled = math.sqrt(sum(float(r.var()) for r in rows.values()) / k)
    allowance, q = range_allowance([pooled / math.sqrt(n)] * k, k * (n - 1), level)
    return {"means": means, "spread": max(means.values()) - min(means.values()),
            "allowance": allowance, "q": q, "pooled_sd": pooled}


def range_allowance(ses, df: int, level: float = 0.95) -> tuple[float, float]:
    """(q_level(k, df) * sqrt(mean se^2), q): the spread (max - min) that k independent estimates
    of one value, with standard errors ``ses`` on ``df`` degrees of freedom in all, exceed with
    probability 1 - level (Tukey's studentized range)."""
    ses = [float(v) for v in ses]
    if len(ses) < 2 or not all(math.isfinite(v) and v >= 0 for v in ses):
        raise ValueError(f"ses: expected at least two finite standard errors >= 0, got {ses}")
    df = validate.integer(df, "df", low=1)
    q = _studentized_range_quantile(float(level), len(ses), df)
    return q * math.sqrt(sum(v * v for v in ses) / len(ses)), q


@functools.lru_cache(maxsize=64)
def _studentized_range_quantile(level: float, k: int, df: int) -> float:
    from scipy.stats import studentized_range  # slow to import: only when a test is run

    return float(studentized_range.ppf(level, k, df))


def slope_with_se(x, y) -> tuple[float, float]:
    """(slope, standard error) of the least-squares log-log fit: ``analysis.slope_interval``'s."""
    fit = slope_interval(x, y)
    return fit["slope"], fit["se"]
