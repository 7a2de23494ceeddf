"""Coursework from the chapter sources: student notebooks, otter autograder bundles, local grading.

Marking (book/coursework.md): a graded exercise is written in otter-grader's notebook format inside
the chapter's MyST source. Raw cells (never rendered by myst-nb) delimit the question
(``# BEGIN QUESTION`` with ``name:``/``points:``, ``# BEGIN TESTS``, ``# END TESTS``,
``# END QUESTION``); the student's code is a code cell of the gated solution with its lines between
``# BEGIN SOLUTION`` / ``# END SOLUTION``; test cells are tagged ``remove-cell`` and recompute the
claim from the student's objects (a failing test raises ``ClaimFailed`` naming claim, measured and
required). A test cell opening with otter's ``# BEGIN TEST CONFIG`` docstring and ``hidden: true``
is hidden.

``assign`` turns the chapter into otter's master notebook (an ``# ASSIGNMENT CONFIG`` cell first;
every gated solution's markdown removed; ungraded solutions removed whole) and runs ``otter assign``.
``grade`` runs ``otter.api.grade_submission`` (no container, no network); ``grade_many`` grades
several submissions in a pool of processes (each submission's kernel runs on one thread).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import yaml

from . import paths
from .chapters import Chapter, UsageError

DIST = paths.BUILD / "dist"
LOCK = "requirements.lock"


def _src(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _is_raw(cell, word: str) -> bool:
    return cell.cell_type == "raw" and _src(cell).strip().startswith(word)


def questions(nb) -> list[dict]:
    """The graded questions of a notebook: name and points of each ``# BEGIN QUESTION`` raw cell."""
    out = []
    for cell in nb.cells:
        if _is_raw(cell, "# BEGIN QUESTION"):
            out.append(yaml.safe_load(_src(cell).split("\n", 1)[1]) or {})
    return out


def chapter_notebook(chapter: Chapter):
    return jupytext.read(chapter.path)


FENCE = re.compile(r"^(`{3,}|:{3,})\{(solution-start|solution-end|solution)\}")


def strip_solutions(text: str, inside: bool) -> tuple[str, bool]:
    """Markdown without its solutions (gated ranges, which may span cells, and old-style blocks)."""
    kept, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            fence, kind = m.group(1), m.group(2)
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence:
                j += 1  # skip the directive's options (and an old-style block's whole body)
            inside = {"solution-start": True, "solution-end": False}.get(kind, inside)
            i = j + 1
            continue
        if not inside:
            kept.append(lines[i])
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n"), inside


def master_notebook(chapter: Chapter, nb=None, files: list[str] | None = None):
    """Otter's master notebook: the chapter with an assignment config and no written solutions."""
    nb = nb if nb is not None else chapter_notebook(chapter)
    if not questions(nb):
        raise UsageError(f"{chapter.id} has no graded exercise (no '# BEGIN QUESTION' raw cell); "
                         "see book/coursework.md")
    cells, in_solution, in_question = [], False, False
    for cell in nb.cells:
        if _is_raw(cell, "# BEGIN QUESTION"):
            in_question = True
        elif _is_raw(cell, "# END QUESTION"):
            in_question = False
        if cell.cell_type == "markdown":
            cell.source, in_solution = strip_solutions(_src(cell), in_solution)
            if not cell.source.strip():
                continue
        elif in_solution and not in_question:
            continue  # ungraded solution code never reaches the student
        cells.append(cell)
    config = {"name": chapter.id, "init_cell": True, "check_all_cell": False, "export_cell": False,
              "run_tests": False, "generate": {"pdf": False}, "tests": {"files": False, "ok_format": True},
              "files": files or []}
    head = nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False))
    out = nbformat.v4.new_notebook(cells=[head, *cells], metadata=nb.metadata)
    nbformat.validator.normalize(out)
    return out


def build_wheel(out: Path = DIST) -> Path:
    """The library as a wheel (``pip wheel --no-deps .``) with the lock beside it as constraints."""
    root, out = paths.ROOT.resolve(), out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("moe_companion-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:  # a copy, so the build leaves no egg-info in the checkout
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("moe_lib", "moebook"):
            shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(root / name, src / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], check=True, cwd=tmp)
    shutil.copy(root / LOCK, out / LOCK)
    return next(out.glob("moe_companion-*.whl"))


def assign(chapter: Chapter, out: Path, wheel: Path | None = None) -> dict:
    """Student notebook (.ipynb, .md) and autograder bundle of one chapter, under ``out/<id>/``."""
    master = master_notebook(chapter)
    dest = out / chapter.id
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    from otter.assign import main as otter_assign
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mpath = tmp / "master" / f"{chapter.id}.ipynb"
        mpath.parent.mkdir()
        nbformat.write(master, mpath)
        with contextlib.redirect_stdout(io.StringIO()):
            otter_assign(str(mpath), str(tmp / "result"), no_pdfs=True, no_run_tests=True)
        student = tmp / "result" / "student" / f"{chapter.id}.ipynb"
        zips = list((tmp / "result" / "autograder").glob("*.zip"))
        shutil.copy(student, dest / f"{chapter.id}.ipynb")
        solution = tmp / "result" / "autograder" / f"{chapter.id}.ipynb"
        shutil.copy(solution, dest / f"{chapter.id}.solution.ipynb")
        bundle = dest / f"{chapter.id}-autograder.zip"
        shutil.copy(zips[0], bundle)
    jupytext.write(nbformat.read(dest / f"{chapter.id}.ipynb", as_version=4), dest / f"{chapter.id}.md",
                   fmt="md:myst")
    if wheel is not None:  # the bundle carries the library it was made with
        with zipfile.ZipFile(bundle, "a") as z:
            z.write(wheel, f"dist/{wheel.name}")
            z.write(paths.ROOT / LOCK, f"dist/{LOCK}")
        shutil.copy(wheel, dest / wheel.name)
        shutil.copy(paths.ROOT / LOCK, dest / LOCK)
    return {"student": dest / f"{chapter.id}.ipynb", "bundle": bundle, "questions": questions(master)}


