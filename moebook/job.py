"""One chapter execution, self-contained, on this machine or on a Dask worker.

``execute(job)`` takes the chapter as notebook text plus its parameters, runs papermill in a child
process (``python -m moebook.job DIR``: papermill changes directory, which is not safe in threads,
and a child can be killed at the time limit), checks the executed notebook and returns it as bytes
with its record, so the machine that runs it needs no shared filesystem. It writes nothing outside
a temporary folder, which it removes. A chapter fails when it raises, runs past its time limit,
writes anything to stderr, or leaves an absolute path of the machine in its outputs or metadata.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

# The same thread counts in every mode (sequential, --jobs, --scheduler): BLAS reductions then run in
# the same order and outputs are byte-identical. OPENBLAS_CORETYPE and friends are left as they are.
PINNED_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
_TEXT_MIME = re.compile(r"^(text/|application/(json|javascript|vnd\.)|image/svg)")
_SITE = re.compile(r"/[^\s'\"]*?(?:site|dist)-packages")


def code_root() -> Path:
    """The folder whose moebook and moe_lib the chapters import.

    The project in the working directory when it holds both packages: that moe_lib is the one the
    cache key hashes, even when the moebook running this is installed from another checkout.
    Otherwise (a worker started elsewhere, an installed wheel) the folder of this moebook package.
    """
    cwd = Path.cwd().resolve()
    if (cwd / "moebook").is_dir() and (cwd / "moe_lib").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def _site_dirs() -> list[str]:
    dirs = set(site.getsitepackages()) | {site.getusersitepackages(), sysconfig.get_paths()["purelib"]}
    return sorted(str(Path(d).resolve()) for d in dirs if d)


def kernel_env(base: dict | None = None) -> dict[str, str]:
    """The chapter kernels' environment: this venv first on PATH, no Agg backend, no tqdm, pinned threads."""
    env = dict(os.environ if base is None else base)
    env.pop("MPLBACKEND", None)  # an inherited Agg backend silently drops every figure
    env["TQDM_DISABLE"] = "1"  # progress bars print timings, which nbval would compare
    env["PYTHONHASHSEED"] = "0"
    env.update(PINNED_THREADS)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    root = str(code_root())
    if root not in _site_dirs():  # a checkout: its moebook and moe_lib, not another copy
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


# --- what must be the same on every machine that runs chapters --------------------------------------

def _tree_digest(root: Path | None) -> str:
    h = hashlib.sha256()
    if root is not None and root.is_dir():
        for p in sorted(root.rglob("*.py")):
            if "__pycache__" not in p.parts:
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def fingerprint() -> dict:
    """Python, every installed distribution's version, and the moebook and moe_lib sources chapters use."""
    packages = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            packages[re.sub(r"[-_.]+", "-", name.lower())] = d.version
    root = code_root()  # the sources the chapters will import, not necessarily the ones running this
    lib = root / "moe_lib" if (root / "moe_lib").is_dir() else _package_dir("moe_lib")
    return {"python": sys.version.split()[0], "packages": packages,
            "moebook": _tree_digest(root / "moebook"), "moe_lib": _tree_digest(lib)}


def fingerprint_differences(mine: dict, theirs: dict) -> list[str]:
    """What differs between two fingerprints, as 'NAME THEIRS (client MINE)' phrases."""
    out = []
    for k in ("python", "moebook", "moe_lib"):
        if mine.get(k) != theirs.get(k):
            what = "sources" if k != "python" else "version"
            out.append(f"{k} {what} {theirs.get(k)} (client {mine.get(k)})")
    a, b = mine.get("packages", {}), theirs.get("packages", {})
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            out.append(f"{name} {b.get(name, 'absent')} (client {a.get(name, 'absent')})")
    return out


# --- checks of an executed notebook ------------------------------------------------------------------

def machine_paths(extra: list[str] = ()) -> list[str]:
    """Absolute paths of this machine that must never appear in a notebook readers download."""
    found = {str(Path.home()), tempfile.gettempdir(), "/tmp", sys.prefix, sys.base_prefix,
             str(code_root()), os.getcwd(), *_site_dirs(), *extra}
    return sorted({p.rstrip("/") for p in found if p and p.rstrip("/") not in ("", "/usr", "/usr/local")},
                  key=len, reverse=True)


def _texts(nb: dict):
    """(where, text) for every output text and every metadata block of an executed notebook."""
    yield "notebook metadata", json.dumps(nb.get("metadata", {}))
    for i, cell in enumerate(nb.get("cells", [])):
        yield f"cell {i} metadata", json.dumps(cell.get("metadata", {}))
        for out in cell.get("outputs", []) or []:
            kind = out.get("output_type")
            if kind == "stream":
                yield f"cell {i} output", "".join(out.get("text", ""))
            elif kind == "error":
                yield f"cell {i} output", "\n".join(out.get("traceback", []))
            for mime, value in (out.get("data") or {}).items():
                if _TEXT_MIME.match(mime):
                    text = value if isinstance(value, str) else json.dumps(value)
                    yield f"cell {i} output ({mime})", "".join(text)
            if out.get("metadata"):
                yield f"cell {i} output metadata", json.dumps(out["metadata"])


def problems(nb: dict, forbidden: list[str]) -> str:
    """The first reason this executed notebook must not be published, or ''."""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", "")).strip().splitlines() or [""]
                return f"stderr output in cell {i} (chapters must print no warnings): {text[0][:160]}"
    pattern = re.compile("|".join(re.escape(p) + r"(?![\w.-])" for p in forbidden))
    for where, text in _texts(nb):
        m = pattern.search(text) or _SITE.search(text)
        if m:
            end = re.search(r"[\s'\"\\]", text[m.start():])
            shown = text[m.start(): m.start() + (end.start() if end else 80)][:120]
            return f"absolute path of the build machine in {where}: {shown}"
    return ""


