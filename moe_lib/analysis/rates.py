"""Fitted rates: log-log slopes of error against a size parameter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .. import validate
from ..validate import DTYPE


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (needs >= 2 positive points)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"expected two 1-D sequences of equal length >= 2, got shapes {x.shape}, {y.shape}")
    if (x <= 0).any() or (y <= 0).any() or not np.isfinite(np.r_[x, y]).all():
        raise ValueError("expected positive finite values for a log-log fit, "
                         f"got x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}]")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def slope_interval(x, y, level: float = 0.95) -> dict:
    """Least-squares slope of log y on log x with its standard error and a two-sided ``level``
    confidence interval (Student t with n - 2 degrees of freedom; needs >= 3 points).

    Returns {"slope", "se", "low", "high", "t", "n"}: high = slope + t * se bounds the slope from
    above at one-sided level (1 + level) / 2. The interval treats the residuals about the line
    as independent noise, which is how the scatter of a width sweep around its power law is read.
    """
    from scipy import stats

    slope = loglog_slope(x, y)
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = lx.size
    if n < 3:
        raise ValueError(f"expected >= 3 points for a slope interval, got {n}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    intercept = ly.mean() - slope * lx.mean()
    resid = ly - (intercept + slope * lx)
    se = float(np.sqrt(resid @ resid / (n - 2) / ((lx - lx.mean()) ** 2).sum()))
    t = float(stats.t.ppf((1 + float(level)) / 2, n - 2))
    return {"slope": slope, "se": se, "low": slope - t * se, "high": slope + t * se, "t": t, "n": n}


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
