"""Input checks shared by the library: each raises ValueError saying what was expected and what came."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: The one floating-point type of the closed-form constructions and fits.
DTYPE = torch.float64


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def tensor(x: Any, name: str, *, ndim: int | None = None, last: int | None = None,
           finite: bool = True) -> torch.Tensor:
    """Return ``x`` as a tensor after checking its rank, last dimension and finiteness."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch tensor or numpy array, got {_describe(x)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got {_describe(x)}")
    if last is not None and (x.ndim == 0 or x.shape[-1] != last):
        raise ValueError(f"{name}: expected last dimension {last}, got {_describe(x)}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries in {_describe(x)}")
    return x


def integer(v: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``v`` is an integer in [low, high] and return it as int."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {_describe(v)}")
    v = int(v)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def positive(v: Any, name: str) -> float:
    """Check that ``v`` is a finite number > 0."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a positive number, got {_describe(v)}")
    if not math.isfinite(float(v)) or float(v) <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {v}")
    return float(v)


def choice(v: Any, name: str, options: tuple) -> Any:
    if v not in options:
        raise ValueError(f"{name}: expected one of {options}, got {v!r}")
    return v


def finite_parameters(module: torch.nn.Module, name: str) -> None:
    """Raise if any parameter of ``module`` is NaN or infinite."""
    for pname, p in module.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"{name}: expected finite parameters, got NaN/inf in '{pname}'")


def matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a non-empty, finite float64 numpy array of shape (m, d)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array (m, d), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got NaN/inf")
    return a
