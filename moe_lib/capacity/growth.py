"""Growth functions: routing patterns of linear top-k routers on m points, and the counting bounds.

- ``random_router_codes`` / ``distinct_prefix_counts``: patterns realised by random routers on
  every prefix of a point sequence (one lexicographic sort, no loop over prefixes);
- ``exact_pattern_counts``: all strictly realisable patterns on every prefix, by exact LPs;
- ``cover_count``: Cover's (1965) number of homogeneous linear dichotomies of m points in general
  position in R^n, 2 sum_{i<n} C(m-1, i);
- binomial helpers shared with the bound formulas: ``log_binom``, ``relaxed_log_binom``
  (k (1 + ln(T/k)) >= ln C(T, k)), ``binom_sum`` (exact integer), ``log_binom_sum`` (vectorised),
  ``log_sauer_shelah`` (d ln(e m / d)).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import gammaln

from .. import validate
from ..models.routing import top_k
from . import natarajan


def _counts(x, name: str, low: int = 0) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
        a = a.astype(np.int64)   # integer-valued floats (e.g. grids built with numpy) are counts too
    if a.dtype.kind not in "iu" or (a.size and a.min() < low):
        raise ValueError(f"{name}: expected integers >= {low}, got {a.dtype} values {np.ravel(a)[:5]}")
    return a.astype(np.int64)


def log_binom(n, k) -> np.ndarray:
    """ln C(n, k) for integer arrays 0 <= k <= n (lgamma; vectorised)."""
    n, k = np.broadcast_arrays(_counts(n, "n"), _counts(k, "k"))
    if (k > n).any():
        raise ValueError("k: expected 0 <= k <= n, got k > n")
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def relaxed_log_binom(T, k) -> np.ndarray:
    """k (1 + ln(T/k)): the relaxation of ln C(T, k) through C(T, k) <= (e T / k)^k."""
    T, k = np.broadcast_arrays(_counts(T, "T", 1), _counts(k, "k", 1))
    if (k > T).any():
        raise ValueError("k: expected 1 <= k <= T, got k > T")
    return k * (1.0 + np.log(T / k))


def binom_sum(m: int, d: int) -> int:
    """sum_{i=0}^{d} C(m, i), exactly (Python integers)."""
    m = validate.integer(m, "m", low=0)
    d = validate.integer(d, "d", low=0)
    return sum(math.comb(m, i) for i in range(min(d, m) + 1))


def log_binom_sum(m_max: int, d_max: int) -> np.ndarray:
    """Table L[m, d] = ln sum_{i=0}^{d} C(m, i) for 0 <= m <= m_max, 0 <= d <= d_max."""
    m_max = validate.integer(m_max, "m_max", low=0)
    d_max = validate.integer(d_max, "d_max", low=0)
    m = np.arange(m_max + 1)[:, None]
    i = np.arange(d_max + 1)[None, :]
    terms = np.where(i <= m, gammaln(m + 1.0) - gammaln(i + 1.0) - gammaln(np.maximum(m - i, 0) + 1.0),
                     -np.inf)
    return np.logaddexp.accumulate(terms, axis=1)


def log_sauer_shelah(m, d) -> np.ndarray:
    """d ln(e m / d): the Sauer-Shelah bound (e m / d)^d on sum_{i<=d} C(m, i), valid for m >= d >= 1."""
    m, d = np.broadcast_arrays(_counts(m, "m", 1), _counts(d, "d", 1))
    return d * (1.0 + np.log(m / d))


def cover_count(m: int, n: int) -> int:
    """Cover's count 2 sum_{i=0}^{n-1} C(m-1, i): homogeneous linear dichotomies of m >= 1 points in
    general position in R^n (n = d + 1 for affine classifiers of R^d)."""
    m = validate.integer(m, "m", low=1)
    n = validate.integer(n, "n", low=1)
    return 2 * binom_sum(m - 1, n - 1)


def random_router_codes(X, T: int, k: int, n_draws: int, rng: np.random.Generator,
                        bias: bool = True, batch: int = 4096) -> np.ndarray:
    """Patterns of ``n_draws`` random linear top-k routers (Gaussian W) on X (m, d).

    Returns codes (n_draws, m): entry [r, i] is the bit code sum_{j in S} 2^j of the subset router r
    selects at point i. Selection is ``moe_lib.top_k`` (ties to the lower index).
    """
    Xt = torch.from_numpy(natarajan.features(X, bias))
    T = validate.integer(T, "T", low=1, high=62)
    k = validate.integer(k, "k", low=1, high=T)
    n_draws = validate.integer(n_draws, "n_draws", low=1)
    batch = validate.integer(batch, "batch", low=1)
    m, n = Xt.shape
    weights = torch.from_numpy(np.left_shift(1, np.arange(T, dtype=np.int64)))
    out = np.empty((n_draws, m), dtype=np.int64)
    for start in range(0, n_draws, batch):
        b = min(batch, n_draws - start)
        W = torch.from_numpy(rng.standard_normal((b, T, n)))
        scores = torch.einsum("mn,btn->bmt", Xt, W).reshape(b * m, T)
        idx = top_k(scores, k).idx
        out[start:start + b] = weights[idx].sum(dim=1).reshape(b, m).numpy()
    return out


def distinct_prefix_counts(codes) -> np.ndarray:
    """c[m-1] = number of distinct rows of codes[:, :m], for m = 1..M, from one lexicographic sort.

    After sorting the rows lexicographically, rows sharing a length-m prefix are adjacent, so the
    distinct prefixes are 1 + #(adjacent pairs whose first difference is at a column < m).
    """
    P = np.asarray(codes)
    if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError(f"codes: expected a non-empty 2-D array (draws, points), got shape {P.shape}")
    P = P[np.lexsort(P.T[::-1])]
    diff = P[1:] != P[:-1]
    first = np.where(diff.any(axis=1), diff.argmax(axis=1), P.shape[1])
    hist = np.bincount(first, minlength=P.shape[1] + 1)[:P.shape[1]]
    return 1 + np.cumsum(hist)


def exact_pattern_counts(X, T: int, k: int, bias: bool = True, m_max: int | None = None
                         ) -> tuple[np.ndarray, int]:
    """Number of strictly realisable top-k patterns on X[:m] for m = 1..m_max, by exact LPs.

    Realisability is prefix-closed (a router realising a pattern on m points realises its
    restriction to m - 1), so the patterns on m points are the realisable one-point extensions of
    those on m - 1: checking these is the same as checking all C(T, k)^m labellings.
    Returns (counts, number of LPs solved).
    """
    X = validate.matrix(X, "X")
    m_max = X.shape[0] if m_max is None else validate.integer(m_max, "m_max", low=1, high=X.shape[0])
    labels = natarajan.subset_masks(T, k)
    patterns: list[tuple[int, ...]] = [()]
    counts, lps = [], 0
    for m in range(1, m_max + 1):
        grown = []
        for p in patterns:
            for s in range(len(labels)):
                q = p + (s,)
                lps += 1
                if natarajan.realisable(X[:m], labels[list(q)], bias):
                    grown.append(q)
        patterns = grown
        counts.append(len(patterns))
    return np.array(counts), lps
