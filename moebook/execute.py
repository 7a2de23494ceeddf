"""Execute chapters: plan (parameters, cache key, where the result goes), run, store, summarise.

A profile's notebooks go to ``_build/executed/<profile>/``; a run with ``-p`` values goes to its own
folder ``_build/runs/<id>-<hash of its parameters>/`` and never replaces a profile's notebook. A
chapter is executed when its entry is missing, stale or corrupt (see ``store.state``), or with
``--force``. The execution itself is ``job.execute`` (a child process per chapter, with a time
limit); this module runs the jobs one after the other, ``cluster`` runs them on Dask.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

from . import paths, store
from .chapters import Chapter
from .job import PINNED_THREADS, kernel_env  # noqa: F401 - re-exported for nbcheck and tests

# Per-chapter time limit in seconds, by profile (override with --timeout). The book profile aims at
# <= 20 s per chapter; the limit leaves room for a loaded machine. The full profile runs for hours.
TIMEOUTS = {"book": 600.0, "full": 6 * 3600.0}


def _tree_digest(h, root: Path) -> None:
    for p in sorted(root.rglob("*.py")):
        if "__pycache__" not in p.parts:
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


@dataclass(frozen=True)
class Plan:
    chapter: Chapter
    params: dict
    custom: bool  # parameters given with -p: the result goes to its own folder
    key: str = field(default="")
    entry: store.Entry = field(default=None)  # type: ignore[assignment]


def plan(chapter: Chapter, params: dict, profile: str, custom: bool) -> Plan:
    entry = store.custom_entry(chapter, params) if custom else store.profile_entry(chapter, profile)
    return Plan(chapter, params, custom, cache_key(chapter, params), entry)


@dataclass
class Result:
    chapter: Chapter
    status: str  # "ok", "cached" or "FAILED"
    seconds: float  # this run's execution time (0 when cached)
    error: str = ""
    notebook: Path | None = None  # the executed notebook, when there is one for these parameters
    kept: Path | None = None  # the failed notebook with its traceback
    ran_seconds: float = 0.0  # for a cached result: how long its run took
    note: str = ""  # e.g. why a cache entry was not used


def cached(p: Plan, force: bool) -> tuple[Result | None, str]:
    """A Result if the entry can be served as it is; otherwise None and why it is executed."""
    s = store.state(p.entry, p.key)
    if s.fresh and not force:
        return Result(p.chapter, "cached", 0.0, notebook=p.entry.notebook,
                      ran_seconds=float(s.record.get("seconds", 0.0))), ""
    return None, ("" if force or s.reason in ("not executed",) or s.reason.startswith("stale")
                  else f"cache entry unusable ({s.reason}); executing again")


def make_job(p: Plan, timeout: float, fingerprint: dict | None = None) -> dict:
    nb = jupytext.read(p.chapter.path)
    return {"chapter": p.chapter.id, "notebook": nbformat.writes(nb), "params": p.params, "key": p.key,
            "timeout": timeout, "forbidden": [str(Path.cwd().resolve()), str(Path.home())],
            "fingerprint": fingerprint}


def finish(p: Plan, outcome: dict, profile: str, note: str = "") -> Result:
    """Store what a job returned: the new entry, or the failed notebook beside the untouched old one."""
    seconds = float(outcome.get("seconds", 0.0))
    if outcome["status"] == "ok":
        record = {"key": p.key, "params": p.params, "seconds": round(seconds, 2), "profile": profile,
                  "custom": p.custom, "claims": outcome.get("claims", []), "host": outcome.get("host", "")}
        try:
            store.commit(p.entry, outcome["notebook"], record)
        except OSError as e:
            return Result(p.chapter, "FAILED", seconds, note=note,
                          error=f"could not write {p.entry.notebook} ({e.strerror or e}); "
                                "the previous notebook, if any, is kept")
        return Result(p.chapter, "ok", seconds, notebook=p.entry.notebook, note=note)
    kept = store.keep_failed(p.entry, outcome.get("notebook"))
    return Result(p.chapter, "FAILED", seconds, error=outcome.get("error", "failed"), kept=kept, note=note)


def sweep_leftovers() -> None:
    removed = store.sweep([paths.BUILD / "executed", paths.RUNS])
    if removed:
        print(f"removed {len(removed)} half-written file(s) left by an interrupted run", flush=True)


def describe(r: Result) -> str:
    """The progress line of one finished chapter."""
    if r.status == "cached":
        line = f"cached (ran in {r.ran_seconds:.1f} s)"
    elif r.status == "ok":
        line = f"ok in {r.seconds:.1f} s"
    else:
        line = f"FAILED after {r.seconds:.1f} s: {r.error}"
    return line


def report(r: Result, custom: bool) -> None:
    print(f"    {describe(r)}", flush=True)
    if r.kept is not None:
        print(f"    traceback kept in {r.kept}")
    elif r.status == "FAILED":
        print("    no executed notebook to keep")
    if custom and r.notebook is not None:
        print(f"    notebook: {r.notebook}")


def run_sequential(plans: list[Plan], profile: str, force: bool, timeout: float) -> list[Result]:
    from .job import execute
    results = []
    for i, p in enumerate(plans, 1):
        print(f"[{i}/{len(plans)}] {p.chapter.id} ({p.chapter.label}) ...", flush=True)
        r, note = cached(p, force)
        if r is None:
            if note:
                print(f"    {note}", flush=True)
            r = finish(p, execute(make_job(p, timeout)), profile, note)
        report(r, p.custom)
        results.append(r)
    return results


def summary(results: list[Result]) -> str:
    width = max([len("chapter")] + [len(r.chapter.id) for r in results])
    lines = [f"{'chapter':<{width}}  status  seconds  note"]
    for r in results:
        secs = f"{r.seconds:7.1f}" if r.status != "cached" else f"{'-':>7}"
        note = (f"ran in {r.ran_seconds:.1f} s" if r.status == "cached"
                else r.error if r.status == "FAILED" else "")
        if r.notebook is not None and r.notebook.parent.parent == paths.RUNS:
            note = f"{note}; " * bool(note) + f"in {r.notebook}"
        lines.append(f"{r.chapter.id:<{width}}  {r.status:<6}  {secs}  {note}".rstrip())
    return "\n".join(lines)

