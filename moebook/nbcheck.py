"""nbval in strict mode over the executed notebooks: a rerun must print what the notebook holds."""

from __future__ import annotations

import subprocess
import sys

from . import paths
from .chapters import Chapter
from .execute import kernel_env


def check(chapters: list[Chapter], profile: str) -> int:
    missing = [c.id for c in chapters if not (paths.executed_dir(profile) / f"{c.id}.ipynb").exists()]
    if missing:
        print(f"moebook check: not executed in profile '{profile}' (run 'moebook run' first): "
              + ", ".join(missing), file=sys.stderr)
        return 1
    files = [str(paths.executed_dir(profile) / f"{c.id}.ipynb") for c in chapters]
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(paths.SANITIZE), "-p", "no:cacheprovider",
           "--rootdir", str(paths.executed_dir(profile)), *files]
    return subprocess.call(cmd, env=kernel_env())
