"""Peak resident memory of MoMLP inference, one fresh process per measurement (P1-EXP).

Parent side (the chapter):

    store_dir = write_random_store(tmp, n=2, cells_per_axis=64, width=96, depth=3, seed=0)
    rows = [measure(store_dir, N, mode) for N in (4, 8, 16, 32, 64) for mode in ("store", "memory")]

Child side: ``python -m moe_lib.experiments.p1_store_probe --store DIR --cells N --mode store ...``
builds either an ``ExpertStore`` (experts read from disk into an LRU cache of ``--cache`` experts) or
an ``InMemoryMoMLP`` (every expert loaded), runs a fixed batch through it ``--repeats`` times, and
prints one JSON line: peak RSS (``peak_rss_mb``: VmHWM, see there), peak RSS before the model was built,
seconds per batch and cache statistics.

``measure`` starts the child as ``python -c BOOT``: BOOT registers ``moe_lib`` and the two subpackages
on the way as bare package paths (so their ``__init__.py``, which import torch and matplotlib, are not
executed) and then runs this
module as ``__main__`` exactly as ``python -m`` would. The child therefore imports only numpy,
safetensors and the standard library, and its baseline is the plain interpreter's. This module must
stay free of torch imports for the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from moe_lib.models import expert_store as es

ROOT = Path(__file__).resolve().parents[2]
BOOT = ("import sys, types, runpy\n"
        "for name in ('moe_lib', 'moe_lib.models', 'moe_lib.experiments'):\n"
        "    pkg = types.ModuleType(name)\n"
        "    pkg.__path__ = [sys.argv[1] + '/' + name.replace('.', '/')]\n"
        "    sys.modules[name] = pkg\n"
        "sys.argv = ['p1_store_probe'] + sys.argv[2:]\n"
        "runpy.run_module('moe_lib.experiments.p1_store_probe', run_name='__main__', alter_sys=True)")


def expert_parameters(n: int, width: int, depth: int) -> int:
    """Scalars in one expert n -> width -> ... -> 1 with ``depth`` affine maps."""
    dims = [n] + [width] * (depth - 1) + [1]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(depth))


def random_experts(n: int, count: int, width: int, depth: int, seed: int):
    """``count`` random ReLU experts (He-scaled normal weights, float32), generated lazily."""
    rng = np.random.default_rng(seed)
    dims = [n] + [width] * (depth - 1) + [1]
    for _ in range(count):
        ws = [(rng.standard_normal((dims[i], dims[i + 1])) * np.sqrt(2.0 / dims[i])).astype(np.float32)
              for i in range(depth)]
        bs = [np.zeros(dims[i + 1], dtype=np.float32) for i in range(depth)]
        yield ws, bs


def write_random_store(directory, n: int, cells_per_axis: int, width: int, depth: int,
                       seed: int, experts_per_file: int = 64) -> Path:
    """A store of cells_per_axis^n random experts in ``directory`` (see ``expert_store.write_store``)."""
    count = es.check_int(cells_per_axis, "cells_per_axis", 1) ** es.check_int(n, "n", 1)
    return es.write_store(directory, random_experts(n, count, width, depth, seed), n, cells_per_axis,
                          experts_per_file)


def fixed_batch(n: int, size: int, seed: int, order: str = "shuffled", cells_per_axis: int = 1):
    """``size`` uniform points of [0,1]^n; ``order="sorted"`` sorts them by grid cell."""
    if order not in ("shuffled", "sorted"):
        raise ValueError(f"order: expected 'shuffled' or 'sorted', got {order!r}")
    x = np.random.default_rng(seed).random((es.check_int(size, "size", 1), n))
    if order == "sorted":
        x = x[np.argsort(es.grid_cells(x, n, cells_per_axis), kind="stable")]
    return x


def peak_rss_mb() -> float:
    """Peak resident set of this process's address space, MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of the current address space. Not
    ``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux that maximum survives fork + exec, so a child
    started from a large parent (a notebook kernel with torch loaded) would report the parent's RSS.
    Elsewhere ``ru_maxrss`` is the fallback (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def run(store: str, cells: int, mode: str, cache: int, batch: int, chunk: int, seed: int,
        order: str, repeats: int) -> dict:
    """The child's measurement (also callable in-process, e.g. for the cache statistics)."""
    before = peak_rss_mb()
    t0 = time.perf_counter()
    if mode == "store":
        model = es.ExpertStore(store, cache_size=cache, cells_per_axis=cells)
    elif mode == "memory":
        model = es.InMemoryMoMLP.from_store(store, cells_per_axis=cells)
    else:
        raise ValueError(f"mode: expected 'store' or 'memory', got {mode!r}")
    build = time.perf_counter() - t0
    x = fixed_batch(model.n, batch, seed, order, cells)
    times = []
    checksum = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = model.forward(x, chunk=chunk)
        times.append(time.perf_counter() - t0)
        checksum = float(np.abs(y).sum())
    out = {"mode": mode, "cells_per_axis": cells, "n_experts": model.n_experts,
           "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before, "build_s": build,
           "seconds_per_batch": float(np.median(times)), "checksum": checksum}
    if mode == "store":
        out.update(hits=model.hits, misses=model.misses, hit_rate=model.hit_rate)
    return out


def measure(store, cells: int, mode: str, cache: int = 8, batch: int = 1024, chunk: int = 128,
            seed: int = 0, order: str = "shuffled", repeats: int = 1, timeout: float = 120.0) -> dict:
    """Run ``run(...)`` in a fresh interpreter and return its JSON record."""
    args = [sys.executable, "-c", BOOT, str(ROOT), "--store", str(store), "--cells", str(cells),
            "--mode", mode, "--cache", str(cache), "--batch", str(batch), "--chunk", str(chunk),
            "--seed", str(seed), "--order", order, "--repeats", str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe ({mode}, {cells} cells per axis) failed with code "
                           f"{proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--cells", type=int, required=True)
    p.add_argument("--mode", choices=("store", "memory"), required=True)
    p.add_argument("--cache", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--order", choices=("shuffled", "sorted"), default="shuffled")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)
    print(json.dumps(run(a.store, a.cells, a.mode, a.cache, a.batch, a.chunk, a.seed, a.order,
                         a.repeats)))


if __name__ == "__main__":
    main()
