"""The executed notebooks on disk: one entry per chapter and folder, checked before it is used.

An entry is ``<id>.ipynb`` (the executed notebook; its metadata ``moebook.key`` is the cache key) and
``<id>.json`` (the record: key, parameters, seconds, claims, the notebook's sha256, and once
``moebook check`` passed on exactly this notebook, ``nbval``). Both are written to temporary files
first and renamed into place with signals held, so a kill, a full disk or a read-only folder leaves
the previous entry as it was. A failed run writes only ``<id>.failed.ipynb``: it never deletes the
last good notebook. ``state()`` is the one test of freshness that run, check and build all use.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .chapters import Chapter

LEFTOVERS = ("*.partial", "*.partial.ipynb", "*.source.ipynb")
RECORD_FIELDS = ("key", "params", "seconds", "notebook_sha256")


@dataclass(frozen=True)
class Entry:
    folder: Path
    chapter_id: str

    @property
    def notebook(self) -> Path:
        return self.folder / f"{self.chapter_id}.ipynb"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.chapter_id}.json"

    @property
    def failed(self) -> Path:
        return self.folder / f"{self.chapter_id}.failed.ipynb"


def profile_entry(chapter: Chapter, profile: str) -> Entry:
    return Entry(paths.executed_dir(profile), chapter.id)


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def custom_entry(chapter: Chapter, params: dict) -> Entry:
    return Entry(paths.run_dir(chapter.id, params_hash(params)), chapter.id)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class State:
    fresh: bool
    reason: str  # "" when fresh; otherwise why the entry cannot be used
    record: dict | None = None


def state(entry: Entry, key: str) -> State:
    """Whether the entry holds a complete, uncorrupted notebook for exactly this cache key."""
    nb, side = entry.notebook, entry.sidecar
    if not nb.exists() and not side.exists():
        return State(False, "not executed")
    if not side.exists():
        return State(False, f"corrupt: {side} is missing")
    if not nb.exists():
        return State(False, f"corrupt: {nb} is missing")
    try:
        rec = json.loads(side.read_text())
        if not isinstance(rec, dict) or any(f not in rec for f in RECORD_FIELDS):
            raise ValueError(f"expected a record with {', '.join(RECORD_FIELDS)}")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        return State(False, f"corrupt: {side} does not parse ({_first_line(e)})")
    try:
        if sha256(nb) != rec["notebook_sha256"]:
            return State(False, f"corrupt: {nb} is not the notebook its record describes", rec)
        meta = json.loads(nb.read_text()).get("metadata", {}).get("moebook", {})
    except (ValueError, OSError, UnicodeDecodeError, AttributeError) as e:
        return State(False, f"corrupt: {nb} does not parse ({_first_line(e)})", rec)
    if meta.get("key") != rec["key"]:
        return State(False, f"corrupt: {nb} was made for another cache key than its record's", rec)
    if rec["key"] != key:
        return State(False, "stale: its source, moe_lib, the lock or its parameters changed", rec)
    return State(True, "", rec)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


@contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM across the renames: an entry is replaced whole or not at all."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (ValueError, OSError):  # not the main thread: renames are still each atomic
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _write_temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(entry: Entry, notebook: bytes, record: dict) -> None:
    """Replace the entry by this notebook and record; on any error the old entry is untouched."""
    entry.folder.mkdir(parents=True, exist_ok=True)
    record = dict(record, notebook_sha256=hashlib.sha256(notebook).hexdigest())
    record.pop("nbval", None)
    tmp_nb = _write_temp(entry.notebook, notebook)
    try:
        tmp_side = _write_temp(entry.sidecar, (json.dumps(record, indent=1) + "\n").encode())
    except BaseException:
        tmp_nb.unlink(missing_ok=True)
        raise
    with _signals_held():
        os.replace(tmp_nb, entry.notebook)
        os.replace(tmp_side, entry.sidecar)
    entry.failed.unlink(missing_ok=True)


def keep_failed(entry: Entry, notebook: bytes | None) -> Path | None:
    """Write the failed notebook (with its traceback) beside the entry; None if there is none to keep."""
    if notebook is None:
        return None
    try:
        entry.folder.mkdir(parents=True, exist_ok=True)
        tmp = _write_temp(entry.failed, notebook)
        os.replace(tmp, entry.failed)
    except OSError:
        return None
    return entry.failed


def seconds(entry: Entry) -> float:
    """The recorded run time of the entry's notebook (0 when there is no readable record)."""
    try:
        return float(json.loads(entry.sidecar.read_text()).get("seconds", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def mark_checked(entry: Entry, notebook_sha: str) -> None:
    """Record that nbval passed on exactly this notebook (the sidecar gains ``nbval``)."""
    rec = json.loads(entry.sidecar.read_text())
    if rec.get("notebook_sha256") != notebook_sha:
        return
    rec["nbval"] = {"notebook_sha256": notebook_sha}
    tmp = _write_temp(entry.sidecar, (json.dumps(rec, indent=1) + "\n").encode())
    with _signals_held():
        os.replace(tmp, entry.sidecar)


def nbval_checked(entry: Entry, rec: dict | None) -> bool:
    """Did ``moebook check`` pass on exactly the notebook now in the entry?"""
    if not rec or not isinstance(rec.get("nbval"), dict):
        return False
    return rec["nbval"].get("notebook_sha256") == rec.get("notebook_sha256")


def sweep(folders: list[Path]) -> list[Path]:
    """Remove what an interrupted run (or an older moebook) left half-written; returns what it removed."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for pattern in LEFTOVERS:
            for p in folder.rglob(pattern):
                try:
                    p.unlink(missing_ok=True)
                except OSError:  # a read-only folder: the next run that can write removes it
                    continue
                removed.append(p)
    return removed
