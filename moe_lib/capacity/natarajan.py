"""Natarajan dimension of linear top-k routers: exact realisability by linear programming.

A linear top-k router on R^d scores the T experts by s(x) = W x~ (x~ = (x, 1) with a bias, x~ = x
without) and selects the k-subset S(x) of the k largest scores. Its *selection map* x -> S(x) is a
multiclass classifier with K = C(T, k) labels.

- A labelling x_i -> S_i of a finite set is *strictly realisable* iff some W has
  (w_j - w_j') . x~_i >= 1 for every i, every j in S_i and every j' not in S_i (a feasibility LP;
  the margin 1 is only a scale). Almost every W realises its labelling strictly, ties having
  measure zero; a strictly realised labelling is realised under any tie-breaking rule.
- C is N-shattered (Natarajan) if there are f0, f1 with f0(x) != f1(x) on C such that for every
  B subset of C the labelling "f0 on B, f1 off B" is realisable.

Labellings are boolean masks of shape (n, T), each row with exactly k True entries.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.optimize import linprog

from .. import validate

MARGIN_TOL = 1e-9   # max-margin fallback: margins below this count as "not strictly realisable"



def features(X, bias: bool = True) -> np.ndarray:
    """x~ = (x, 1) with a bias, x~ = x without: the inputs of a linear router."""
    X = validate.matrix(X, "X")
    return np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X


def subset_masks(T: int, k: int) -> np.ndarray:
    """All C(T, k) k-subsets of range(T) as boolean masks (K, T), in lexicographic order."""
    T = validate.integer(T, "T", low=1)
    k = validate.integer(k, "k", low=1, high=T)
    masks = np.zeros((math.comb(T, k), T), dtype=bool)
    for row, subset in enumerate(itertools.combinations(range(T), k)):
        masks[row, list(subset)] = True
    return masks


def masks_to_codes(masks) -> np.ndarray:
    """Bit codes sum_{j in S} 2^j of masks (..., T): one integer per subset."""
    masks = np.asarray(masks, dtype=bool)
    return (masks.astype(np.int64) << np.arange(masks.shape[-1], dtype=np.int64)).sum(axis=-1)


def topk_masks(X, W, k: int, bias: bool = True) -> np.ndarray:
    """Selection S(x) of the router with weights W (T, n) on the points X (m, d), as masks (m, T).

    Ties go to the lower expert index, as in ``moe_lib.top_k``.
    """
    Xt = features(X, bias)
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[1] != Xt.shape[1]:
        raise ValueError(f"W: expected shape (T, {Xt.shape[1]}), got {W.shape}")
    k = validate.integer(k, "k", low=1, high=W.shape[0])
    order = np.argsort(-(Xt @ W.T), axis=1, kind="stable")[:, :k]
    masks = np.zeros((Xt.shape[0], W.shape[0]), dtype=bool)
    np.put_along_axis(masks, order, True, axis=1)
    return masks


def _check_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype != bool or labels.ndim != 2 or labels.shape[0] != n:
        raise ValueError(f"labels: expected a boolean mask of shape ({n}, T), got "
                         f"{labels.dtype} of shape {labels.shape}")
    k = labels.sum(axis=1)
    if k.min() != k.max() or k[0] < 1:
        raise ValueError(f"labels: expected every row to select the same k >= 1, got "
                         f"row sizes {sorted(set(k.tolist()))} for T = {labels.shape[1]}")
    return labels


def realising_weights(X, labels, bias: bool = True) -> np.ndarray | None:
    """A W (T, n) strictly realising ``labels`` on X, or None if none exists (exact LP, HiGHS)."""
    Xt = features(X, bias)
    labels = _check_labels(labels, Xt.shape[0])
    n_pts, n = Xt.shape
    T = labels.shape[1]
    i, j, jp = np.nonzero(labels[:, :, None] & ~labels[:, None, :])
    if i.size == 0:                      # k = T: the single labelling, realised by any W
        return np.zeros((T, n))
    rows = np.arange(i.size)
    A = np.zeros((i.size, T, n))
    A[rows, j] = -Xt[i]                  # -(w_j - w_j') . x~_i <= -1
    A[rows, jp] = Xt[i]
    A = A.reshape(i.size, T * n)
    res = linprog(np.zeros(T * n), A_ub=A, b_ub=-np.ones(i.size), bounds=(None, None),
                  method="highs")
    if res.status == 0:
        return res.x.reshape(T, n)
    if res.status == 2:
        return None
    # Numerical trouble (ill-conditioned points): the bounded max-margin form decides instead,
    # max t s.t. (w_j - w_j') . x~_i >= t, |W| <= 1, t <= 1; strictly realisable iff t* > 0.
    c = np.zeros(T * n + 1)
    c[-1] = -1.0
    A_t = np.hstack([A, np.ones((i.size, 1))])
    res = linprog(c, A_ub=A_t, b_ub=np.zeros(i.size), bounds=[(-1, 1)] * (T * n) + [(None, 1)],
                  method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog returned status {res.status}: {res.message}")
    return res.x[:-1].reshape(T, n) / res.x[-1] if -res.fun > MARGIN_TOL else None


def realisable(X, labels, bias: bool = True) -> bool:
    """True iff some linear router strictly realises the labelling (exact LP)."""
    return realising_weights(X, labels, bias) is not None


def shattering_labels(f0, f1, B) -> np.ndarray:
    """The labelling "f0 on B, f1 off B" for a boolean vector B over the points."""
    B = np.asarray(B, dtype=bool)
    return np.where(B[:, None], f0, f1)


def is_n_shattered(X, f0, f1, bias: bool = True, rng: np.random.Generator | None = None
                   ) -> tuple[bool, int]:
    """Whether (f0, f1) N-shatters X: all 2^n labellings realisable. Returns (shattered, LPs solved).

    The subsets B are tried in a random order when ``rng`` is given, so a failure is found early;
    the answer does not depend on the order.
    """
    Xt = features(X, bias)
    n = Xt.shape[0]
    f0 = _check_labels(f0, n)
    f1 = _check_labels(f1, n)
    if f0.shape != f1.shape or f0.sum() != f1.sum():
        raise ValueError(f"f1: expected the shape and k of f0 {f0.shape}, got {f1.shape}")
    if bool((f0 == f1).all(axis=1).any()):
        raise ValueError("f0, f1: expected f0(x) != f1(x) at every point, got equal labels")
    codes = np.arange(2 ** n)
    if rng is not None:
        codes = rng.permutation(codes)
    bits = (codes[:, None] >> np.arange(n)) & 1
    for lp, B in enumerate(bits, start=1):
        if not realisable(X, shattering_labels(f0, f1, B), bias):
            return False, lp
    return True, len(codes)


def candidate(n: int, T: int, k: int, d: int, bias: bool, rng: np.random.Generator, kind: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n Gaussian points in R^d and a pair (f0, f1) to test, both realisable by linear routers.

    ``kind="shift"``: f0 from a random router, f1 = f0 with expert indices shifted cyclically by an
    r coprime to T (a full cycle fixes no proper subset, so f1 != f0 everywhere when k < T).
    ``kind="two"``: f0, f1 from two independent random routers, on points where they differ.
    """
    validate.choice(kind, "kind", ("shift", "two"))
    n_feat = d + int(bias)
    if kind == "shift":
        X = rng.standard_normal((n, d))
        f0 = topk_masks(X, rng.standard_normal((T, n_feat)), k, bias)
        shifts = [r for r in range(1, T) if math.gcd(r, T) == 1]
        return X, f0, np.roll(f0, int(rng.choice(shifts)), axis=1)
    W0, W1 = rng.standard_normal((2, T, n_feat))
    X, f0, f1 = np.empty((0, d)), np.empty((0, T), bool), np.empty((0, T), bool)
    while X.shape[0] < n:
        Y = rng.standard_normal((8 * n, d))
        g0, g1 = topk_masks(Y, W0, k, bias), topk_masks(Y, W1, k, bias)
        keep = ~(g0 == g1).all(axis=1)
        X, f0, f1 = np.vstack([X, Y[keep]]), np.vstack([f0, g0[keep]]), np.vstack([f1, g1[keep]])
    return X[:n], f0[:n], f1[:n]


