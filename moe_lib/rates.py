"""Fitted rates: log-log slopes of error against a size parameter."""

from __future__ import annotations

import numpy as np


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