def claims(nb: dict) -> list[dict]:
    """Every claim that ``Claims.report()`` recorded (``application/json`` with key moebook_claims)."""
    rows = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = (out.get("data") or {}).get("application/json")
            if isinstance(data, dict) and isinstance(data.get("moebook_claims"), dict):
                for c in data["moebook_claims"].get("claims", []):
                    if isinstance(c, dict):
                        rows.append({k: c.get(k) for k in ("name", "kind", "holds", "finding")})
    return rows


# --- the execution ---------------------------------------------------------------------------------

def _kill_tree(pid: int) -> None:
    import psutil
    try:
        proc = psutil.Process(pid)
        family = proc.children(recursive=True) + [proc]
    except psutil.NoSuchProcess:
        return
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def _announce(job: dict, state: str) -> None:
    """Tell a Dask client that this chapter is running (for its live counter); nothing elsewhere."""
    if "distributed" not in sys.modules:
        return
    try:
        from distributed import get_worker
        get_worker().log_event("moebook", {"chapter": job["chapter"], "state": state})
    except (ImportError, ValueError):
        pass


def execute(job: dict) -> dict:
    """Run one chapter: {chapter, notebook (ipynb text), params, key, timeout, forbidden, fingerprint}."""
    host = socket.gethostname()
    if job.get("fingerprint"):
        diff = fingerprint_differences(job["fingerprint"], fingerprint())
        if diff:
            return {"status": "FAILED", "seconds": 0.0, "notebook": None, "claims": [], "host": host,
                    "error": f"worker {host} has other package versions than the client: "
                             + "; ".join(diff[:5]) + ("; ..." if len(diff) > 5 else "")}
    _announce(job, "running")
    try:
        work = Path(tempfile.mkdtemp(prefix="moebook-"))
    except OSError as e:
        return {"status": "FAILED", "seconds": 0.0, "notebook": None, "claims": [], "host": host,
                "error": f"cannot make a temporary folder on {host} ({e.strerror or e})"}
    try:
        return _execute_in(work, job, host)
    except OSError as e:  # e.g. a full /tmp while writing the inputs
        return {"status": "FAILED", "seconds": 0.0, "notebook": None, "claims": [], "host": host,
                "error": f"cannot run the chapter on {host}: {e.strerror or e}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _execute_in(work: Path, job: dict, host: str) -> dict:
    (work / "input.ipynb").write_text(job["notebook"])
    (work / "job.json").write_text(json.dumps({"params": job["params"]}))
    (work / "cwd").mkdir()
    timeout = float(job["timeout"])
    start = time.perf_counter()
    with open(work / "log.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moebook.job", str(work)], cwd=work,
                                env=kernel_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            rc = None
        except BaseException:  # interrupted: the kernel must not outlive us
            _kill_tree(proc.pid)
            raise
    seconds = time.perf_counter() - start
    out: dict = {"status": "ok", "error": "", "seconds": seconds, "notebook": None, "claims": [],
                 "host": host}
    if rc is None:
        out["error"] = f"timed out after {timeout:g} s (the time limit of this run; see --timeout)"
    elif rc != 0:
        err = work / "error.txt"
        log_lines = (work / "log.txt").read_text(errors="replace").strip().splitlines()
        out["error"] = (err.read_text().strip() if err.exists() else
                        f"the executor exited with status {rc}: {log_lines[-1] if log_lines else ''}")
    nb = None
    if (work / "output.ipynb").exists():
        try:
            nb = json.loads((work / "output.ipynb").read_text())
        except (ValueError, OSError) as e:
            out["error"] = out["error"] or f"the executed notebook is not readable: {e}"
    elif not out["error"]:
        out["error"] = "papermill wrote no executed notebook"
    if nb is not None:
        _tidy(nb, job)
        if not out["error"]:
            out["error"] = problems(nb, machine_paths(job.get("forbidden", [])) + [str(work)])
        out["claims"] = claims(nb)
        out["notebook"] = (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    if out["error"]:
        out["status"] = "FAILED"
    return out


def _tidy(nb: dict, job: dict) -> None:
    """Relative paths in papermill's metadata, and the cache key of this run."""
    meta = nb.setdefault("metadata", {})
    pm = meta.setdefault("papermill", {})
    pm["input_path"] = f"notebooks/{job['chapter']}.md"
    pm["output_path"] = f"{job['chapter']}.ipynb"
    meta["moebook"] = {"key": job["key"], "params": job["params"]}


# --- the child process -------------------------------------------------------------------------------

def _watch_parent() -> None:
    """If the process that started us dies (a worker killed), stop the kernel and exit."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            import psutil
            for p in psutil.Process().children(recursive=True):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            os._exit(3)


def _child(work: Path) -> int:
    threading.Thread(target=_watch_parent, daemon=True).start()
    import papermill
    from traitlets.config import Config

    params = json.loads((work / "job.json").read_text())["params"]
    # IPC transport: no "running over TCP without encryption" warning, no ports.
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(work / "kernel")}})
    try:
        papermill.execute_notebook(str(work / "input.ipynb"), str(work / "output.ipynb"),
                                   parameters=params, kernel_name="python3", progress_bar=False,
                                   cwd=str(work / "cwd"), config=config)
    except papermill.PapermillExecutionError as e:
        (work / "error.txt").write_text(f"{e.ename}: {e.evalue}".strip().splitlines()[0][:2000])
        return 1
    except Exception as e:  # noqa: BLE001 - report it; the parent decides
        (work / "error.txt").write_text(f"{type(e).__name__}: {e}".strip().splitlines()[0][:2000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))
