"""An MoMLP whose experts live on disk, one safetensors file each, loaded on demand into an LRU cache.

    write_store(directory, experts, n=2, cells_per_axis=64, experts_per_file=64)
                                             # experts: iterable of (weights, biases) lists
    store = ExpertStore(directory, cache_size=8, cells_per_axis=16)   # uses experts 0 .. 16^2 - 1
    y = store.forward(x, chunk=256)          # x (B, n) in [0,1]^n, rows processed in their order
    store.hits, store.misses, store.cached   # cache statistics, LRU order (oldest first)
    full = InMemoryMoMLP.from_store(directory, cells_per_axis=16)    # every expert in memory

Layout of a store directory: ``store.json`` (a JSON manifest: input dimension n, cells per axis of
the largest grid, experts per file, expert shapes, dtype) and shard files ``experts_00000.safetensors``,
``experts_00001.safetensors``, ... File f holds experts f*E .. f*E + E - 1 (E = experts per file) as
tensors ``e00017.w0, e00017.b0, e00017.w1, ...`` (``w_i`` of shape (in, out), a layer is
``h @ w + b``). E = 1 gives one file per expert; larger E saves file-system work (creating thousands
of small files costs milliseconds each). Reading uses ``safetensors.safe_open``, which maps the file
and reads only the requested expert's tensors; nothing is ever unpickled. A missing, truncated or
corrupt file, or one holding the wrong tensors, raises ``ExpertStoreError`` naming the file and the
expert.

Routing is the flat grid router of P1: cell k_i = min(floor(x_i N), N - 1) per axis (a point on a
face goes to the upper cell, x_i = 1 to the last), row-major index, so expert k owns cell k.

This module needs only numpy, safetensors and the standard library (no torch): the memory probe
imports it in a fresh interpreter whose own footprint should stay small.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

MANIFEST = "store.json"
DTYPES = {"float32": np.float32, "float64": np.float64}


class ExpertStoreError(ValueError):
    """An expert file is missing, truncated, corrupt or holds the wrong tensors."""


def shard_file(f: int) -> str:
    return f"experts_{f:05d}.safetensors"


def expert_key(k: int, tensor: str) -> str:
    return f"e{k:05d}.{tensor}"


def check_int(v, name: str, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {type(v).__name__} {v!r}")
    return int(v)


def grid_cells(x: np.ndarray, n: int, N: int) -> np.ndarray:
    """Row-major cell index of each row of x (B, n) in the grid of N^n cubes of side 1/N."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"x: expected points of shape (B, {n}), got shape {x.shape}")
    if not np.isfinite(x).all() or (x < 0).any() or (x > 1).any():
        raise ValueError(f"x: expected finite points in [0,1]^{n}, got values in "
                         f"[{np.nanmin(x)}, {np.nanmax(x)}]")
    k = np.floor(x * N).astype(np.int64)
    # floor(x N) can be one off when x = j/N is not representable: compare with j/N directly.
    k = k + (x >= (k + 1) / N) - (x < k / N)
    k = np.clip(k, 0, N - 1)
    return (k * (N ** np.arange(n - 1, -1, -1))).sum(axis=1)