def solution_lines(chapter: Chapter) -> list[str]:
    """Every line (longer than 3 characters) of the chapter's solutions, prose and graded code."""
    nb, lines, inside = chapter_notebook(chapter), [], False
    for cell in nb.cells:
        src = _src(cell)
        if cell.cell_type == "markdown":
            kept, after = strip_solutions(src, inside)
            keep = set(kept.split("\n"))
            lines += [ln.strip() for ln in src.split("\n") if ln not in keep and not FENCE.match(ln)
                      and not ln.startswith(":class:") and ln.strip() not in ("```", "````")]
            inside = after
        elif cell.cell_type == "code" and "# BEGIN SOLUTION" in src:
            body = src.split("# BEGIN SOLUTION", 1)[1].split("# END SOLUTION", 1)[0]
            lines += [ln.strip() for ln in body.splitlines()]
    return [ln for ln in lines if len(ln) > 3]


def read_submission(path: Path):
    if not path.is_file():
        raise UsageError(f"no such submission: {path}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises several types for non-notebooks
        raise UsageError(f"{path} is not a Jupyter notebook (.ipynb): {type(e).__name__}") from None


def _check_inputs(bundle: Path, submission: Path) -> None:
    if not zipfile.is_zipfile(bundle):
        raise UsageError(f"{bundle} is not an autograder bundle (a zip made by 'moebook assign')")
    read_submission(submission)


def grade(bundle: Path, submission: Path) -> dict:
    """Grade one submission locally with otter (no container): points per question, failing claims."""
    _check_inputs(bundle, submission)
    return _grade(bundle, submission)


def grade_many(pairs: Sequence[tuple[Path, Path]], jobs: int = 1) -> list[dict]:
    """Reports of ``grade(bundle, submission)`` for each pair, in order, ``jobs`` at a time.

    Every input is checked before any grading starts; the graders are fresh processes (spawned,
    not forked from a process that may hold threads)."""
    pairs = [(Path(b), Path(s)) for b, s in pairs]
    for b, s in pairs:
        _check_inputs(b, s)
    if jobs <= 1 or len(pairs) <= 1:
        return [_grade(b, s) for b, s in pairs]
    import multiprocessing
    with ProcessPoolExecutor(max_workers=min(jobs, len(pairs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_grade, *zip(*pairs, strict=True)))


def _grade(bundle: Path, submission: Path) -> dict:
    from otter.api import grade_submission
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        res = grade_submission(str(submission), str(bundle), quiet=True)
    report = {"total": res.total, "possible": res.possible, "questions": []}
    for name, r in res.results.items():
        failing = []
        for t in r.test_case_results:
            if not t.passed:
                m = re.findall(r"ClaimFailed: (.*)", t.message or "")
                failing.append({"test": t.test_case.name, "hidden": t.test_case.hidden,
                                "claims": m[-1] if m else (t.message or "").strip().splitlines()[-1:]})
        report["questions"].append({"name": name, "score": r.score, "possible": r.possible,
                                    "failing": failing})
    return report


def format_report(rep: dict) -> str:
    lines = []
    for q in rep["questions"]:
        lines.append(f"{q['name']}: {q['score']:g} / {q['possible']:g}")
        for f in q["failing"]:
            claims = f["claims"] if isinstance(f["claims"], str) else " ".join(f["claims"])
            lines.append(f"    failing {'hidden' if f['hidden'] else 'public'} test {f['test']}: {claims}")
    lines.append(f"total: {rep['total']:g} / {rep['possible']:g}")
    return "\n".join(lines)


def cmd_assign(args, resolve) -> int:
    chapters = resolve(args.ids)
    for c in chapters:
        master_notebook(c)  # every chapter checked before any work
    wheel = build_wheel()
    for c in chapters:
        r = assign(c, Path(args.out), wheel)
        pts = sum(float(q.get("points", 0)) for q in r["questions"])
        print(f"{c.id}: student notebook {r['student']}, bundle {r['bundle']} "
              f"({len(r['questions'])} question(s), {pts:g} points)")
    return 0


def cmd_grade(args) -> int:
    subs = [Path(s) for s in args.submission]
    reps = grade_many([(Path(args.bundle), s) for s in subs], jobs=args.jobs)
    for s, rep in zip(subs, reps, strict=True):
        if len(subs) > 1:
            print(f"== {s}")
        print(format_report(rep))
    if args.json:  # one submission: its report; several: a list of reports, each naming its file
        data = reps[0] if len(subs) == 1 else [dict(r, submission=str(s))
                                               for s, r in zip(subs, reps, strict=True)]
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    return 0 if all(r["total"] == r["possible"] for r in reps) else 1


def student_view(path: Path) -> None:
    """An executed chapter notebook without its solutions (prose and code), in place: the student edition."""
    nb, cells, inside = nbformat.read(path, as_version=4), [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source, inside = strip_solutions(_src(cell), inside)
            if cell.source.strip():
                cells.append(cell)
        elif not inside and cell.cell_type != "raw":
            cells.append(cell)
    nb.cells = cells
    nbformat.write(nb, path)
