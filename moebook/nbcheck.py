"""nbval in strict mode over a profile's executed notebooks: a rerun must print what the notebook holds.

Only fresh notebooks are checked (``store.state``, the same test as ``moebook build``): a missing,
stale or corrupt one is refused, since nbval would rerun the old code stored in it. A notebook that
passes is recorded in its sidecar (by its sha256), which the status page reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from . import paths, store
from .chapters import Chapter
from .execute import plan
from .job import kernel_env


def not_ready(plans) -> list[str]:
    return [f"{p.chapter.id} ({s.reason})" for p in plans
            for s in [store.state(p.entry, p.key)] if not s.fresh]


def groups(plans, jobs: int) -> list[list]:
    """Split the notebooks into ``jobs`` groups of about equal recorded run time (longest first)."""
    out: list[list] = [[] for _ in range(min(jobs, len(plans)))]
    load = [0.0] * len(out)
    for p in sorted(plans, key=lambda p: -store.seconds(p.entry)):
        i = load.index(min(load))
        out[i].append(p)
        load[i] += store.seconds(p.entry)
    return out


def check(chapters: list[Chapter], params: dict[str, dict], profile: str, jobs: int = 1) -> int:
    """nbval over the fresh notebooks, in ``jobs`` pytest processes at once (each re-executes its share)."""
    plans = [plan(c, params[c.id], profile, custom=False) for c in chapters]
    bad = not_ready(plans)
    if bad:
        print(f"moebook check: run 'moebook run' first; not ready in profile '{profile}': "
              + "; ".join(bad), file=sys.stderr)
        return 1
    shas = {p.chapter.id: store.sha256(p.entry.notebook) for p in plans}
    passed: dict = {}
    rcs = []
    with tempfile.TemporaryDirectory(prefix="moebook-check-") as tmp:
        procs = []
        for i, group in enumerate(groups(plans, jobs)):
            results = Path(tmp) / f"results{i}.json"
            env = kernel_env() | {"MOEBOOK_NBVAL_RESULTS": str(results)}
            cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
                   "--nbval-sanitize-with", str(paths.SANITIZE), "-p", "no:cacheprovider",
                   "-p", "moebook.nbval_record", "--rootdir", str(paths.executed_dir(profile)),
                   *[str(p.entry.notebook) for p in group]]
            procs.append((subprocess.Popen(cmd, env=env), results))
        for proc, results in procs:
            rcs.append(proc.wait())
            if results.exists():
                passed |= json.loads(results.read_text())
    for p in plans:
        if passed.get(p.entry.notebook.name) and store.sha256(p.entry.notebook) == shas[p.chapter.id]:
            store.mark_checked(p.entry, shas[p.chapter.id])
    return next((rc for rc in rcs if rc), 0)
