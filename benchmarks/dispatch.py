"""Benchmark: MoE sparse dispatch against the matmul limit (a script that writes a table, not a test).

For each number of experts E and top-k, with N tokens of size d and 2-layer ReLU MLP experts of
hidden width h, it times (no autograd, median of ``--runs`` runs after one warm-up, the methods
interleaved run by run so that load from other processes hits them alike):

- limit:   one matmul pair carrying the same active FLOPs, x[N k, d] @ W1[d, h] @ W2[h, d];
- loop:    ``moe_lib.MoE.forward`` with its default ``dispatch="loop"`` (one call per routed expert);
- grouped: ``moe_lib.models.dispatch.grouped_forward``;
- dense:   ``dispatch.dense_reference``, every expert on every token (E / k times the active FLOPs).

and reports each time and limit / time in %. Markdown goes to stdout and to ``--out``.

    PYTHONPATH=. .venv/bin/python benchmarks/dispatch.py            # full table (dense is slow)
    PYTHONPATH=. .venv/bin/python benchmarks/dispatch.py --experts 8 64 --dense-max-experts 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import moe_lib as ml
from moe_lib.models import dispatch


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def bench(n_exp: int, k: int, experts, args) -> dict:
    d, h, n = args.d, args.hidden, args.tokens
    gate = ml.TopKGate(d, n_exp, k)
    moe = ml.MoE(experts, gate, d, d)
    x = torch.randn(n, d)
    xl, w1, w2 = torch.randn(n * k, d), torch.randn(d, h) / d ** 0.5, torch.randn(h, d) / h ** 0.5
    with torch.no_grad():
        r = moe.route(x)
        def loop():
            return moe(x, r)   # MoE's default dispatch: one call per routed expert
        fns = {"limit": lambda: (xl @ w1) @ w2, "loop": loop,
               "grouped": lambda: dispatch.grouped_forward(x, r, moe.experts, d)}
        dense_on = n_exp <= args.dense_max_experts
        if dense_on:
            fns["dense"] = lambda: dispatch.dense_reference(x, r, moe.experts)
        ref = loop()
        err = float((fns["grouped"]() - ref).abs().max())
        err_dense = float((fns["dense"]() - ref).abs().max()) if dense_on else float("nan")
        times = {name: [] for name in fns}
        for run in range(max(args.runs, args.dense_runs if dense_on else 0)):
            for name, f in fns.items():
                if run < (args.dense_runs if name == "dense" else args.runs):
                    times[name].append(_timed(f))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"E": n_exp, "k": k, "med": med, "runs": {nm: len(t) for nm, t in times.items()},
            "err": err, "err_dense": err_dense}


def table(rows: list[dict], args, load: tuple) -> str:
    lines = [
        "# MoE dispatch against the matmul limit\n",
        f"N = {args.tokens} tokens, d = {args.d}, hidden {args.hidden}, 2-layer ReLU MLP experts, "
        f"top-k gate, float32, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"no autograd. Times are medians of {args.runs} runs after one warm-up (dense: "
        f"{args.dense_runs}); % = limit time / time, the limit being one matmul pair of the same "
        f"active FLOPs (x[N k, d] @ W1[d, h] @ W2[h, d]). Load average (1 min) before/after: "
        f"{load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores.\n",
        "| E | k | limit ms | loop ms | loop % | grouped ms | grouped % | dense ms | dense % "
        "| max abs diff grouped-loop | dense-loop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["med"]
        dense = (f"{1e3 * m['dense']:.0f} | {100 * m['limit'] / m['dense']:.1f}" if "dense" in m
                 else "not run | -")
        lines.append(f"| {r['E']} | {r['k']} | {1e3 * m['limit']:.1f} | {1e3 * m['loop']:.1f} | "
                     f"{100 * m['limit'] / m['loop']:.0f} | {1e3 * m['grouped']:.1f} | "
                     f"{100 * m['limit'] / m['grouped']:.0f} | {dense} | {r['err']:.1e} | "
                     f"{r['err_dense']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experts", type=int, nargs="+", default=[8, 64, 256, 1024])
    p.add_argument("--k", type=int, nargs="+", default=[1, 2])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--dense-runs", type=int, default=5)
    p.add_argument("--dense-max-experts", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dispatch.md")
    args = p.parse_args()
    ml.seed_everything(args.seed, threads=args.threads)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    rows = []
    for n_exp in args.experts:
        experts = [ml.MLP(args.d, args.d, args.hidden) for _ in range(n_exp)]
        for k in args.k:
            if k <= n_exp:
                rows.append(bench(n_exp, k, experts, args))
        del experts
    out = table(rows, args, (load0, os.getloadavg()[0]))
    print(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(out)


if __name__ == "__main__":
    main()
