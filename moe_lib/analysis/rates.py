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
