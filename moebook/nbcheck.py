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


def check(chapters: list[Chapter], params: dict[str, dict], profile: str) -> int:
    plans = [plan(c, params[c.id], profile, custom=False) for c in chapters]
    bad = not_ready(plans)
    if bad:
        print(f"moebook check: run 'moebook run' first; not ready in profile '{profile}': "
              + "; ".join(bad), file=sys.stderr)
        return 1
    shas = {p.chapter.id: store.sha256(p.entry.notebook) for p in plans}
    with tempfile.TemporaryDirectory(prefix="moebook-check-") as tmp:
        results = Path(tmp) / "results.json"
        env = kernel_env() | {"MOEBOOK_NBVAL_RESULTS": str(results)}
        cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
               "--nbval-sanitize-with", str(paths.SANITIZE), "-p", "no:cacheprovider",
               "-p", "moebook.nbval_record", "--rootdir", str(paths.executed_dir(profile)),
               *[str(p.entry.notebook) for p in plans]]
        rc = subprocess.call(cmd, env=env)
        passed = json.loads(results.read_text()) if results.exists() else {}
    for p in plans:
        if passed.get(p.entry.notebook.name) and store.sha256(p.entry.notebook) == shas[p.chapter.id]:
            store.mark_checked(p.entry, shas[p.chapter.id])
    return rc
