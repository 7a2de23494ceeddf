"""The benchmark scripts still run and write their tables (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dispatch_benchmark_writes_its_table(tmp_path):
    out = tmp_path / "dispatch.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dispatch.py"), "--experts", "1", "4",
                           "--tokens", "64", "--d", "8", "--hidden", "16", "--threads", "1", "--runs", "1",
                           "--loop-runs", "1", "--dense-runs", "1", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert [(int(r[0]), int(r[1])) for r in body] == [(1, 1), (4, 1), (4, 2)]  # k <= E only
    col = [h.strip() for h in header].index("max abs diff grouped-loop (both forms)")
    assert all(float(r[col]) <= 1e-6 for r in body)  # both forms of grouped dispatch equal the loop
