"""Partitions of unity on a cover by balls: the bump psi and rho_i = b_i / sum_j b_j.

- ``log_bump``, ``bump``: psi(t) = exp(-1 / (1 - t^2)) for |t| < 1, else 0 (and its log);
- ``partition_of_unity(x, centres, radius)`` -> ``PartitionOfUnity`` (rho, bumps, total);
- ``radii``: one radius per centre from a shared radius or a list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import validate
from ..validate import DTYPE
from .manifolds import EXACT


def log_bump(t) -> torch.Tensor:
    """log psi(t) = -1 / (1 - t^2) for |t| < 1, -inf otherwise (elementwise)."""
    t = validate.tensor(t, "t").to(DTYPE)
    inside = t.abs() < 1.0
    safe = torch.where(inside, t, torch.zeros_like(t))
    return torch.where(inside, -1.0 / (1.0 - safe ** 2), torch.full_like(t, -math.inf))


def bump(t) -> torch.Tensor:
    """psi(t) = exp(-1 / (1 - t^2)) for |t| < 1, else 0: C^infinity, support [-1, 1]."""
    return torch.exp(log_bump(t))


@dataclass
class PartitionOfUnity:
    """rho (N, E), bumps b (N, E), total sum_j b_j (N,), and the mask of uncovered points (N,).

    An uncovered point (every b_j = 0) gets rho = 0 in every column instead of 0/0.
    """

    rho: torch.Tensor
    bumps: torch.Tensor
    total: torch.Tensor
    uncovered: torch.Tensor

    @property
    def n_uncovered(self) -> int:
        return int(self.uncovered.sum())


def partition_of_unity(x, centres, radius) -> PartitionOfUnity:
    """rho_i(x) = b_i(x) / sum_j b_j(x), b_i(x) = psi(||x - c_i|| / r_i), vectorised.

    ``radius`` is one number or one per cap (E,). The quotient is taken in log space
    (a softmax of log b_i), so it stays exact where every b_j underflows but some ||x - c_j|| < r_j;
    ``bumps`` and ``total`` are the plain values. rho_i is exactly 0 where ||x - c_i|| >= r_i.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    centres = validate.tensor(centres, "centres", ndim=2, last=x.shape[1]).to(DTYPE)
    r = radii(radius, centres.shape[0])
    logb = log_bump(torch.cdist(x, centres, compute_mode=EXACT) / r[None, :])
    covered = torch.isfinite(logb).any(dim=1)
    safe = torch.where(covered[:, None], logb, torch.zeros_like(logb))
    rho = torch.where(covered[:, None], torch.softmax(safe, dim=1), torch.zeros_like(logb))
    bumps = torch.exp(logb)
    return PartitionOfUnity(rho, bumps, bumps.sum(dim=1), ~covered)


def radii(radius, E: int) -> torch.Tensor:
    if isinstance(radius, (torch.Tensor, np.ndarray)):
        r = validate.tensor(radius, "radius", ndim=1).to(DTYPE)
        if r.shape[0] != E:
            raise ValueError(f"radius: expected one radius or {E} (one per centre), got {r.shape[0]}")
        if bool((r <= 0).any()):
            raise ValueError(f"radius: expected radii > 0, got min {float(r.min())}")
        return r
    return torch.full((E,), validate.positive(radius, "radius"), dtype=DTYPE)
