"""Routing trees for hard routing of [0,1]^n to the cells of a uniform grid (Kratsios et al., P1).

Every router here maps inputs (B, n) to a ``moe_lib.Routing`` with one expert per input (k = 1,
weight 1) and declares ``n_experts``, like the routers of ``moe_lib.GridRouter``. Cells are numbered
row-major, cell (k_1..k_n) -> sum_i k_i N^(n-1-i), exactly as ``GridRouter`` numbers them.

- ``DyadicTreeRouter(n, depth)``: the 2^n-ary tree whose nodes are dyadic cubes; a node keeps the
  midpoint of its cube and sends x to the child cube with the nearest centre, which is the child on
  the side x_i >= midpoint_i of every axis (n comparisons per level, ``depth`` levels, N = 2^depth).
- ``KDTreeRouter(n, cells_per_axis)``: a balanced binary k-d tree over an N^n grid (any N), one
  threshold j/N per node; axis ranges are halved in turn, so a path has at most n*ceil(log2 N) nodes.

Tie rule (all routers of this module and ``GridRouter``): a point exactly on a threshold goes to
the upper side, so a point on a face goes to the upper cell and x_i = 1 to the last cell.
Thresholds j/N are compared in float64 exactly as ``GridRouter`` compares them, so the trees and
the flat router return the same cell for every input, faces and corners included.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import validate
from .routing import Routing


def unit_cube_points(x, n: int, name: str = "x") -> torch.Tensor:
    """``x`` as a float64 tensor (B, n) after checking that every point lies in [0,1]^n."""
    x = validate.tensor(x, name, ndim=2, last=n)
    if bool(((x < 0) | (x > 1)).any()):
        raise ValueError(f"{name}: expected points in [0,1]^{n}, got values in "
                         f"[{float(x.min())}, {float(x.max())}]")
    return x.double()


def row_major(coords: torch.Tensor, N: int) -> torch.Tensor:
    """Cell coordinates (B, n) -> row-major cell index (B,)."""
    n = coords.shape[1]
    weights = torch.tensor([N ** (n - 1 - i) for i in range(n)], dtype=torch.long)
    return (coords.long() * weights).sum(dim=1)


def cell_centres(n: int, N: int) -> torch.Tensor:
    """Centres (N^n, n) of the grid cells, row-major (the prototypes of nearest-centre routing)."""
    n = validate.integer(n, "n", low=1)
    N = validate.integer(N, "cells_per_axis", low=1)
    g = (torch.arange(N, dtype=torch.float64) + 0.5) / N
    return torch.stack(torch.meshgrid(*[g] * n, indexing="ij"), -1).reshape(-1, n)


def brute_force_cells(x, centres: torch.Tensor, norm: float = 2, chunk: int = 4096):
    """Nearest centre by an argmin over all K centres, computed directly (no |a|^2+|b|^2-2ab trick).

    Returns (index (B,), min distance (B,)); ties go to the lowest index (torch.argmin).
    """
    norm = validate.choice(norm, "norm", (2, math.inf))
    centres = validate.tensor(centres, "centres", ndim=2)
    x = validate.tensor(x, "x", ndim=2, last=centres.shape[1]).double()
    idx, dist = [], []
    for s in range(0, x.shape[0], chunk):
        d = torch.cdist(x[s:s + chunk], centres, p=norm,
                        compute_mode="donot_use_mm_for_euclid_dist")
        v, i = torch.min(d, dim=1)
        idx.append(i)
        dist.append(v)
    return torch.cat(idx), torch.cat(dist)


class DyadicTreeRouter(nn.Module):
    """2^n-ary routing tree of dyadic cubes, ``depth`` levels, N = 2^depth cells per axis.

    Node storage is a complete 2^n-ary heap: node t has children 2^n t + 1 + c, where child
    c = sum_i b_i 2^(n-1-i) and b_i = [x_i >= midpoint_i]. Each internal node stores the n
    coordinates of its cube's midpoint; a path reads ``depth`` nodes, i.e. n * depth numbers.
    """

    def __init__(self, n: int, depth: int):
        super().__init__()
        self.n = validate.integer(n, "n", low=1)
        self.depth = validate.integer(depth, "depth", low=0, high=30)
        self.N = 2 ** self.depth
        self.n_experts = self.N ** self.n
        if self.n_experts > 2 ** 24:
            raise ValueError(f"n, depth: expected at most 2^24 cells, got 2^{self.n * self.depth}")
        self.k = 1
        self.arity = 2 ** self.n
        n_internal = (self.arity ** self.depth - 1) // (self.arity - 1)
        mids = torch.zeros(n_internal, self.n, dtype=torch.float64)
        lows = [torch.zeros(1, self.n, dtype=torch.float64)]      # lower corners, level by level
        bits = torch.tensor([[(c >> (self.n - 1 - i)) & 1 for i in range(self.n)]
                             for c in range(self.arity)], dtype=torch.float64)
        start = 0
        for level in range(self.depth):
            half = 0.5 ** (level + 1)
            lo = lows[-1]
            mids[start:start + lo.shape[0]] = lo + half
            lows.append((lo[:, None, :] + half * bits[None]).reshape(-1, self.n))
            start += lo.shape[0]
        self.register_buffer("midpoints", mids)
        # leaf (in heap order at the last level) -> row-major cell index
        leaf_coords = torch.round(lows[-1] * self.N).long()
        self.register_buffer("leaf_cell", row_major(leaf_coords, self.N))
        self._bit_weights = torch.tensor([2 ** (self.n - 1 - i) for i in range(self.n)])

    @property
    def path_numbers(self) -> int:
        """Router numbers read on one root-to-leaf path: ``depth`` midpoints of n coordinates."""
        return self.n * self.depth

    @property
    def stored_numbers(self) -> int:
        return int(self.midpoints.numel())

    def route_with_path(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell index (B,) and the visited internal nodes (B, depth), root first."""
        x = unit_cube_points(x, self.n)
        node = torch.zeros(x.shape[0], dtype=torch.long)
        path = torch.zeros(x.shape[0], self.depth, dtype=torch.long)
        for level in range(self.depth):
            path[:, level] = node
            child = ((x >= self.midpoints[node]).long() * self._bit_weights).sum(dim=1)
            node = self.arity * node + 1 + child
        first_leaf = (self.arity ** self.depth - 1) // (self.arity - 1)
        return self.leaf_cell[node - first_leaf], path

    def forward(self, x) -> Routing:
        idx, _ = self.route_with_path(x)
        return Routing(idx[:, None], torch.ones(idx.shape[0], 1, dtype=torch.float64))


