"""Generalization-bound formulas for sparse MoEs (Zhao, Wang & Wang 2024, P3), as we read them.

The main bound (P3-T1), known from its restatement by Yan et al. (MELD, KDD 2024) and the
theorem's hypothesis (a [0, 1]-valued, C-Lipschitz loss):

    L_D(f) - L_S(f) <= 4 C R_m(H) + 2 sqrt([2 k d_N (1 + ln(T/k)) + d_N ln(2m) + ln(4/delta)] / (2m))

``routing_term`` is the square-root term; with ``exact=True`` the relaxed k (1 + ln(T/k)) is
replaced by the exact ln C(T, k) it upper-bounds (our reconstruction of the proof: the Natarajan
lemma on the doubled sample gives ln tau <= d_N ln(2m) + 2 d_N ln C(T, k)).

Everything is vectorised with numpy broadcasting over m, T, k, d_N. The binomial counts come from
``capacity.growth``, the Rademacher complexities of linear classes from ``capacity.rademacher``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import validate
from .growth import log_binom, relaxed_log_binom


def _int_array(v, name: str, low: int) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name}: expected integers >= {low}, got {v!r}")
    if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)) or np.any(a < low):
        raise ValueError(f"{name}: expected integers >= {low}, got {v!r}")
    return a.astype(np.float64)


def _tk(T, k) -> tuple[np.ndarray, np.ndarray]:
    T = _int_array(T, "T", 1)
    k = _int_array(k, "k", 1)
    if np.any(np.broadcast_to(k, np.broadcast_shapes(k.shape, T.shape))
              > np.broadcast_to(T, np.broadcast_shapes(k.shape, T.shape))):
        raise ValueError(f"k: expected 1 <= k <= T, got k = {k.tolist()} and T = {T.tolist()}")
    return T, k


def _delta(delta) -> float:
    delta = validate.positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta: expected a confidence level in (0, 1), got {delta}")
    return delta



def sparsity_factor(T, k, exact: bool = False) -> np.ndarray:
    """The routing combinatorics per unit of 2 d_N: k (1 + ln(T/k)) (relaxed), or ln C(T, k)."""
    T, k = _tk(T, k)
    T, k = T.astype(np.int64), k.astype(np.int64)
    return log_binom(T, k) if exact else relaxed_log_binom(T, k)


def log_patterns(m, T, k, d_N, exact: bool = False) -> np.ndarray:
    """Upper bound on ln(number of selection patterns on 2m points):
    d_N ln(2m) + 2 d_N * sparsity_factor(T, k)  (Natarajan lemma, SSBD Lemma 29.4)."""
    m = _int_array(m, "m", 1)
    d_N = _int_array(d_N, "d_N", 0)
    return d_N * np.log(2 * m) + 2 * d_N * sparsity_factor(T, k, exact)


def routing_term(m, T, k, d_N, delta: float = 0.05, exact: bool = False) -> np.ndarray:
    """2 sqrt([2 d_N s(T, k) + d_N ln(2m) + ln(4/delta)] / (2m)), s = k(1 + ln(T/k)) or ln C(T,k)."""
    delta = _delta(delta)
    m_arr = _int_array(m, "m", 1)
    return 2.0 * np.sqrt((log_patterns(m, T, k, d_N, exact) + math.log(4 / delta)) / (2 * m_arr))


def expert_term(lipschitz, rademacher) -> np.ndarray:
    """4 C R_m(H), with C the Lipschitz constant of the [0, 1]-valued loss."""
    c = np.asarray(lipschitz, dtype=np.float64)
    r = np.asarray(rademacher, dtype=np.float64)
    if np.any(~np.isfinite(c)) or np.any(c < 0) or np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"lipschitz, rademacher: expected finite numbers >= 0, got {lipschitz!r} "
                         f"and {rademacher!r}")
    return 4.0 * c * r


def sparse_moe_bound(m, T, k, d_N, lipschitz=1.0, rademacher=0.0, delta: float = 0.05,
                     exact: bool = False) -> np.ndarray:
    """The P3-T1 right-hand side: expert_term + routing_term (broadcast over all arguments)."""
    return expert_term(lipschitz, rademacher) + routing_term(m, T, k, d_N, delta, exact)






def conservative_expert_sum(x: np.ndarray, selected: np.ndarray, B: float, T: int) -> float:
    """The 'naive' expert cost sum_j (m_j / m) R_hat_{S_j}(H) for the linear class of norm B,
    where S_j are the points routed to expert j (``selected``: (m, k) expert indices):
    sum_j (B / m) sqrt(sum_{i in S_j} ||x_i||^2) <= sqrt(k T) (B / m) sqrt(sum_i ||x_i||^2)."""
    x = np.asarray(x, dtype=np.float64)
    selected = np.asarray(selected)
    T = validate.integer(T, "T", low=1)
    if selected.ndim != 2 or selected.shape[0] != x.shape[0]:
        raise ValueError(f"selected: expected ({x.shape[0]}, k) expert indices, "
                         f"got shape {selected.shape}")
    if selected.min() < 0 or selected.max() >= T:
        raise ValueError(f"selected: expected indices in [0, {T - 1}], "
                         f"got [{selected.min()}, {selected.max()}]")
    sq = (x ** 2).sum(axis=1)
    per_expert = np.zeros(T)
    np.add.at(per_expert, selected.reshape(-1), np.repeat(sq, selected.shape[1]))
    return float(B) * float(np.sqrt(per_expert).sum()) / x.shape[0]



def vacuity_m(T, k, d_N, delta: float = 0.05, exact: bool = False, level: float = 1.0,
              m_max: float = 1e15) -> np.ndarray:
    """Smallest integer m with routing_term(m) <= level (broadcast over T, k, d_N), by bisection on
    the decreasing function m -> routing_term; inf if even m_max does not reach it."""
    level = validate.positive(level, "level")
    T, k = _tk(T, k)
    d_N = _int_array(d_N, "d_N", 0)
    shape = np.broadcast_shapes(T.shape, k.shape, d_N.shape)
    T, k, d_N = (np.broadcast_to(a, shape).astype(np.float64) for a in (T, k, d_N))
    lo = np.ones(shape)
    hi = np.full(shape, float(m_max))

    def f(m):
        s = k * (1 + np.log(T / k)) if not exact else log_binom(T, k)
        return 2 * np.sqrt((d_N * np.log(2 * m) + 2 * d_N * s + math.log(4 / _delta(delta)))
                           / (2 * m))

    reach = f(hi) <= level
    for _ in range(80):
        mid = np.floor((lo + hi) / 2)
        ok = f(mid) <= level
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
        if np.all(hi - lo <= 1):
            break
    out = np.where(f(lo) <= level, lo, hi)
    return np.where(reach, out, np.inf)
