"""One parameter, infinitely many shattered points: x -> 1[sin(theta x) > 0] (P1-R4).

Points x_i = b^-i (i = 1..m, b an even base; b = 2 by default). For labels y in {0,1}^m take the integer
``k(y) = 1 + sum_i (1 - y_i) b^i`` and theta = pi k(y). Then, for point j,

    theta x_j / pi = b^-j + sum_{i<j} (1-y_i) b^(i-j)  +  (1 - y_j)  +  sum_{i>j} (1-y_i) b^(i-j),

the last sum is an even integer (b is even), and the first two terms lie in [b^-j, 1 - b^-j] for b = 2
(in (0, 1) for any even b), so sin(theta x_j) > 0 exactly when y_j = 1, with margin at least
sin(pi b^-j).

High precision: ``shatter_mp`` evaluates the signs with mpmath at a chosen number of digits;
``shatter_float64`` does the same computation in float64 (theta = float(pi) * k rounded, then
numpy's sin), which fails once the relative rounding of theta (about 2^-53) exceeds the relative
margin of the last point (about 2^-(m+1)).
"""

from __future__ import annotations

import mpmath
import numpy as np

from .. import validate


def _base(base) -> int:
    base = validate.integer(base, "base", low=2)
    if base % 2:
        raise ValueError(f"base: expected an even integer >= 2 (b^(i-j) must be even), got {base}")
    return base


def theta_integer(y, base: int = 2) -> int:
    """k(y) = 1 + sum_i (1 - y_i) b^i for labels y_1..y_m in {0,1} (exact Python integer)."""
    base = _base(base)
    y = [int(v) for v in np.asarray(y).ravel()]
    if not set(y) <= {0, 1}:
        raise ValueError(f"y: expected labels in {{0, 1}}, got {sorted(set(y))}")
    return 1 + sum((1 - v) * base ** i for i, v in enumerate(y, start=1))


def all_labellings(m: int) -> np.ndarray:
    """Every labelling of m points, shape (2^m, m), row r = binary digits of r (point 1 = bit 0)."""
    m = validate.integer(m, "m", low=1, high=20)
    r = np.arange(1 << m)
    return ((r[:, None] >> np.arange(m)) & 1).astype(np.int8)


def shatter_mp(labels: np.ndarray, digits: int = 80, base: int = 2) -> np.ndarray:
    """Labels produced by 1[sin(theta 2^-j) > 0], theta = pi k(y), in mpmath at ``digits`` digits.

    No argument reduction is done by hand: theta is rounded to ``digits`` digits like any parameter,
    so the computation resolves the margin only while ``digits`` exceeds about
    (2m + 1) log10(2) plus a few guard digits (see ``digits_needed``). Output has the shape of labels.
    """
    labels = np.atleast_2d(np.asarray(labels))
    digits = validate.integer(digits, "digits", low=5)
    base = _base(base)
    out = np.empty(labels.shape, dtype=np.int8)
    with mpmath.workdps(digits):
        xs = [mpmath.mpf(base) ** -j for j in range(1, labels.shape[1] + 1)]
        for r in range(labels.shape[0]):
            theta = mpmath.pi * theta_integer(labels[r], base)
            for j, x in enumerate(xs):
                out[r, j] = 1 if mpmath.sin(theta * x) > 0 else 0
    return out


def digits_needed(m: int, guard: int = 3) -> int:
    """Decimal digits that resolve the margin for m points: theta ~ pi 2^(m+1) must be known to an
    absolute error below the margin pi 2^-m, i.e. relative error 2^-(2m+1); plus ``guard`` digits."""
    m = validate.integer(m, "m", low=1)
    guard = validate.integer(guard, "guard", low=0)
    return int(np.ceil((2 * m + 1) * np.log10(2.0))) + guard


def shatter_float64(labels: np.ndarray, base: int = 2) -> np.ndarray:
    """The same signs in float64: theta = float(pi) * float(k), x_j = float(b^-j), sin by numpy."""
    labels = np.atleast_2d(np.asarray(labels))
    base = _base(base)
    m = labels.shape[1]
    theta = np.array([np.pi * float(theta_integer(row, base)) for row in labels])
    x = float(base) ** -np.arange(1, m + 1, dtype=float)
    return (np.sin(theta[:, None] * x[None, :]) > 0).astype(np.int8)


def first_float64_failure(m_max: int, n_random: int, rng: np.random.Generator,
                          exhaustive_up_to: int = 12, base: int = 2) -> tuple[int | None, dict[int, int]]:
    """Smallest m <= m_max at which float64 misclassifies some tested labelling, and the error counts.

    For m <= ``exhaustive_up_to`` every labelling is tested, above it ``n_random`` random ones plus the
    all-ones labelling (k = 1 + 0) and all-zeros labelling (largest k). Returns (m or None, {m: errors}).
    """
    m_max = validate.integer(m_max, "m_max", low=1, high=2000)
    n_random = validate.integer(n_random, "n_random", low=1)
    errors: dict[int, int] = {}
    first = None
    for m in range(1, m_max + 1):
        if m <= exhaustive_up_to:
            lab = all_labellings(m)
        else:
            lab = np.vstack([rng.integers(0, 2, (n_random, m)), np.ones((1, m)), np.zeros((1, m))])
            lab = lab.astype(np.int8)
        errors[m] = int((shatter_float64(lab, base) != lab).any(axis=1).sum())
        if errors[m] and first is None:
            first = m
    return first, errors


def margin(m: int, base: int = 2) -> float:
    """A lower bound on |sin(theta x_j)| over labellings and points j <= m: sin(pi b^-m)."""
    m = validate.integer(m, "m", low=1)
    return float(np.sin(np.pi * float(_base(base)) ** -m))
