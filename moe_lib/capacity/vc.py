"""VC machinery for MoMLPs (P1-R3): the bound L max{nL, JW}, exact and sampled sign-pattern counts.

Three kinds of numbers live here.

- Formulas. ``vc_bound(L, n, J, W) = L * max(n L, J W)`` (the paper's headline, constants and log
  factors dropped), its crossover ``L* = J W / n``, the Bartlett-Harvey-Liaw-Mehrabian proxy
  ``P J log2 P``, and the Sauer-Shelah sum ``sum_{i<=d} C(m, i)``.
- Exact counts. ``halfspace_dichotomies`` decides, for each of the 2^m labellings of m points, whether
  an affine classifier ``sign(w.x + b)`` realises it, with one HiGHS linear program per labelling;
  ``two_key_affine_patterns`` combines those into the exact number of labellings of a two-expert
  MoMLP with free keys and affine experts (the bisector of two free keys is any hyperplane).
- Sampled counts. ``sampled_sign_patterns`` draws random parameters of a key-routed MoMLP with ReLU
  experts and counts the distinct sign patterns on nested point sets: a *lower* bound on the growth
  function, never above the number of draws.

Labellings are bit masks: bit i of the integer is the label of point i (1 = positive).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog

from .. import validate


def vc_bound(L, n, J, W):
    """``L * max(n L, J W)`` elementwise (numpy broadcasting, integer arithmetic)."""
    L, n, J, W = (np.asarray(v, dtype=np.int64) for v in (L, n, J, W))
    if (L < 1).any() or (n < 1).any() or (J < 1).any() or (W < 1).any():
        raise ValueError(f"L, n, J, W: expected integers >= 1, got minima {L.min()}, {n.min()}, "
                         f"{J.min()}, {W.min()}")
    return L * np.maximum(n * L, J * W)


def crossover(n, J, W):
    """``L* = J W / n``: below it the expert term J W dominates, above it the router term n L."""
    n = validate.positive(n, "n")
    return validate.positive(J, "J") * validate.positive(W, "W") / n


def momlp_parameters(L, n, J, W) -> int:
    """Parameters of L key-routed experts: L keys in R^n plus L ReLU MLPs n -> W -> ... -> 1 of depth J.

    Depth J counts affine maps (J = 2 is one hidden layer), as ``moe_lib.mlp_param_count`` does.
    """
    L = validate.integer(L, "L", low=1)
    n = validate.integer(n, "n", low=1)
    J = validate.integer(J, "J", low=1)
    W = validate.integer(W, "W", low=1)
    dims = [n] + [W] * (J - 1) + [1]
    expert = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(J))
    return L * (n + expert)


def bartlett_proxy(P: int, J: int) -> float:
    """``P J log2 P``: the order of the VC dimension of piecewise-linear nets (Bartlett et al. 2019)."""
    P = validate.integer(P, "P", low=2)
    J = validate.integer(J, "J", low=1)
    return float(P * J * math.log2(P))


def sauer(m: int, d: int) -> int:
    """Sauer-Shelah: at most ``sum_{i=0}^{min(d, m)} C(m, i)`` labellings of m points if VCdim <= d."""
    m = validate.integer(m, "m", low=0)
    d = validate.integer(d, "d", low=0)
    return sum(math.comb(m, i) for i in range(min(d, m) + 1))


def cover_count(m: int, n: int) -> int:
    """Cover (1965): labellings of m points in general position in R^n by affine halfspaces,
    ``2 sum_{i=0}^{n} C(m-1, i)`` (all 2^m when m <= n + 1)."""
    m = validate.integer(m, "m", low=1)
    n = validate.integer(n, "n", low=1)
    return 2 * sum(math.comb(m - 1, i) for i in range(n + 1))


def labels_of(mask: int, m: int) -> np.ndarray:
    """The labels (+1/-1) encoded by the bit mask ``mask`` on m points."""
    bits = (int(mask) >> np.arange(m)) & 1
    return np.where(bits == 1, 1.0, -1.0)


def halfspace_realisable(x: np.ndarray, y: np.ndarray) -> bool:
    """Is there (w, b) with y_i (w.x_i + b) >= 1 for all i? One feasibility LP (HiGHS)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x, y: expected x (m, n) and y (m,), got {x.shape} and {y.shape}")
    if not set(np.unique(y)) <= {-1.0, 1.0}:
        raise ValueError(f"y: expected labels in {{-1, +1}}, got {np.unique(y)}")
    m, n = x.shape
    a_ub = -y[:, None] * np.hstack([x, np.ones((m, 1))])
    res = linprog(np.zeros(n + 1), A_ub=a_ub, b_ub=-np.ones(m), bounds=[(None, None)] * (n + 1),
                  method="highs")
    if res.status not in (0, 2):
        raise RuntimeError(f"linprog: unexpected status {res.status} ({res.message})")
    return res.status == 0


