"""moebook run on Dask: the same outputs sequentially, with --jobs and through a scheduler; a worker
that dies is retried once; workers with other versions are refused.

The scheduler and its worker are started here, on 127.0.0.1, in their own folder (no shared
filesystem with the project); they stop at the end of the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pipeline_project import chapter, executed, make_project, outputs

from moebook import cli, cluster, job

pytest.importorskip("distributed")

CODE_ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"

BLAS = """\
import os
import numpy as np
rng = np.random.default_rng(n)
a = rng.standard_normal((400, 400))
b = a @ a.T
print(repr(float(b.sum())), repr(float(np.linalg.eigvalsh(b)[-1])))
print([os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')])"""

HASHES = """\
import random
random.seed(n)
print(hash('moebook'), random.random(), sorted({'b', 'a', 'c'}), scale * n)"""


def _env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    e["DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT"] = "10m"
    return e


@contextlib.contextmanager
def _scheduler(where: Path, env: dict):
    """`dask scheduler` and one `dask worker` (1 thread, with a nanny), as the README starts them."""
    where.mkdir(parents=True, exist_ok=True)
    file = where / "scheduler.json"
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)], cwd=where, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 90
        while not file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert file.exists(), "the Dask scheduler did not start"
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"], cwd=where, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        import distributed
        with distributed.Client(address, timeout="30s") as c:
            c.wait_for_workers(1, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    with _scheduler(tmp_path_factory.mktemp("dask"), _env()) as address:
        yield address


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj", {"p9_m_blas": chapter("P9-M", "Blas", BLAS),
                                            "p9_h_hash": chapter("P9-H", "Hash", HASHES)})
    monkeypatch.chdir(root)
    return root


def snapshot(root: Path) -> dict:
    return {n: outputs(executed(root, f"{n}.ipynb")) for n in ("p9_m_blas", "p9_h_hash")}