class KDTreeRouter(nn.Module):
    """Balanced binary k-d tree over the N^n grid; node thresholds j/N; any N >= 1.

    Axes are split in turn (0, 1, ..., n-1, 0, ...); an axis whose index range is a single cell is
    skipped. A node splits the index range [lo, hi) of its axis at j = (lo + hi + 1) // 2 and sends
    x to the upper half when x_axis >= j/N. Leaves are single cells. One number (the threshold) is
    read per node on the path; a path has at most n * ceil(log2 N) nodes.
    """

    def __init__(self, n: int, cells_per_axis: int):
        super().__init__()
        self.n = validate.integer(n, "n", low=1)
        self.N = validate.integer(cells_per_axis, "cells_per_axis", low=1)
        self.n_experts = self.N ** self.n
        if self.n_experts > 2 ** 24:
            raise ValueError(f"n, cells_per_axis: expected at most 2^24 cells, got {self.n_experts}")
        self.k = 1
        axis, thr, up, down, leaf, links = self._build()
        self.register_buffer("axis", torch.tensor(axis, dtype=torch.long))
        self.register_buffer("threshold", torch.tensor(thr, dtype=torch.float64))
        self.register_buffer("child_lo", torch.tensor(down, dtype=torch.long))
        self.register_buffer("child_hi", torch.tensor(up, dtype=torch.long))
        self.register_buffer("leaf_cell", torch.tensor(leaf, dtype=torch.long))
        self.max_depth = len(links)     # levels below the root that hold nodes

    def _build(self):
        # level by level (vectorised over the boxes of a level); node ids >= 0 are internal,
        # a leaf is encoded as -1 - leaf_id
        n, N = self.n, self.N
        axis, thr, leaf = [], [], []
        lo = np.zeros((1, n), dtype=np.int64)
        hi = np.full((1, n), N, dtype=np.int64)
        start = np.zeros(1, dtype=np.int64)
        parent_slots = None                # (internal ids of the previous level, side) per box
        links = []
        while lo.shape[0]:
            M = lo.shape[0]
            cand = (start[:, None] + np.arange(n)[None]) % n
            size = np.take_along_axis(hi - lo, cand, axis=1)
            can = size > 1
            internal = can.any(axis=1)
            a = cand[np.arange(M), np.argmax(can, axis=1)]
            code = np.empty(M, dtype=np.int64)
            n_int = int(internal.sum())
            code[internal] = len(axis) + np.arange(n_int)
            lo_l = lo[~internal]
            code[~internal] = -1 - (len(leaf) + np.arange(M - n_int))
            leaf += list((lo_l * (N ** np.arange(n - 1, -1, -1))[None]).sum(axis=1))
            if parent_slots is not None:
                ids, side = parent_slots
                links.append((ids, side, code))
            ai = a[internal]
            l_i, h_i = lo[internal], hi[internal]
            rows = np.arange(n_int)
            j = (l_i[rows, ai] + h_i[rows, ai] + 1) // 2
            axis += list(ai)
            thr += list(j / N)             # the same float64 values GridRouter compares with
            lower_hi = h_i.copy()
            lower_hi[rows, ai] = j
            upper_lo = l_i.copy()
            upper_lo[rows, ai] = j
            lo = np.concatenate([l_i, upper_lo])
            hi = np.concatenate([lower_hi, h_i])
            start = np.concatenate([(ai + 1) % n] * 2)
            ids = code[internal]
            parent_slots = (np.concatenate([ids, ids]),
                            np.concatenate([np.zeros(n_int, int), np.ones(n_int, int)]))
        up = np.zeros(len(axis), dtype=np.int64)
        down = np.zeros(len(axis), dtype=np.int64)
        for ids, side, code in links:      # one step per tree level
            down[ids[side == 0]] = code[side == 0]
            up[ids[side == 1]] = code[side == 1]
        return axis, thr, up, down, leaf, links

    @property
    def path_numbers(self) -> int:
        """Thresholds read on the longest root-to-leaf path (one number per node)."""
        return self.max_depth

    @property
    def stored_numbers(self) -> int:
        return int(self.threshold.numel())

    def route_with_path(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell index (B,) and path lengths (B,): the number of thresholds read for each input."""
        x = unit_cube_points(x, self.n)
        B = x.shape[0]
        if len(self.axis) == 0:
            return torch.full((B,), int(self.leaf_cell[0])), torch.zeros(B, dtype=torch.long)
        node = torch.zeros(B, dtype=torch.long)
        length = torch.zeros(B, dtype=torch.long)
        live = torch.ones(B, dtype=torch.bool)
        for _ in range(self.max_depth):
            cur = node.clamp(min=0)
            upper = x.gather(1, self.axis[cur][:, None])[:, 0] >= self.threshold[cur]
            nxt = torch.where(upper, self.child_hi[cur], self.child_lo[cur])
            node = torch.where(live, nxt, node)
            length += live.long()
            live = live & (node >= 0)
        return self.leaf_cell[-1 - node], length

    def forward(self, x) -> Routing:
        idx, _ = self.route_with_path(x)
        return Routing(idx[:, None], torch.ones(idx.shape[0], 1, dtype=torch.float64))


def face_points(n: int, N: int, per_face: int, rng: np.random.Generator) -> torch.Tensor:
    """Points with one coordinate exactly on a grid face j/N (j = 0..N) and the rest uniform."""
    n = validate.integer(n, "n", low=1)
    N = validate.integer(N, "cells_per_axis", low=1)
    per_face = validate.integer(per_face, "per_face", low=1)
    pts = rng.random((n, N + 1, per_face, n))
    for i in range(n):
        pts[i, :, :, i] = (np.arange(N + 1) / N)[:, None]
    return torch.from_numpy(pts.reshape(-1, n))


def grid_corners(n: int, N: int) -> torch.Tensor:
    """All (N+1)^n grid vertices j/N, including the coordinates 0 and 1."""
    g = torch.arange(N + 1, dtype=torch.float64) / N
    return torch.stack(torch.meshgrid(*[g] * n, indexing="ij"), -1).reshape(-1, n)


def on_a_face(x: torch.Tensor, N: int) -> torch.Tensor:
    """(B,) True where some coordinate is an interior face j/N, 0 < j < N (a nearest-centre tie)."""
    j = torch.round(x * N)
    return ((x == j / N) & (j > 0) & (j < N)).any(dim=1)