def halfspace_dichotomies(x: np.ndarray) -> np.ndarray:
    """All labellings of the m points x (m, n) that an affine classifier realises, as bit masks.

    Exact: one LP per labelling, 2^m of them, so m is capped at 14. A labelling and its complement
    are realised together (negate (w, b)), so only masks with bit m-1 clear are solved.
    """
    x = validate.tensor(np.asarray(x, dtype=float), "x", ndim=2).numpy()
    m = x.shape[0]
    validate.integer(m, "number of points", low=1, high=14)
    full = (1 << m) - 1
    found = []
    for mask in range(1 << (m - 1)):
        if halfspace_realisable(x, labels_of(mask, m)):
            found += [mask, full ^ mask]
    return np.array(sorted(found), dtype=np.int64)


def two_key_affine_patterns(dichotomies: np.ndarray, m: int) -> np.ndarray:
    """Exact labellings of the MoMLP with two free keys and two affine sign experts.

    Two keys route by their perpendicular bisector, and every hyperplane is the bisector of some
    pair of keys, so the routing splits are exactly the halfspace dichotomies S. On a split S the
    labellings are (d1 & S) | (d2 & ~S) for halfspace dichotomies d1, d2: the restriction of a
    halfspace labelling to a subset is a halfspace labelling of the subset and every one arises so.
    """
    d = np.unique(np.asarray(dichotomies, dtype=np.int64))
    m = validate.integer(m, "m", low=1, high=20)
    full = (1 << m) - 1
    if d.size == 0 or d.min() < 0 or d.max() > full:
        raise ValueError(f"dichotomies: expected bit masks in [0, {full}], got {d.size} values")
    out = set()
    for s in d:
        inside = np.unique(d & s)
        outside = np.unique(d & (full ^ s))
        out.update((inside[:, None] | outside[None, :]).ravel().tolist())
    return np.array(sorted(out), dtype=np.int64)


def count_prefix_patterns(signs: np.ndarray, ms) -> np.ndarray:
    """Distinct rows of ``signs[:, :m]`` (draws x points, booleans) for each m in ``ms``."""
    signs = np.asarray(signs, dtype=bool)
    if signs.ndim != 2:
        raise ValueError(f"signs: expected (draws, points), got shape {signs.shape}")
    out = []
    for m in ms:
        m = validate.integer(m, "m", low=1, high=signs.shape[1])
        packed = np.packbits(signs[:, :m], axis=1)
        out.append(np.unique(packed, axis=0).shape[0])
    return np.array(out, dtype=np.int64)


def key_routed_signs(x: np.ndarray, L: int, J: int, W: int, draws: int, rng: np.random.Generator,
                     chunk: int = 2000) -> np.ndarray:
    """Signs of random key-routed MoMLPs on the points x (m, n): a (draws, m) boolean array.

    Each draw: L keys uniform in [0,1]^n (nearest key routes), L ReLU experts of depth J (affine
    maps) and width W with standard normal weights and biases; output 1[E_route(x) > 0]. Every
    expert is evaluated on every point (vectorised over draws), then the routed one is selected.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"x: expected points (m, n), got shape {x.shape}")
    L = validate.integer(L, "L", low=1)
    J = validate.integer(J, "J", low=1)
    W = validate.integer(W, "W", low=1)
    draws = validate.integer(draws, "draws", low=1)
    chunk = validate.integer(chunk, "chunk", low=1)
    m, n = x.shape
    dims = [n] + [W] * (J - 1) + [1]
    out = np.empty((draws, m), dtype=bool)
    for start in range(0, draws, chunk):
        D = min(chunk, draws - start)
        keys = rng.random((D, L, n))
        route = ((x[None, None] - keys[:, :, None]) ** 2).sum(-1).argmin(axis=1)   # (D, m)
        h = np.broadcast_to(x, (D, L, m, n))
        for i in range(J):
            w = rng.standard_normal((D, L, dims[i], dims[i + 1]))
            b = rng.standard_normal((D, L, 1, dims[i + 1]))
            h = h @ w + b
            if i < J - 1:
                h = np.maximum(h, 0.0)
        val = np.take_along_axis(h[..., 0], route[:, None, :], axis=1)[:, 0]   # (D, m)
        out[start:start + D] = val > 0
    return out