def search_shattered(T: int, k: int, d: int, bias: bool, n_max: int, tries: int,
                     rng: np.random.Generator) -> dict:
    """Largest n <= n_max for which an N-shattered set of n Gaussian points in R^d was found.

    For n = 1, 2, ... draw up to ``tries`` candidates (alternating the two kinds of ``candidate``);
    stop at the first n with no success. Returns the largest size found (a lower estimate of
    d_N), its witness and LP counts.
    """
    T = validate.integer(T, "T", low=2)
    k = validate.integer(k, "k", low=1, high=T - 1)
    d = validate.integer(d, "d", low=1)
    n_max = validate.integer(n_max, "n_max", low=1)
    tries = validate.integer(tries, "tries", low=1)
    found, witness, lps, per_n = 0, None, 0, {}
    for n in range(1, n_max + 1):
        ok = 0
        for t in range(tries):
            X, f0, f1 = candidate(n, T, k, d, bias, rng, ("shift", "two")[t % 2])
            shattered, used = is_n_shattered(X, f0, f1, bias, rng)
            lps += used
            if shattered:
                ok += 1
                witness = (X, f0, f1)
                break
        per_n[n] = ok
        if not ok:
            break
        found = n
    return {"found": found, "witness": witness, "lps": lps, "successes": per_n}


