"""Execute chapters with papermill into _build/executed/<profile>/, cached by a content key.

For each chapter three files are written, each atomically (temporary file, then rename):
``<id>.ipynb`` (the executed notebook) and ``<id>.json`` (key, parameters, seconds) on success;
``<id>.failed.ipynb`` (the notebook with its traceback) on failure, which removes the other two.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import papermill

from . import paths
from .chapters import Chapter


@contextmanager
def kernel_environment():
    """Run the block with os.environ set to ``kernel_env()`` (papermill's kernels inherit it)."""
    saved = dict(os.environ)
    env = kernel_env()  # computed before clearing, or the kernel loses PYTHONPATH and the rest
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def kernel_env() -> dict[str, str]:
    """The environment the chapter kernels get: this venv first on PATH, no Agg backend, no tqdm bars."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # an inherited Agg backend silently drops every figure
    env["TQDM_DISABLE"] = "1"  # progress bars print timings, which nbval would compare
    env["PYTHONHASHSEED"] = "0"
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _tree_digest(h, root: Path) -> None:
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())


def cache_key(chapter: Chapter, params: dict) -> str:
    """Hash of the chapter source, the moe_lib sources, the dependency lock and the parameters."""
    h = hashlib.sha256()
    h.update(chapter.path.read_bytes())
    _tree_digest(h, paths.LIBRARY)
    h.update(paths.LOCK.read_bytes() if paths.LOCK.exists() else b"")
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def record(profile: str, chapter: Chapter) -> dict | None:
    """The sidecar of the last successful run, or None."""
    side = paths.executed_dir(profile) / f"{chapter.id}.json"
    return json.loads(side.read_text()) if side.exists() else None


@dataclass
class Result:
    chapter: Chapter
    status: str  # "ok", "cached" or "FAILED"
    seconds: float
    error: str = ""


def run_chapter(chapter: Chapter, profile: str, params: dict, force: bool = False) -> Result:
    out_dir = paths.executed_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{chapter.id}.ipynb"
    failed = out_dir / f"{chapter.id}.failed.ipynb"
    side = out_dir / f"{chapter.id}.json"
    key = cache_key(chapter, params)
    old = record(profile, chapter)
    if not force and old and old.get("key") == key and final.exists():
        return Result(chapter, "cached", old["seconds"])

    source = out_dir / f"{chapter.id}.source.ipynb"
    partial = out_dir / f"{chapter.id}.partial.ipynb"
    nbformat.write(jupytext.read(chapter.path), source)
    start = time.perf_counter()
    error = ""
    try:
        # Relative paths: papermill stores them in the notebook that readers download.
        with kernel_environment():
            papermill.execute_notebook(
                str(source), str(partial), parameters=params, kernel_name="python3",
                progress_bar=sys.stderr.isatty(), cwd=str(paths.NOTEBOOKS),
            )
    except papermill.PapermillExecutionError as e:
        error = f"{e.ename}: {e.evalue}"
    except Exception as e:  # noqa: BLE001 - a broken kernel must not stop the other chapters
        error = f"{type(e).__name__}: {e}"
    except BaseException:  # interrupted: leave nothing half-written behind
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    if error:
        if partial.exists():
            os.replace(partial, failed)
        final.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
        return Result(chapter, "FAILED", seconds, error)
    _tidy_metadata(partial, chapter)
    side.unlink(missing_ok=True)  # never a sidecar describing another run than the notebook
    os.replace(partial, final)
    failed.unlink(missing_ok=True)
    _write_atomic(side, json.dumps({"key": key, "params": params, "seconds": round(seconds, 2),
                                    "profile": profile}, indent=1, default=str))
    return Result(chapter, "ok", seconds)


def _tidy_metadata(path: Path, chapter: Chapter) -> None:
    """Point papermill's recorded paths at the chapter source, not at our temporary files."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("papermill", {})
    nb.metadata.papermill["input_path"] = f"notebooks/{chapter.path.name}"
    nb.metadata.papermill["output_path"] = f"{chapter.id}.ipynb"
    nbformat.write(nb, path)


def summary(results: list[Result]) -> str:
    width = max(len(r.chapter.id) for r in results)
    lines = [f"{'chapter':<{width}}  status  seconds"]
    for r in results:
        lines.append(f"{r.chapter.id:<{width}}  {r.status:<6}  {r.seconds:7.1f}"
                     + (f"  {r.error}" if r.error else ""))
    return "\n".join(lines)
