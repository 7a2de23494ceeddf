"""Benchmark: MoE sparse dispatch against the matmul limit (a script that writes a table, not a test).

For each number of experts E and top-k, with N tokens of size d and 2-layer ReLU MLP experts of
hidden width h, it times (no autograd, median of ``--runs`` runs after one warm-up, the methods
interleaved run by run so that load from other processes hits them alike):

- limit:   one matmul pair carrying the same active FLOPs, x[N k, d] @ W1[d, h] @ W2[h, d];
- loop:    ``moe_lib.MoE.forward`` with its default ``dispatch="loop"`` (one call per routed expert);
- grouped: ``moe_lib.models.dispatch.grouped_forward`` in its inference form (sorted by expert, each
           expert on its block of rows, the experts in groups on threads of single-threaded ops);
- grouped padded: the same with ``form="padded"`` (padded batched matmuls, the autograd form);
- dense:   ``dispatch.dense_reference``, every expert on every token (E / k times the active FLOPs);

and, on the same routing with all bookkeeping done before the timed region, what the expert
computation alone costs in each form (floors for a dispatch of that form):

- blocks:  only the expert calls, each expert module on its pre-sorted block of rows;
- padded:  the batched form (what grouped does), ``torch.baddbmm`` over pre-stacked weights (E, out, in) and
           the rows padded to the largest load (E, C, d);
- gmm:     the packed alternative, torch's private grouped GEMM ``torch._grouped_mm`` over the
           sorted rows and the pre-stacked weights (float32 only; no autograd on CPU in 2.13);
- read:    one pass over every expert's weights (a sum): each weight must reach the CPU once per
           forward, so limit / max(limit, read) is the most any dispatch can reach ("ceiling").

% = limit time / time. Markdown goes to stdout and to ``--out``.

    PYTHONPATH=. .venv/bin/python benchmarks/dispatch.py            # the full table (a few minutes)
    PYTHONPATH=. .venv/bin/python benchmarks/dispatch.py --experts 8 64 --dense-max-experts 64
"""

from __future__ import annotations

import argparse
import functools
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


def _floors(moe, r, x) -> dict:
    """The blocks, padded and read floors (see the module docstring), with their inputs prepared."""
    flat = r.idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=moe.n_experts)
    parts = x.index_select(0, order // r.idx.shape[1]).split(counts.tolist())
    blocks = [(f, b) for f, b in zip(moe.experts, parts, strict=True) if b.shape[0]]
    lins = [(f.net[0], f.net[2]) for f in moe.experts]
    w1 = torch.stack([a.weight for a, _ in lins]).transpose(1, 2)
    b1 = torch.stack([a.bias for a, _ in lins]).unsqueeze(1)
    w2 = torch.stack([c.weight for _, c in lins]).transpose(1, 2)
    b2 = torch.stack([c.bias for _, c in lins]).unsqueeze(1)
    padded = x.new_zeros(moe.n_experts, int(counts.max()), x.shape[1])
    for e, b in enumerate(parts):
        padded[e, :b.shape[0]] = b
    rows = x.index_select(0, order // r.idx.shape[1])
    offs = counts.cumsum(0).to(torch.int32)
    bias1 = b1.squeeze(1).repeat_interleave(counts, dim=0)
    bias2 = b2.squeeze(1).repeat_interleave(counts, dim=0)
    out = {"blocks": lambda: [f(b) for f, b in blocks],
           "padded": lambda: torch.baddbmm(b2, torch.baddbmm(b1, padded, w1).relu_(), w2),
           "read": lambda: (w1.sum(), w2.sum())}
    if hasattr(torch, "_grouped_mm") and x.dtype == torch.float32:  # torch's (private) grouped GEMM
        out["gmm"] = lambda: torch._grouped_mm((torch._grouped_mm(rows, w1, offs=offs) + bias1).relu_(),
                                               w2, offs=offs) + bias2
    return out


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
               "grouped": lambda: dispatch.grouped_forward(x, r, moe.experts, d),
               "grouped_padded": lambda: dispatch.grouped_forward(x, r, moe.experts, d, form="padded"),
               **_floors(moe, r, x)}
        dense_on = n_exp <= args.dense_max_experts
        if dense_on:
            fns["dense"] = lambda: dispatch.dense_reference(x, r, moe.experts)
        ref = loop()
        err = max(float((fns[g]() - ref).abs().max()) for g in ("grouped", "grouped_padded"))
        err_dense = float((fns["dense"]() - ref).abs().max()) if dense_on else float("nan")
        runs = {name: args.dense_runs if name == "dense" else args.loop_runs if name == "loop" else args.runs
                for name in fns}
        times = {name: [] for name in fns}
        for run in range(max(runs.values())):
            for name, f in fns.items():
                if run < runs[name]:
                    times[name].append(_timed(f))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"E": n_exp, "k": k, "med": med, "runs": runs, "err": err, "err_dense": err_dense,
            "rows": n * k / n_exp}


def _cell(med: dict, name: str) -> str:
    """'time ms (% of the limit)' for one method, or 'not run'."""
    return f"{1e3 * med[name]:.1f} ({100 * med['limit'] / med[name]:.0f})" if name in med else "not run"


def table(rows: list[dict], args, load: tuple) -> str:
    lines = [
        "# MoE dispatch against the matmul limit\n",
        f"N = {args.tokens} tokens, d = {args.d}, hidden {args.hidden}, 2-layer ReLU MLP experts, "
        f"top-k gate, float32, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"no autograd. Times are medians of {args.runs} runs after one warm-up (loop: "
        f"{args.loop_runs}, dense: {args.dense_runs}); % = limit time / time, the limit being one "
        f"matmul pair of the same active FLOPs (x[N k, d] @ W1[d, h] @ W2[h, d]). grouped = "
        f"grouped_forward's inference form (expert blocks, experts in groups on threads), grouped padded "
        f"= its autograd form; blocks = the "
        f"expert calls alone on pre-sorted rows, padded = baddbmm over pre-stacked weights and "
        f"padded rows, gmm = torch._grouped_mm over the sorted rows, read = one pass over all expert "
        f"weights; ceiling = limit / max(limit, read). "
        f"Load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores.\n",
        "| E | k | rows per expert | limit ms | loop ms (%) | grouped ms (%) | grouped padded ms (%) "
        "| blocks ms (%) "
        "| padded ms (%) | gmm ms (%) | read ms | ceiling % | dense ms (%) "
        "| max abs diff grouped-loop (both forms) "
        "| dense-loop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["med"]
        lim = m["limit"]
        cell = functools.partial(_cell, m)
        methods = " | ".join(cell(name) for name in
                             ("loop", "grouped", "grouped_padded", "blocks", "padded", "gmm"))
        lines.append(f"| {r['E']} | {r['k']} | {r['rows']:.0f} | {1e3 * lim:.1f} | {methods} | "
                     f"{1e3 * m['read']:.1f} | {100 * lim / max(lim, m['read']):.0f} | {cell('dense')} | "
                     f"{r['err']:.1e} | {r['err_dense']:.1e} |")
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
    p.add_argument("--loop-runs", type=int, default=3)
    p.add_argument("--dense-runs", type=int, default=5)
    p.add_argument("--dense-max-experts", type=int, default=64)
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