def dn_bound_dT(d: int, T: int, bias: bool = True) -> int:
    """The linear-multiclass bound d_N <= dim Psi: (d+1) T with a bias, d T without (SSBD Thm 29.7)."""
    d = validate.integer(d, "d", low=1)
    T = validate.integer(T, "T", low=1)
    return (d + int(bias)) * T


def dn_bound_sharp(d: int, T: int, bias: bool = True) -> int:
    """Our sharper bound: the differences x~ (1_S - 1_S') span at most n (T - 1) dimensions."""
    d = validate.integer(d, "d", low=1)
    T = validate.integer(T, "T", low=1)
    return (d + int(bias)) * (T - 1)


def log_natarajan_lemma_bound(m, K: int, d_N: int):
    """ln of the Natarajan lemma bound |G_C| <= m^{d_N} K^{2 d_N} (SSBD Lemma 29.4), vectorised in m."""
    m = np.asarray(m, dtype=float)
    if (m < 1).any():
        raise ValueError(f"m: expected sample sizes >= 1, got min {m.min()}")
    K = validate.integer(K, "K", low=1)
    d_N = validate.integer(d_N, "d_N", low=0)
    return d_N * np.log(m) + 2 * d_N * math.log(K)


def gate_weights(idx, weight, T: int) -> np.ndarray:
    """Dense router output a(x) (N, T) from a routing's indices (N, k) and weights (N, k)."""
    idx = np.asarray(idx)
    weight = np.asarray(weight, dtype=float)
    if idx.ndim != 2 or weight.shape != idx.shape:
        raise ValueError(f"idx, weight: expected two (N, k) arrays, got {idx.shape} and {weight.shape}")
    T = validate.integer(T, "T", low=1)
    if idx.size and (idx.min() < 0 or idx.max() >= T):
        raise ValueError(f"idx: expected expert indices in [0, {T}), got [{idx.min()}, {idx.max()}]")
    a = np.zeros((idx.shape[0], T))
    np.put_along_axis(a, idx, weight, axis=1)
    return a


def reachable_subsets(W, k: int) -> np.ndarray:
    """The k-subsets a fixed affine router W (T, d+1) (last column: bias) selects strictly somewhere
    on R^d: S is reachable iff max t s.t. (w_j - w_j') . (x, 1) >= t (j in S, j' not in S), t <= 1,
    has t* > 0 (an exact LP in x, HiGHS). Returns the masks (n_reachable, T)."""
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[1] < 2 or not np.isfinite(W).all():
        raise ValueError(f"W: expected a finite (T, d+1) array, got shape {W.shape}")
    T, n = W.shape
    masks = subset_masks(T, k)
    if k == T:
        return masks
    keep = []
    for S in masks:
        j, jp = np.nonzero(S[:, None] & ~S[None, :])
        D = W[j] - W[jp]                                     # rows: (w_j - w_j'), bias last
        A = np.hstack([-D[:, :-1], np.ones((len(j), 1))])   # -(dw . x) + t <= db
        res = linprog(np.r_[np.zeros(n - 1), -1.0], A_ub=A, b_ub=D[:, -1],
                      bounds=[(None, None)] * (n - 1) + [(None, 1.0)], method="highs")
        if res.status != 0:
            raise RuntimeError(f"linprog returned status {res.status}: {res.message}")
        keep.append(-res.fun > MARGIN_TOL)
    return masks[np.array(keep)]