def test_outputs_are_identical_in_all_three_modes(project, scheduler, capsys):
    assert cli.main(["run", "--all"]) == 0
    sequential = snapshot(project)
    assert all(cells[-1] for cells in sequential.values())  # something was printed
    assert "['1', '1', '1']" in json.dumps(sequential)

    assert cli.main(["run", "--all", "--force", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "[done 2 / running 0 / failed 0 / waiting 0]" in out and "running 1" in out
    assert snapshot(project) == sequential

    assert cli.main(["run", "--all", "--force", "--scheduler", scheduler]) == 0
    assert snapshot(project) == sequential
    assert cli.main(["run", "--all", "--scheduler", scheduler]) == 0  # the cache works as sequentially
    assert capsys.readouterr().out.count("cached (ran in") == 2


def killer(marker: Path | None) -> str:
    """A chapter that kills the Dask worker running it (the kernel's grandparent): once, or always."""
    kill = "psutil.Process().parent().parent().kill()\ntime.sleep(60)"
    if marker is None:
        return f"import time\nimport psutil\n{kill}"
    return (f"import pathlib\nimport time\nimport psutil\nm = pathlib.Path({str(marker)!r})\n"
            f"if not m.exists():\n    m.write_text('x')\n{textwrap.indent(kill, '    ')}\nprint('survived')")


def test_a_worker_that_dies_is_retried_once(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "died-once"
    root = make_project(tmp_path / "proj", {"p9_d_dies_once": chapter("P9-D", "Dies once", killer(marker))})
    monkeypatch.chdir(root)
    assert cli.main(["run", "--all", "--jobs", "1"]) == 0
    assert marker.exists()  # the first attempt killed its worker; the retry ran to the end
    assert "survived" in executed(root, "p9_d_dies_once.ipynb").read_text()
    assert "p9_d_dies_once  ok" in capsys.readouterr().out


def test_a_worker_that_dies_twice_is_reported(project, scheduler, capsys):
    (project / "notebooks" / "p9_k_kills.md").write_text(chapter("P9-K", "Kills", killer(None)))
    assert cli.main(["run", "p9_k", "--scheduler", scheduler]) == 1
    out = capsys.readouterr().out
    assert "p9_k_kills  FAILED" in out and "died, and again on the retry" in out
    assert cli.main(["run", "p9_h", "--scheduler", scheduler]) == 0  # the cluster still works


def test_a_local_cluster_reports_chapters_left_without_workers():
    with cluster.connect(1, None) as c:
        assert c.client.run_on_scheduler(cluster._scheduler_settings) == (1, 600.0)


def test_chapters_left_without_workers_are_reported(tmp_path, monkeypatch, capsys):
    # a scheduler started as the README says, and one worker; the chapter kills that worker's
    # nanny, then the worker: no worker is left, and the retried task is reported as not run
    # instead of the client waiting for ever
    env = dict(_env(), DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT="2s")
    with _scheduler(tmp_path / "dask", env) as address:
        gone = ("import time\nimport psutil\nw = psutil.Process().parent().parent()\n"
                "w.parent().kill()\nw.kill()\ntime.sleep(60)")
        root = make_project(tmp_path / "proj", {"p9_g_gone": chapter("P9-G", "Gone", gone)})
        monkeypatch.chdir(root)
        assert cli.main(["run", "--all", "--scheduler", address]) == 1
    out = capsys.readouterr().out
    assert "p9_g_gone  FAILED" in out and "the cluster had no worker left for 2 s" in out
    assert not executed(root, "p9_g_gone.ipynb").exists()


def test_workers_with_other_versions_are_refused(project, scheduler, monkeypatch, capsys):
    real = job.fingerprint()
    other = dict(real, packages=dict(real["packages"], torch="0.0.1"))
    monkeypatch.setattr(cluster, "fingerprint", lambda: other)
    assert cli.main(["run", "p9_h", "--scheduler", scheduler]) == 2
    err = capsys.readouterr().err.strip()
    assert "has other versions than the client, refusing it: torch" in err and "(client 0.0.1)" in err
    assert len(err.splitlines()) == 1 and not executed(project, "p9_h_hash.ipynb").exists()


def test_a_job_refuses_a_worker_with_other_versions():
    real = job.fingerprint()
    out = job.execute({"chapter": "x", "fingerprint": dict(real, moe_lib="0" * 16)})
    assert out["status"] == "FAILED"
    assert "other package versions than the client: moe_lib sources" in out["error"]


def test_an_unreachable_scheduler_is_one_line(project, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    assert cli.main(["run", "p9_h", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moebook run: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")
    assert len(err.splitlines()) == 1


def test_fingerprints_name_what_differs():
    a = {"python": "3.11.7", "moebook": "x", "moe_lib": "y", "packages": {"torch": "2.13.0", "numpy": "2"}}
    b = dict(a, packages={"torch": "2.12.0"})
    assert job.fingerprint_differences(a, b) == ["numpy absent (client 2)", "torch 2.12.0 (client 2.13.0)"]
    assert job.fingerprint_differences(a, a) == []


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_dask_dirs():
    yield
    shutil.rmtree(Path.cwd() / "dask-worker-space", ignore_errors=True)


def test_chapters_import_the_project_in_the_working_directory(tmp_path, monkeypatch):
    # moebook installed from one checkout, run in another: kernels and fingerprints must use the
    # project's sources (the ones the cache key hashes), not the installed checkout's
    for pkg in ("moebook", "moe_lib"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    assert job.code_root() == tmp_path.resolve()
    assert job.kernel_env({"PATH": "/usr/bin"})["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path.resolve())
    before = job.fingerprint()
    (tmp_path / "moe_lib" / "__init__.py").write_text("X = 2\n")
    assert job.fingerprint()["moe_lib"] != before["moe_lib"]
    assert job.fingerprint_differences(before, job.fingerprint()) == [
        f"moe_lib sources {job.fingerprint()['moe_lib']} (client {before['moe_lib']})"]
