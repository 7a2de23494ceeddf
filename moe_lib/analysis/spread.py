"""Seed-to-seed spread: bootstrap intervals of medians over seeds, the thresholds of trained claims.

A trained experiment gives one number per seed. The claims of a chapter compare medians over
seeds, and how far two medians may differ by chance is read off the seeds themselves:

- ``median_interval(samples)``: the median over the last axis and its percentile-bootstrap
  interval (resampling the seeds with replacement);
- ``ratio_interval(a, b)``: median(a) / median(b) and its bootstrap interval (a and b resampled
  independently): a ratio is "above 1 beyond the noise" when the interval's lower end is > 1;
- ``null_spread_bound(groups)``: the ``level``-quantile of max_g median_g / min_g median_g when
  every group has the *same* distribution up to the seed noise, estimated by resampling the
  pooled log-residuals (log x - log median of its group): the largest max/min ratio of medians
  that seed noise alone produces at that level.

Every function takes a ``seed`` and is deterministic given it. With S seeds the median of a
resample takes only the S observed values, so with S = 3 a 95% interval is the range of the seeds.
"""

from __future__ import annotations

import numpy as np

from .. import validate


def _samples(x, name: str, ndim: int | None = None, positive: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 1 or (ndim is not None and x.ndim != ndim):
        raise ValueError(f"{name}: expected an array of {ndim or '>= 1'} dimension(s) with at "
                         f"least one seed on the last axis, got shape {x.shape}")
    if not np.isfinite(x).all() or (positive and not (x > 0).all()):
        raise ValueError(f"{name}: expected finite{' positive' if positive else ''} values, "
                         f"got {x.ravel()[:8]}")
    return x


def _level(level: float) -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    return level


def _boot_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, ...) medians of resamples of the last axis of x (..., S)."""
    S = x.shape[-1]
    idx = rng.integers(0, S, size=(n_boot, S))
    return np.median(x[..., idx], axis=-1).transpose((x.ndim - 1,) + tuple(range(x.ndim - 1)))


def median_interval(samples, level: float = 0.95, n_boot: int = 4000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, lower, upper) over the last axis of ``samples`` (..., S): the percentile
    bootstrap interval at ``level`` of the median over seeds. Shapes are samples.shape[:-1]."""
    x = _samples(samples, "samples")
    level = _level(level)
    n_boot = validate.integer(n_boot, "n_boot", low=10)
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    boot = _boot_medians(x, n_boot, rng)
    a = (1 - level) / 2
    return np.median(x, axis=-1), np.quantile(boot, a, axis=0), np.quantile(boot, 1 - a, axis=0)


def ratio_interval(a, b, level: float = 0.95, n_boot: int = 4000,
                   seed: int = 0) -> tuple[float, float, float]:
    """(median(a) / median(b), lower, upper): percentile bootstrap interval at ``level`` of the
    ratio of medians, the seeds of a and of b (1-D, positive) resampled independently."""
    a = _samples(a, "a", ndim=1, positive=True)
    b = _samples(b, "b", ndim=1, positive=True)
    level = _level(level)
    n_boot = validate.integer(n_boot, "n_boot", low=10)
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    r = _boot_medians(a, n_boot, rng) / _boot_medians(b, n_boot, rng)
    q = (1 - level) / 2
    return (float(np.median(a) / np.median(b)), float(np.quantile(r, q)),
            float(np.quantile(r, 1 - q)))


def null_spread_bound(groups, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> float:
    """The ``level``-quantile of max_g median / min_g median over the G groups of ``groups``
    (G, S) (positive) under the null that the groups differ only by seed noise.

    Each value's log-residual log x - log median(its group) is pooled (G S values); a bootstrap
    draw gives each group S residuals drawn with replacement from the pool and takes the spread
    max_g - min_g of their medians. The residuals are centred per group, so a real difference
    between groups does not widen the null. Returns exp of the quantile (>= 1)."""
    x = _samples(groups, "groups", ndim=2, positive=True)
    if x.shape[0] < 2:
        raise ValueError(f"groups: expected at least 2 groups (rows), got shape {x.shape}")
    level = _level(level)
    n_boot = validate.integer(n_boot, "n_boot", low=10)
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    logs = np.log(x)
    pool = (logs - np.median(logs, axis=1, keepdims=True)).ravel()
    G, S = x.shape
    draws = np.median(pool[rng.integers(0, pool.size, size=(n_boot, G, S))], axis=-1)
    spread = draws.max(axis=1) - draws.min(axis=1)
    return float(np.exp(np.quantile(spread, level)))
