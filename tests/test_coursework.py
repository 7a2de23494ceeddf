"""Coursework: assignments of every marked chapter, graded with otter (no container, no network).

For each chapter with a '# BEGIN QUESTION' raw cell: the student notebook carries none of the
solution lines; the instructor's solution gets full points; the untouched student notebook gets
less, with the failing claims named; a wrong answer loses exactly that question's points. A fresh
venv outside the checkout (wheel + lock) runs a downloaded chapter and a student notebook: it is
made once per session (a few minutes, mostly pip reading its cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from moebook import coursework as cw
from moebook.chapters import UsageError, all_chapters

MARKED = [c for c in all_chapters() if cw.questions(cw.chapter_notebook(c))]

# A wrong answer per chapter: the student code that replaces the stub of the (first) question.
WRONG = {
    "p2_t5_3_deep_moe_cubes": "zz = np.linspace(0, 3, 300001)\n"
    "ratios = [p2c.interpolation_error(p2c.cube_subfunction, 1, i, 256, zz) for i in (1, 2, 3)]",
    "p2_t5_2_deep_moe": "net2 = p2p.build_product_moe(factors[1:3])",
    "p2_c4_9_two_layer_experts": "n_feat = 20000\n_g = np.random.default_rng(0)\n"
    "w_feat = _g.standard_normal((n_feat, 3))\nb_feat = _g.uniform(-np.sqrt(3), np.sqrt(3), n_feat)\n"
    "bend_frac = float(np.mean(np.abs(w_feat @ np.full(3, 0.5) + b_feat) < 0.5))",
    "p1_r2_tradeoff": "f, lam = pl.target(target_name, 2)\nnet = pl.build_e1(f, 2, 4, 1)",
    "p3_d4_growth": "m_cross = 1",
}


def test_strip_solutions_spans_cells():
    text = "a\n```{solution-start} x\n:class: dropdown\n```\nanswer\n"
    kept, inside = cw.strip_solutions(text, False)
    assert (kept, inside) == ("a", True)
    kept, inside = cw.strip_solutions("more answer\n```{solution-end}\n```\nb", inside)
    assert (kept, inside) == ("b", False)
    kept, _ = cw.strip_solutions("c\n````{solution} x\n:class: dropdown\n\nold answer\n````\nd", False)
    assert kept == "c\nd"


def test_unmarked_chapter_is_a_usage_error():
    unmarked = next(c for c in all_chapters() if c not in MARKED)
    with pytest.raises(UsageError, match="no graded exercise"):
        cw.master_notebook(unmarked)


def test_cli_messages(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    run = [sys.executable, "-m", "moebook.cli"]
    r = subprocess.run(run + ["assign", "no_such_chapter"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "no_such_chapter" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "x.ipynb"
    bad.write_text("not json")
    bundle = tmp_path / "b.zip"
    import zipfile
    zipfile.ZipFile(bundle, "w").close()
    r = subprocess.run(run + ["grade", str(bundle), str(bad)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not a Jupyter notebook" in r.stderr
    r = subprocess.run(run + ["grade", str(bad), str(bad)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not an autograder bundle" in r.stderr


@pytest.fixture(scope="session")
def assignments(tmp_path_factory):
    out = tmp_path_factory.mktemp("assign")
    wheel = cw.build_wheel(out / "dist")
    return {c.id: cw.assign(c, out, wheel) for c in MARKED}, wheel


def test_every_part_has_a_marked_chapter():
    assert len([c for c in MARKED if c.paper == "P2"]) >= 3
    assert {c.paper for c in MARKED} >= {"P1", "P2", "P3"}


@pytest.mark.parametrize("chapter", MARKED, ids=lambda c: c.id)
def test_student_notebook_has_no_solution(assignments, chapter):
    r = assignments[0][chapter.id]
    student = nbformat.read(r["student"], as_version=4)
    text = "\n".join(c.source for c in student.cells)
    lines = cw.solution_lines(chapter)
    assert lines, "the chapter's solutions were not found"
    leaked = [ln for ln in lines if ln in text]
    assert not leaked, f"solution lines in the student notebook: {leaked[:3]}"
    assert (r["student"].with_suffix(".md")).exists()


def _with_answer(student: Path, code: str, dest: Path) -> Path:
    nb = nbformat.read(student, as_version=4)
    cell = next(c for c in nb.cells
                if c.cell_type == "code" and "otter_answer_cell" in c.metadata.get("tags", []))
    cell.source = cell.source.replace("...", code, 1)
    nbformat.write(nb, dest)
    return dest


@pytest.fixture(scope="session")
def graded(assignments, tmp_path_factory):
    """Per marked chapter the reports of the solution, the untouched student notebook and a wrong
    answer, all graded in one pool (two at a time: each kernel runs on one thread)."""
    subs = {}
    for c in MARKED:
        r = assignments[0][c.id]
        wrong = _with_answer(r["student"], WRONG[c.id], tmp_path_factory.mktemp(c.id) / "wrong.ipynb")
        subs[c.id] = [(r["bundle"], r["student"].with_name(f"{c.id}.solution.ipynb")),
                      (r["bundle"], r["student"]), (r["bundle"], wrong)]
    reps = iter(cw.grade_many([p for c in MARKED for p in subs[c.id]], jobs=2))
    return {c.id: [next(reps) for _ in range(3)] for c in MARKED}


@pytest.mark.parametrize("chapter", MARKED, ids=lambda c: c.id)
def test_grading(assignments, graded, chapter):
    r = assignments[0][chapter.id]
    full, blank, wrong = graded[chapter.id]
    assert full["total"] == full["possible"] > 0, cw.format_report(full)
    assert blank["total"] < blank["possible"]
    report = cw.format_report(blank)
    assert "claims are not as expected" in report and "measured" in report and "required" in report, report
    first = r["questions"][0]["name"]
    lost = {q["name"]: q["possible"] - q["score"] for q in wrong["questions"]}
    assert lost[first] == next(q["possible"] for q in wrong["questions"] if q["name"] == first)
    assert all(v == 0 for k, v in lost.items() if k != first), cw.format_report(wrong)


def test_grade_command_takes_several_submissions(tmp_path, monkeypatch, capsys):
    from moebook import cli
    full = {"total": 2.0, "possible": 2.0, "questions": [{"name": "q", "score": 2.0, "possible": 2.0,
                                                          "failing": []}]}
    part = dict(full, total=1.0)
    seen = {}

    def fake(pairs, jobs=1):
        seen.update(pairs=pairs, jobs=jobs)
        return [full, part]
    monkeypatch.setattr(cw, "grade_many", fake)
    out = tmp_path / "r.json"
    assert cli.main(["grade", "b.zip", "a.ipynb", "c.ipynb", "--jobs", "2", "--json", str(out)]) == 1
    assert seen == {"pairs": [(Path("b.zip"), Path("a.ipynb")), (Path("b.zip"), Path("c.ipynb"))], "jobs": 2}
    text = capsys.readouterr().out
    assert "== a.ipynb" in text and "== c.ipynb" in text and "total: 1 / 2" in text
    import json
    assert [r["submission"] for r in json.loads(out.read_text())] == ["a.ipynb", "c.ipynb"]
    assert cli.main(["grade", "b.zip", "a.ipynb", "--jobs", "0"]) == 2


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory, assignments):
    """A virtual environment outside the checkout holding the library's wheel (pip --no-deps).

    Its dependencies are the pinned ones of requirements.lock, already installed in this project's
    environment: a ``.pth`` line makes them importable. The checkout's own editable install stays
    invisible there (``.pth`` files inside a directory added this way are not processed), so
    ``moe_lib`` can only come from the wheel. ``MOEBOOK_FRESH_VENV=full`` installs the lock from the
    package index instead, as a reader does (minutes rather than seconds).
    """
    import sysconfig
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = assignments[1]
    py = str(venv / "bin" / "python")
    if os.environ.get("MOEBOOK_FRESH_VENV") == "full":
        deps = ["-r", str(wheel.parent / cw.LOCK)]
    else:
        deps = ["--no-deps"]
        site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        Path(site, "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "--quiet", *deps, str(wheel)], check=True, cwd=venv.parent)
    return venv


def _execute(venv: Path, nb: Path, allow_errors: bool) -> nbformat.NotebookNode:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = nb.with_name("executed-" + nb.name)
    cmd = [str(venv / "bin" / "python"), "-m", "papermill", "--cwd", str(nb.parent), str(nb), str(out),
           "-k", "python3"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=nb.parent, env=env)
    assert allow_errors or r.returncode == 0, r.stderr[-2000:]
    return nbformat.read(out, as_version=4)


def test_runs_outside_the_repository(fresh_venv, assignments, tmp_path):
    from moebook import paths
    c = MARKED[0]
    r = assignments[0][c.id]
    executed = paths.executed_dir("book") / f"{c.id}.ipynb"
    if not executed.exists():
        pytest.skip(f"{c.id} not executed yet ('moebook run' first): the downloaded notebook is that one")
    downloaded = tmp_path / f"{c.id}.ipynb"
    downloaded.write_bytes(executed.read_bytes())
    _execute(fresh_venv, downloaded, allow_errors=False)
    student = tmp_path / "student" / r["student"].name
    student.parent.mkdir()
    student.write_bytes(r["student"].read_bytes())
    nb = _execute(fresh_venv, student, allow_errors=True)
    errors = [cell for cell in nb.cells if cell.cell_type == "code"
              and any(o.get("output_type") == "error" for o in cell.get("outputs", []))]
    assert all("otter_answer_cell" in cell.metadata.get("tags", []) for cell in errors), \
        [cell.source[:80] for cell in errors]


def test_student_view_removes_every_solution(tmp_path):
    """The student edition's notebooks (moebook build --student) carry no solution line."""
    c = MARKED[0]
    nb = cw.chapter_notebook(c)
    path = tmp_path / f"{c.id}.ipynb"
    nbformat.write(nb, path)
    cw.student_view(path)
    text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    assert "{solution-start}" not in text
    assert not [ln for ln in cw.solution_lines(c) if ln in text]
