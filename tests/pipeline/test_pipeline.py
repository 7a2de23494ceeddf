"""The moebook pipeline on throw-away projects of tiny chapters (tests/pipeline_project.py).

A few tests execute chapters for real (a kernel each); the others use a fake executor that returns
what ``job.execute`` returns, so they test the storage, the cache and the messages in milliseconds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pipeline_project import chapter, copy_project, executed, make_project

from moebook import cli, job, params, store
from moebook.chapters import short_label

CODE_ROOT = Path(__file__).resolve().parents[2]


def moebook(root: Path, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process (stdout/stderr of the kernels included)."""
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "moebook.cli", *args], cwd=root, env=e,
                          capture_output=True, text=True, **kw)


def fake_execute(calls: list | None = None, status: str = "ok", error: str = "", notebook=True):
    """A stand-in for job.execute: a valid executed notebook for the job's key, at once."""
    def run(j):
        if calls is not None:
            calls.append(j["chapter"])
        nb = {"cells": [], "metadata": {"moebook": {"key": j["key"], "params": j["params"]}},
              "nbformat": 4, "nbformat_minor": 5}
        return {"status": status, "error": error, "seconds": 0.25, "host": "here", "claims": [],
                "notebook": (json.dumps(nb) + "\n").encode() if notebook else None}
    return run


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A project with a good and a failing chapter, run once for real with `moebook run --all`."""
    root = make_project(tmp_path_factory.mktemp("template") / "proj")
    env = dict(os.environ, MPLBACKEND="Agg")  # must not reach the kernel: it drops every figure
    proc = moebook(root, "run", "--all", env=env)
    return root, proc


@pytest.fixture
def project(template, tmp_path, monkeypatch):
    root = copy_project(template[0], tmp_path / "proj")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    root = make_project(tmp_path / "fresh")
    monkeypatch.chdir(root)
    return root


def test_short_label():
    assert short_label("P2-T5.3") == "p2_t5_3"
    assert short_label("P2-D4.1-4.3+T4.4") == "p2_d4_1_4_3_t4_4"


def test_list(fresh, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "p9_a_good" in out and "p9_b_1" in out and "Bad" in out


def test_list_with_a_profile_shows_each_notebooks_state(project, capsys):
    assert cli.main(["list", "--profile", "book"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["p9_a_good"].split()[1] == "fresh"
    assert "theorem 1/1, derived 0/1 (1 finding)" in rows["p9_a_good"]
    assert "not executed, failed" in rows["p9_b_bad"]  # failed, and no earlier good notebook
    assert rows["1"].startswith("1 of 2 fresh in the book profile")
    (project / "notebooks" / "p9_a_good.md").write_text(
        (project / "notebooks" / "p9_a_good.md").read_text() + "\n")
    assert cli.main(["list", "--profile", "book"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["p9_a_good", "stale"]


def test_cluster_runs_submit_the_longest_known_chapters_first(tmp_path):
    from moebook import cluster
    entries = {}
    for name, secs in (("a", None), ("b", 5.0), ("c", 50.0), ("d", None)):
        e = store.Entry(tmp_path / name, name)
        if secs is not None:
            e.sidecar.parent.mkdir(parents=True, exist_ok=True)
            e.sidecar.write_text(json.dumps({"seconds": secs}))
        entries[name] = e
    plans = [(i, type("P", (), {"entry": entries[n]})(), "") for i, n in enumerate("abcd")]
    assert [t[0] for t in cluster.submission_order(plans)] == [0, 3, 2, 1]  # unknown first, then longest


def test_run_end_to_end(template):
    root, proc = template
    assert proc.returncode == 1, proc.stderr  # one chapter failed, the other still ran
    out = proc.stdout
    assert "p9_a_good  ok" in out and "p9_b_bad   FAILED" in out and "boom" in out
    good = executed(root, "p9_a_good.ipynb")
    text = good.read_text()
    # No Agg backend, no tqdm, threads pinned to one, and the kernel talks over IPC (no TCP warning).
    assert "1.5 1 module://matplotlib_inline.backend_inline 1 1 1" in text
    assert "without encryption" not in proc.stderr + proc.stdout
    rec = json.loads(executed(root, "p9_a_good.json").read_text())
    assert rec["params"] == {"n": 3, "scale": 0.5, "flag": False, "name": "float32", "grid": [8, 16],
                             "lrs": [0.001, 0.01]}
    assert rec["notebook_sha256"] == store.sha256(good)
    assert [c["kind"] for c in rec["claims"]] == ["theorem", "derived"]
    failed = executed(root, "p9_b_bad.failed.ipynb")
    assert "RuntimeError" in failed.read_text() and f"traceback kept in {failed.relative_to(root)}" in out
    assert not executed(root, "p9_b_bad.ipynb").exists()
    assert not [p for p in executed(root, "").iterdir() if "partial" in p.name or "source" in p.name]
    nb = json.loads(text)
    assert nb["metadata"]["papermill"]["input_path"] == "notebooks/p9_a_good.md"
    assert nb["metadata"]["moebook"]["key"] == rec["key"]


def test_cached_run_prints_the_original_run_time(project, capsys):
    seconds = json.loads(executed(project, "p9_a_good.json").read_text())["seconds"]
    assert cli.main(["run", "p9_a"]) == 0
    out = capsys.readouterr().out
    assert f"cached (ran in {seconds:.1f} s)" in out and "ran in" in out.splitlines()[-1]


def test_cache_follows_source_library_and_lock(project, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(job, "execute", fake_execute(calls))
    for change in (lambda: (project / "moe_lib" / "lib.py").write_text("X = 2\n"),
                   lambda: (project / "requirements.lock").write_text("numpy==3\n"),
                   lambda: (project / "notebooks" / "p9_a_good.md").write_text(
                       (project / "notebooks" / "p9_a_good.md").read_text() + "\nMore prose.\n")):
        change()
        assert cli.main(["run", "p9_a"]) == 0
        assert cli.main(["run", "p9_a"]) == 0
    assert calls == ["p9_a_good"] * 3
    assert capsys.readouterr().out.count("cached (ran in 0.2 s)") == 3


# --- issue 12, item 1: a failed run never destroys the last good notebook ----------------------------

def test_failed_run_keeps_the_last_good_notebook(project, monkeypatch, capsys):
    entry = store.Entry(executed(project, ""), "p9_a_good")
    before = (entry.notebook.read_bytes(), entry.sidecar.read_bytes())
    monkeypatch.setattr(job, "execute", fake_execute(status="FAILED", error="ValueError: bad"))
    assert cli.main(["run", "p9_a", "--force"]) == 1
    out = capsys.readouterr().out
    assert (entry.notebook.read_bytes(), entry.sidecar.read_bytes()) == before
    assert f"traceback kept in {entry.failed.relative_to(project)}" in out and entry.failed.exists()
    # Nothing to keep (e.g. the kernel never started): no claim that a traceback was kept.
    entry.failed.unlink()
    monkeypatch.setattr(job, "execute", fake_execute(status="FAILED", error="X: y", notebook=False))
    assert cli.main(["run", "p9_a", "--force"]) == 1
    out = capsys.readouterr().out
    assert "traceback kept" not in out and "no executed notebook to keep" in out
    assert (entry.notebook.read_bytes(), entry.sidecar.read_bytes()) == before


@pytest.mark.parametrize("fail_at", [1, 2])
def test_full_disk_leaves_the_previous_entry_whole(project, monkeypatch, capsys, fail_at):
    entry = store.Entry(executed(project, ""), "p9_a_good")
    before = (entry.notebook.read_bytes(), entry.sidecar.read_bytes())
    real, count = store._write_temp, []

    def full_disk(path, data):
        count.append(path)
        if len(count) == fail_at:
            path.with_name(path.name + ".partial").write_bytes(data[: len(data) // 2])
            os.remove(path.with_name(path.name + ".partial"))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store, "_write_temp", full_disk)
    monkeypatch.setattr(job, "execute", fake_execute())
    assert cli.main(["run", "p9_a", "--force"]) == 1
    out = capsys.readouterr().out
    assert "could not write" in out and "No space left on device" in out
    assert (entry.notebook.read_bytes(), entry.sidecar.read_bytes()) == before
    assert not list(executed(project, "").glob("*partial*"))


def test_read_only_folder_leaves_the_previous_entry_whole(project, monkeypatch, capsys):
    def read_only(path, data):  # what open() says in a read-only folder (root ignores chmod)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(store, "_write_temp", read_only)
    executed(project, "").chmod(0o555)
    entry = store.Entry(executed(project, ""), "p9_a_good")
    before = entry.notebook.read_bytes()
    monkeypatch.setattr(job, "execute", fake_execute())
    try:
        assert cli.main(["run", "p9_a", "--force"]) == 1
    finally:
        executed(project, "").chmod(0o755)
    assert "Permission denied" in capsys.readouterr().out and entry.notebook.read_bytes() == before


# --- item 2: a run with -p goes to its own folder; build uses profiles only --------------------------

def test_parameters_run_goes_to_its_own_folder(project, capsys):
    profile_nb = executed(project, "p9_a_good.ipynb")
    before = profile_nb.read_bytes()
    assert cli.main(["run", "p9_a", "-p", "scale", "2.5"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "notebook:" in x)
    path = project / line.split("notebook:")[1].strip()
    assert path.parent.parent == project / "_build" / "runs" and path.parent.name.startswith("p9_a_good-")
    assert "7.5 1" in path.read_text() and profile_nb.read_bytes() == before
    assert out.splitlines()[-1].endswith(f"in {path.relative_to(project)}")  # the summary says where
    assert cli.main(["run", "p9_a", "-p", "scale", "2.5"]) == 0  # cached in its own folder
    assert "cached" in capsys.readouterr().out

    from moebook.build import stage, status_page
    from moebook.chapters import all_chapters
    good = [c for c in all_chapters() if c.id == "p9_a_good"]
    (project / "book").mkdir()
    (project / "_config.yml").write_text("title: t\n")
    root = stage(good, "book", strict=False)
    staged = json.loads((root / "notebooks" / "p9_a_good.ipynb").read_text())
    shown = json.loads(before)
    # The book shows the profile's notebook, less the claims' JSON record (myst-nb cannot render it).
    def mimes(nb):
        return [m for c in nb["cells"] for o in c.get("outputs", []) for m in o.get("data", {})]
    assert "application/json" in mimes(shown) and "application/json" not in mimes(staged)
    for cell in shown["cells"]:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop("application/json", None)
    assert staged == shown
    page = status_page(good, "book", strict=False)
    assert "| none |" in page and "scale" not in page


# --- item 3: check refuses stale or missing notebooks; a pass is recorded ----------------------------

def test_check_refuses_stale_or_missing_and_records_a_pass(project, capsys):
    assert cli.main(["check", "p9_b_1"]) == 1
    assert "p9_b_bad (not executed)" in capsys.readouterr().err
    src = project / "notebooks" / "p9_a_good.md"
    original = src.read_text()
    src.write_text(original.replace("import os", "import os\nraise RuntimeError('x')"))
    assert cli.main(["check", "p9_a"]) == 1
    assert "p9_a_good (stale: its source" in capsys.readouterr().err
    src.write_text(original)

    from moebook.build import status_page
    from moebook.chapters import all_chapters
    good = [c for c in all_chapters() if c.id == "p9_a_good"]
    assert "| no |" in status_page(good, "book", strict=True)
    assert cli.main(["check", "p9_a"]) == 0
    rec = json.loads(executed(project, "p9_a_good.json").read_text())
    assert rec["nbval"]["notebook_sha256"] == store.sha256(executed(project, "p9_a_good.ipynb"))
    page = status_page(good, "book", strict=True)
    assert "| yes |" in page and "1 of 1 chapters" in page and "(`-W`): yes" in page
    assert "| yes | theorem 1/1, derived 0/1 (1 finding) |" in page


def test_rerun_drops_the_nbval_record(project, monkeypatch):
    side = executed(project, "p9_a_good.json")
    rec = json.loads(side.read_text())
    side.write_text(json.dumps(rec | {"nbval": {"notebook_sha256": rec["notebook_sha256"]}}))
    entry = store.Entry(executed(project, ""), "p9_a_good")
    assert store.nbval_checked(entry, json.loads(side.read_text()))
    monkeypatch.setattr(job, "execute", fake_execute())
    assert cli.main(["run", "p9_a", "--force"]) == 0
    assert not store.nbval_checked(entry, json.loads(side.read_text()))


# --- item 6: SIGTERM is handled like SIGINT; leftovers are swept ------------------------------------

def test_sigterm_leaves_nothing_half_written(project):
    src = project / "notebooks" / "p9_a_good.md"
    src.write_text(src.read_text().replace("import os", "import time\ntime.sleep(120)\nimport os"))
    entry = store.Entry(executed(project, ""), "p9_a_good")
    before = (entry.notebook.read_bytes(), entry.sidecar.read_bytes())
    e = dict(os.environ, PYTHONPATH=str(CODE_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "moebook.cli", "run", "p9_a"], cwd=project, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and not any("ipykernel" in " ".join(p.cmdline())
                                             for p in me.children(recursive=True)):
        time.sleep(0.2)
    family = me.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert (entry.notebook.read_bytes(), entry.sidecar.read_bytes()) == before
    assert sorted(p.name for p in executed(project, "").iterdir()) == [
        "p9_a_good.ipynb", "p9_a_good.json", "p9_b_bad.failed.ipynb"]
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"


def test_leftovers_are_swept_at_the_start_of_a_run(project, monkeypatch, capsys):
    d = executed(project, "")
    for name in ("p9_a_good.partial.ipynb", "p9_a_good.source.ipynb", "p9_a_good.json.partial",
                 "p9_a_good.ipynb.partial"):
        (d / name).write_text("{")
    (project / "_build" / "runs" / "p9_a_good-0").mkdir(parents=True)
    (project / "_build" / "runs" / "p9_a_good-0" / "p9_a_good.ipynb.partial").write_text("{")
    assert cli.main(["run", "p9_a"]) == 0
    assert "removed 5 half-written file(s)" in capsys.readouterr().out
    assert not list((project / "_build").rglob("*partial*")) and not list(d.glob("*.source.ipynb"))


# --- item 7: values are read against the default's type ---------------------------------------------

@pytest.mark.parametrize("text, default, value", [
    ("010", 16, 10), ("-3", 1, -3), ("1e-3", 0.001, 0.001), ("2", 0.5, 2.0), (".5", 1.0, 0.5),
    ("true", False, True), ("False", True, False), ("2024-01-01", "x", "2024-01-01"),
    ("010", "x", "010"), (" spaced ", "x", " spaced "), ("[8, 016]", [1, 2], [8, 16]),
    ("[1, 2.5]", [0.1], [1.0, 2.5]), ("[]", [1], []), ("[a, 'b c']", ["x"], ["a", "b c"]),
    ("[[1, 2], [3]]", [[0]], [[1, 2], [3]]), ("[true, false]", [True], [True, False]),
])
def test_values_parse_against_the_default(text, default, value):
    got = params.parse_text("x", text, default)
    assert got == value and type(got) is type(value)
    if isinstance(value, list) and value and not isinstance(value[0], list):
        assert all(type(a) is type(b) for a, b in zip(got, value, strict=True))


# --- item 8: a time limit per chapter; the run goes on ------------------------------------------------

def test_time_limit_fails_the_chapter_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path / "slow", {
        "p9_s_slow": chapter("P9-S", "Slow", "import time\ntime.sleep(300)"),
        "p9_t_next": chapter("P9-T", "Next", "print(n)")})
    monkeypatch.chdir(root)
    start = time.time()
    assert cli.main(["run", "--all", "--timeout", "3"]) == 1
    out = capsys.readouterr().out
    assert "p9_s_slow  FAILED" in out and "timed out after 3 s" in out
    assert "[2/2] p9_t_next" in out and "p9_t_next  " in out.splitlines()[-1]
    assert time.time() - start < 60
    assert not psutil.Process().children(recursive=True)  # the kernel was killed with its runner


# --- issue 7, item 5: stderr output or a machine path fails the chapter ------------------------------

def test_stderr_or_machine_paths_fail_the_chapter(tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path / "leaks", {
        "p9_w_warns": chapter("P9-W", "Warns", "import warnings\nwarnings.warn('careful')"),
        "p9_x_path": chapter("P9-X", "Path", "import os\nprint('here:', os.getcwd())")})
    monkeypatch.chdir(root)
    assert cli.main(["run", "--all"]) == 1
    out = capsys.readouterr().out
    assert "p9_w_warns  FAILED" in out and "stderr output in cell" in out and "careful" in out
    assert "p9_x_path   FAILED" in out and "absolute path of the build machine in cell" in out
    assert executed(root, "p9_w_warns.failed.ipynb").exists()
    assert not executed(root, "p9_x_path.ipynb").exists()


@pytest.mark.parametrize("output, found", [
    ({"output_type": "stream", "name": "stdout", "text": "all fine 0.5\n"}, ""),
    ({"output_type": "stream", "name": "stderr", "text": "x.py:3: UserWarning: w\n"}, "stderr output"),
    ({"output_type": "stream", "name": "stdout", "text": f"{Path.home()}/data.csv\n"}, "absolute path"),
    ({"output_type": "stream", "name": "stdout", "text": "/tmp/x\n"}, "absolute path"),
    ({"output_type": "display_data", "metadata": {},
      "data": {"text/html": "<a href='/opt/venv/lib/python3.11/site-packages/m.py'>"}}, "site-packages"),
    ({"output_type": "display_data", "metadata": {}, "data": {"image/png": "L3RtcC8vdG1wLw=="}}, ""),
    ({"output_type": "stream", "name": "stdout", "text": "/rootless and /tmpfile are words\n"}, ""),
])
def test_problems_of_an_executed_notebook(output, found):
    nb = {"metadata": {}, "cells": [{"cell_type": "code", "metadata": {}, "outputs": [output]}]}
    msg = job.problems(nb, job.machine_paths())
    assert (found in msg) if found else msg == ""


def test_machine_path_in_metadata_is_found():
    nb = {"metadata": {"papermill": {"input_path": str(CODE_ROOT / "x.ipynb")}}, "cells": []}
    assert "notebook metadata" in job.problems(nb, job.machine_paths())


# --- builds: the full profile has its own folder and status page ------------------------------------

def test_full_profile_builds_into_its_own_folder(project, monkeypatch, capsys):
    from moebook import build as B
    (project / "notebooks" / "full_profile.yml").write_text("p9_a_good:\n  n: 010\n  lrs: [1e-3]\n")
    (project / "notebooks" / "p9_b_bad.md").unlink()
    (project / "book").mkdir()
    (project / "_config.yml").write_text("title: t\n")
    monkeypatch.setattr(job, "execute", fake_execute())
    assert cli.main(["run", "--all", "--profile", "full"]) == 0
    rec = json.loads(executed(project, "p9_a_good.json", "full").read_text())
    assert rec["params"]["n"] == 10 and rec["params"]["lrs"] == [0.001]

    def fake_jb(cmd):
        out = Path(cmd[cmd.index("--path-output") + 1]) / "_build" / "html"
        out.mkdir(parents=True)
        (out / "index.html").write_text("full")
        return 0

    monkeypatch.setattr(B.subprocess, "call", fake_jb)
    assert cli.main(["build", "--profile", "full"]) == 0
    assert (project / "_build" / "html-full" / "index.html").read_text() == "full"
    assert "html-full" in capsys.readouterr().out
    page = (project / "_build" / "stage" / "full" / "book" / "status.md").read_text()
    assert "full profile" in page and "`n=10`, `lrs=[0.001]`" in page and "(`-W`): no" in page


def test_full_disk_keeps_no_truncated_failed_notebook(project, monkeypatch, capsys):
    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_temp", full_disk)
    monkeypatch.setattr(job, "execute", fake_execute(status="FAILED", error="ValueError: bad"))
    entry = store.Entry(executed(project, ""), "p9_a_good")
    before = entry.notebook.read_bytes()
    assert cli.main(["run", "p9_a", "--force"]) == 1
    out = capsys.readouterr().out
    assert "no executed notebook to keep" in out and "traceback kept" not in out
    assert not entry.failed.exists() and entry.notebook.read_bytes() == before