def write_store(directory, experts, n: int, cells_per_axis: int, experts_per_file: int = 1) -> Path:
    """Write ``experts`` (an iterable of (weights, biases) lists of numpy arrays) and the manifest.

    There must be exactly ``cells_per_axis ** n`` experts, all of one shape and dtype.
    """
    d = Path(directory)
    n = check_int(n, "n", 1)
    N = check_int(cells_per_axis, "cells_per_axis", 1)
    per = check_int(experts_per_file, "experts_per_file", 1)
    d.mkdir(parents=True, exist_ok=True)
    shapes = None
    count = 0
    shard: dict = {}
    for k, (weights, biases) in enumerate(experts):
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"expert {k}: expected equally many weights and biases (>= 1), "
                             f"got {len(weights)} and {len(biases)}")
        tensors = {}
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            tensors[f"w{i}"] = np.ascontiguousarray(w)
            tensors[f"b{i}"] = np.ascontiguousarray(b)
        these = {key: (list(t.shape), str(t.dtype)) for key, t in tensors.items()}
        if shapes is None:
            shapes = these
            if tensors["w0"].shape[0] != n:
                raise ValueError(f"expert 0: expected input dimension n = {n}, got {tensors['w0'].shape}")
        elif these != shapes:
            raise ValueError(f"expert {k}: expected tensors {shapes}, got {these}")
        shard.update({expert_key(k, key): t for key, t in tensors.items()})
        count += 1
        if count % per == 0:
            save_file(shard, str(d / shard_file(k // per)), metadata={"first_expert": str(k - per + 1)})
            shard = {}
    if shard:
        save_file(shard, str(d / shard_file(count // per)),
                  metadata={"first_expert": str(count // per * per)})
    if count != N ** n:
        raise ValueError(f"experts: expected cells_per_axis^n = {N ** n}, got {count}")
    depth = len(shapes) // 2
    manifest = {"format": "moe_lib expert store 1", "n": n, "cells_per_axis": N, "n_experts": count,
                "experts_per_file": per, "depth": depth, "shapes": {k: v[0] for k, v in shapes.items()},
                "dtype": shapes["w0"][1]}
    (d / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return d


def read_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ExpertStoreError(f"store manifest {path} is missing")
    try:
        man = json.loads(path.read_text())
        man["n"], man["cells_per_axis"], man["n_experts"], man["depth"], man["experts_per_file"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as e:
        raise ExpertStoreError(f"store manifest {path} is corrupt: {e}") from e
    if man.get("dtype") not in DTYPES:
        raise ExpertStoreError(f"store manifest {path}: expected dtype in {sorted(DTYPES)}, "
                               f"got {man.get('dtype')!r}")
    return man


def load_experts(directory, ks, manifest: dict) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Read experts ``ks`` (all in one shard file) with one ``safe_open``; each is (weights, biases).

    Any fault (file missing, unreadable header, short file, missing tensor, wrong shape or dtype)
    raises ``ExpertStoreError`` naming the file and the expert.
    """
    per = manifest["experts_per_file"]
    ks = [int(k) for k in ks]
    shards = {k // per for k in ks}
    if len(shards) != 1:
        raise ValueError(f"ks: expected experts of one shard file, got shards {sorted(shards)}")
    path = Path(directory) / shard_file(shards.pop())
    if not path.is_file():
        raise ExpertStoreError(f"expert {ks[0]}: file {path} is missing")
    want = manifest["shapes"]
    depth = manifest["depth"]
    out = []
    k = ks[0]
    try:
        with safe_open(str(path), framework="numpy") as f:
            first = (f.metadata() or {}).get("first_expert")
            if first != str(k // per * per):
                raise ExpertStoreError(f"expert {k}: file {path} starts at expert {first!r}, "
                                       f"expected {k // per * per}")
            for k in ks:
                t = {}
                for key in want:
                    try:
                        t[key] = f.get_tensor(expert_key(k, key))
                    except Exception as e:
                        raise ExpertStoreError(f"expert {k}: file {path} lacks tensor "
                                               f"{expert_key(k, key)} ({e})") from e
                out.append(t)
    except ExpertStoreError:
        raise
    except Exception as e:   # safetensors raises its own error type for bad headers and short files
        raise ExpertStoreError(f"expert {k}: file {path} is corrupt or truncated "
                               f"({type(e).__name__}: {e})") from e
    result = []
    for k, t in zip(ks, out, strict=True):
        for key, shape in want.items():
            if list(t[key].shape) != list(shape) or str(t[key].dtype) != manifest["dtype"]:
                raise ExpertStoreError(f"expert {k}: file {path} tensor {expert_key(k, key)} has shape "
                                       f"{t[key].shape} and dtype {t[key].dtype}, expected {shape} and "
                                       f"{manifest['dtype']}")
        result.append(([t[f"w{i}"] for i in range(depth)], [t[f"b{i}"] for i in range(depth)]))
    return result


def load_expert(directory, k: int, manifest: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read expert k's tensors (only those) from its shard file; see ``load_experts``."""
    return load_experts(directory, [k], manifest)[0]


def mlp_forward(weights, biases, h: np.ndarray) -> np.ndarray:
    """ReLU MLP: h @ w_i + b_i with ReLU between layers (none after the last)."""
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i < len(weights) - 1:
            np.maximum(h, 0, out=h)
    return h


class _Routed:
    """Shared routing and dispatch: ``_expert(k)`` supplies expert k's (weights, biases)."""

    def _setup(self, directory, cells_per_axis):
        self.directory = Path(directory)
        self.manifest = read_manifest(directory)
        self.n = self.manifest["n"]
        N = self.manifest["cells_per_axis"] if cells_per_axis is None else cells_per_axis
        self.N = check_int(N, "cells_per_axis", 1)
        self.n_experts = self.N ** self.n
        if self.n_experts > self.manifest["n_experts"]:
            raise ValueError(f"cells_per_axis: expected at most {self.manifest['n_experts']} experts "
                             f"(the store's), got {self.N}^{self.n} = {self.n_experts}")
        self.dtype = DTYPES[self.manifest["dtype"]]
        self.d_out = self.manifest["shapes"][f"b{self.manifest['depth'] - 1}"][0]

    def route(self, x: np.ndarray) -> np.ndarray:
        return grid_cells(x, self.n, self.N)

    def forward(self, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Outputs (B, d_out). Rows are processed in order, ``chunk`` at a time (default: all);
        within a chunk each distinct expert is fetched once and run on its rows."""
        cells = self.route(x)
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        chunk = B if chunk is None else check_int(chunk, "chunk", 1)
        out = np.empty((B, self.d_out), dtype=self.dtype)
        for s in range(0, B, chunk):
            c = cells[s:s + chunk]
            order = np.argsort(c, kind="stable")
            ks, starts = np.unique(c[order], return_index=True)
            bounds = np.r_[starts, c.size]
            for j, k in enumerate(ks):
                rows = s + order[bounds[j]:bounds[j + 1]]
                w, b = self._expert(int(k), rows.size)
                out[rows] = mlp_forward(w, b, x[rows])
        return out

    __call__ = forward


class ExpertStore(_Routed):
    """Experts on disk, at most ``cache_size`` of them in memory (least recently used evicted)."""

    def __init__(self, directory, cache_size: int = 1, cells_per_axis: int | None = None):
        self._setup(directory, cells_per_axis)
        self.cache_size = check_int(cache_size, "cache_size", 1)
        self._cache: OrderedDict[int, tuple[list, list]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def cached(self) -> list[int]:
        """Experts in the cache, least recently used first."""
        return list(self._cache)

    @property
    def hit_rate(self) -> float:
        """Share of inputs whose expert was not read from disk for them: 1 - reads / inputs."""
        total = self.hits + self.misses
        return self.hits / total if total else math.nan

    def reset_stats(self) -> None:
        self.hits = 0
        self.misses = 0

    def _expert(self, k: int, rows: int = 1):
        """Expert k through the cache; ``rows`` inputs need it: a miss (one read) serves the first of
        them and the other rows - 1 count as hits, so hit rate = 1 - reads / inputs."""
        if not 0 <= k < self.n_experts:
            raise ValueError(f"expert: expected an index in [0, {self.n_experts}), got {k}")
        if k in self._cache:
            self.hits += rows
            self._cache.move_to_end(k)
            return self._cache[k]
        self.misses += 1
        self.hits += rows - 1
        expert = load_expert(self.directory, k, self.manifest)
        self._cache[k] = expert
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return expert

    def expert(self, k: int):
        """Expert k's (weights, biases), through the cache (counts as one input)."""
        return self._expert(check_int(k, "k", 0))


class InMemoryMoMLP(_Routed):
    """The same MoMLP with every expert held in memory (stacked arrays, one per tensor)."""

    @classmethod
    def from_store(cls, directory, cells_per_axis: int | None = None) -> InMemoryMoMLP:
        self = cls()
        self._setup(directory, cells_per_axis)
        depth = self.manifest["depth"]
        shapes = self.manifest["shapes"]
        K = self.n_experts
        self.w = [np.empty((K, *shapes[f"w{i}"]), dtype=self.dtype) for i in range(depth)]
        self.b = [np.empty((K, *shapes[f"b{i}"]), dtype=self.dtype) for i in range(depth)]
        per = self.manifest["experts_per_file"]
        for start in range(0, K, per):
            block = range(start, min(start + per, K))
            for k, (ws, bs) in zip(block, load_experts(self.directory, block, self.manifest), strict=True):
                for i in range(depth):
                    self.w[i][k] = ws[i]
                    self.b[i][k] = bs[i]
        return self

    def _expert(self, k: int, rows: int = 1):
        return [w[k] for w in self.w], [b[k] for b in self.b]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.w + self.b)
