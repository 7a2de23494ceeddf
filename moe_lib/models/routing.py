"""Routers: each maps inputs (N, d) to a ``Routing`` of expert indices (N, k) and weights (N, k).

- ``TopKGate``: linear scores W x (+ b), top-k, softmax over the selected scores only (Wang & E,
  Sec. 3; Shazeer et al. 2017). ``bias=False`` is the bias-free gate W_R x of Wang & E.
- ``NearestPrototypeRouter``: hard routing to the nearest prototype (Voronoi cells).
- ``GridRouter``: hard routing of [0,1]^n to the cells of a uniform N^n grid.

Ties are broken towards the lower expert index (top-k, nearest prototype) and towards the upper
cell (grid), so every router is a deterministic function of its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import validate
from ..validate import DTYPE
from .experts import MLP


@dataclass
class Routing:
    """Expert indices (N, k), long, and their mixing weights (N, k); each row's weights sum to 1."""

    idx: torch.Tensor
    weight: torch.Tensor

    @property
    def k(self) -> int:
        return self.idx.shape[1]

    def checked(self, n_rows: int, n_experts: int, name: str = "routing") -> Routing:
        """This routing after checking it fits ``n_rows`` inputs and ``n_experts`` experts: indices
        an integer tensor (N, k) in [0, E), weights a finite float tensor of the same shape."""
        idx = validate.tensor(self.idx, f"{name}.idx", ndim=2)
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise ValueError(f"{name}.idx: expected an integer tensor, got dtype {idx.dtype}")
        if idx.shape[0] != n_rows:
            raise ValueError(f"{name}.idx: expected one row per input ({n_rows}), got {idx.shape[0]}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_experts):
            raise ValueError(f"{name}.idx: expected expert indices in [0, {n_experts - 1}], got values "
                             f"in [{int(idx.min())}, {int(idx.max())}]")
        weight = validate.tensor(self.weight, f"{name}.weight", ndim=2)
        if tuple(weight.shape) != tuple(idx.shape):
            raise ValueError(f"{name}.weight: expected shape {tuple(idx.shape)} (as idx), "
                             f"got {tuple(weight.shape)}")
        if not weight.is_floating_point():
            raise ValueError(f"{name}.weight: expected a float tensor, got dtype {weight.dtype}")
        return Routing(idx.long(), weight)


def top_k(scores: torch.Tensor, k: int) -> Routing:
    """Top-k of each row of ``scores`` (N, E), softmax over the k selected scores.

    Ties go to the lower index (a stable sort), so routing never depends on the backend.
    """
    scores = validate.tensor(scores, "scores", ndim=2)
    n_experts = scores.shape[1]
    k = validate.integer(k, "k", low=1, high=n_experts)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    chosen = torch.gather(scores, 1, order)
    return Routing(order, torch.softmax(chosen, dim=1))


class TopKGate(nn.Module):
    """Linear top-k softmax gate g(x) = W x (+ b) over ``n_experts`` experts."""

    def __init__(self, d_in: int, n_experts: int, k: int = 1, bias: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.d_in = validate.integer(d_in, "d_in", low=1)
        self.n_experts = validate.integer(n_experts, "n_experts", low=1)
        self.k = validate.integer(k, "k", low=1, high=n_experts)
        self.linear = nn.Linear(d_in, n_experts, bias=bias, dtype=dtype)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.d_in)
        return self.linear(x)

    def forward(self, x: torch.Tensor) -> Routing:
        return top_k(self.scores(x), self.k)


class NearestPrototypeRouter(nn.Module):
    """Send x to the prototype nearest in the l2 or l-infinity norm (first index on ties)."""

    def __init__(self, prototypes: torch.Tensor, norm: float = 2):
        super().__init__()
        prototypes = validate.tensor(prototypes, "prototypes", ndim=2)
        self.norm = validate.choice(norm, "norm", (2, float("inf")))
        if prototypes.shape[0] < 1:
            raise ValueError("prototypes: expected at least one prototype, got none")
        self.register_buffer("prototypes", prototypes)
        self.n_experts = prototypes.shape[0]
        self.k = 1

    def forward(self, x: torch.Tensor) -> Routing:
        x = validate.tensor(x, "x", ndim=2, last=self.prototypes.shape[1])
        dist = torch.cdist(x.to(self.prototypes.dtype), self.prototypes, p=self.norm)
        idx = torch.argmin(dist, dim=1, keepdim=True)
        return Routing(idx, torch.ones_like(idx, dtype=self.prototypes.dtype))


class GridRouter(nn.Module):
    """Uniform grid of N^n cubes of side 1/N on [0,1]^n; cell (k_1..k_n) has row-major index.

    k_i = min(floor(x_i N), N - 1): a point on a face goes to the upper cell, x_i = 1 to the last.
    """

    def __init__(self, n: int, cells_per_axis: int):
        super().__init__()
        self.n = validate.integer(n, "n", low=1)
        self.N = validate.integer(cells_per_axis, "cells_per_axis", low=1)
        self.n_experts = self.N ** self.n
        self.k = 1

    def cell_coords(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.n)
        if bool(((x < 0) | (x > 1)).any()):
            raise ValueError(f"x: expected points in [0,1]^{self.n}, got values in "
                             f"[{float(x.min())}, {float(x.max())}]")
        xd = x.double()
        k = torch.floor(xd * self.N).long()
        # floor(x N) can be one off when x = j/N is not representable: compare with j/N directly.
        k = k + (xd >= (k + 1).double() / self.N).long() - (xd < k.double() / self.N).long()
        return k.clamp(0, self.N - 1)

    def forward(self, x: torch.Tensor) -> Routing:
        k = self.cell_coords(x)
        weights = self.N ** torch.arange(self.n - 1, -1, -1)
        idx = (k * weights).sum(dim=1, keepdim=True)
        return Routing(idx, torch.ones(idx.shape, dtype=torch.float64))


class MLPRouter(nn.Module):
    """Nonlinear router: scores = net(x) (E of them), then top-k with the softmax over the selected
    scores (the same rule as the linear gate, ties to the lower index)."""

    def __init__(self, net: MLP, k: int = 1):
        super().__init__()
        if not isinstance(net, MLP):
            raise ValueError(f"net: expected a moe_lib.MLP computing the scores, "
                             f"got {type(net).__name__}")
        self.net = net
        self.n_experts = net.d_out
        self.k = validate.integer(k, "k", low=1, high=self.n_experts)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.net.d_in)
        return self.net(x)

    def forward(self, x: torch.Tensor) -> Routing:
        return top_k(self.scores(x), self.k)


def fixed_gate(W, k: int = 1) -> TopKGate:
    """A bias-free float64 ``TopKGate`` whose score matrix is the given W (E, d_in): scores W x.

    The one builder of gates with written weights (Voronoi, argmax-of-coordinates, constant and
    role-tracked gates are all this with a particular W)."""
    W = validate.tensor(W, "W", ndim=2).to(DTYPE)
    gate = TopKGate(W.shape[1], W.shape[0], k=k, bias=False, dtype=DTYPE)
    with torch.no_grad():
        gate.linear.weight.copy_(W)
    return gate


def voronoi_gate(centres) -> TopKGate:
    """Bias-free linear top-1 gate on the augmented input (x, 1) with scores
    <c_i, x> - ||c_i||^2 / 2, so argmax_i = argmin_i ||x - c_i|| (the Voronoi cell)."""
    C = validate.tensor(centres, "centres", ndim=2).to(DTYPE)
    return fixed_gate(torch.cat([C, -(C ** 2).sum(dim=1, keepdim=True) / 2], dim=1))


def with_constant(x) -> torch.Tensor:
    """(x, 1): the input of ``voronoi_gate``."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=DTYPE)], dim=1)
