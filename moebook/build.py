"""Stage a profile's executed notebooks with book/, _config.yml and _toc.yml; build with Jupyter Book 1.

The book is built from the executed notebooks (execution off), so what readers see is what ran. Only
a profile's own notebooks are used (never a run with -p values), and only fresh ones: a missing,
stale or corrupt notebook stops the build (``store.state``, the same test as run and check). The
book profile builds into _build/html, the full profile into _build/html-full, each with a status
page saying what this build ran: per chapter seconds, parameters that differ from the book profile,
whether nbval checked exactly that notebook, and the claims held by kind.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

from . import paths, store
from .chapters import Chapter, default_parameters
from .execute import plan

MATHJAX = paths.BUILD / "npm" / "node_modules" / "mathjax" / "es5"
KINDS = ("theorem", "derived", "identity", "unclassified")
PROFILE_WORDS = {"book": "the book profile (the values in each chapter's parameters cell)",
                 "full": "the full profile (paper-scale values from notebooks/full_profile.yml)"}


def stale_or_missing(chapters: list[Chapter], profile: str,
                     params: dict[str, dict] | None = None) -> list[str]:
    """Chapters whose executed notebook cannot be built: '<id> (<why>)'."""
    from .nbcheck import not_ready
    params = params if params is not None else {c.id: _profile_params(c, profile) for c in chapters}
    return not_ready([plan(c, params[c.id], profile, custom=False) for c in chapters])


def _profile_params(chapter: Chapter, profile: str) -> dict:
    from .chapters import parameters
    return parameters(chapter, profile)


def claims_cell(rows: list[dict]) -> str:
    """'theorem 3/3, derived 1/2 (1 finding)': claims that hold of those checked, by kind."""
    parts = []
    for kind in KINDS:
        mine = [r for r in rows if (r.get("kind") or "unclassified") == kind]
        if mine:
            held = sum(bool(r.get("holds")) for r in mine)
            findings = sum(bool(r.get("finding")) for r in mine)
            parts.append(f"{kind} {held}/{len(mine)}"
                         + (f" ({findings} finding{'s' * (findings > 1)})" if findings else ""))
    return ", ".join(parts) or "none recorded"


def status_page(chapters: list[Chapter], profile: str, strict: bool) -> str:
    """book/status.md for this build."""
    head = ["| result | paper | seconds | parameters that differ from the book profile | nbval "
            "| claims held, by kind |", "|---|---|---|---|---|---|"]
    rows, total, checked = [], 0.0, 0
    for c in chapters:
        p = plan(c, _profile_params(c, profile), profile, custom=False)
        s = store.state(p.entry, p.key)
        rec = s.record or {}
        ok = store.nbval_checked(p.entry, rec)
        checked += ok
        total += float(rec.get("seconds", 0.0))
        rows.append(f"| {{doc}}`{c.label} <../notebooks/{c.id}>` | {c.paper} | "
                    f"{float(rec.get('seconds', 0.0)):.1f} | {_changed(c, rec.get('params', {}))} | "
                    f"{'yes' if ok else 'no'} | {claims_cell(rec.get('claims', []))} |")
    versions = ", ".join(f"{p} {_version(p)}" for p in
                         ("torch", "numpy", "jupyter-book", "myst-nb", "papermill", "nbval"))
    return "\n".join([
        "# Status", "",
        f"This page was written by `moebook build` for this build. Every chapter below was executed in "
        f"{PROFILE_WORDS.get(profile, f'the {profile} profile')} on {platform.machine()} with Python "
        f"{platform.python_version()}; total execution time {total:.0f} s.", "",
        f"- Checked by nbval (rerun, outputs compared) on exactly the notebook shown: {checked} of "
        f"{len(chapters)} chapters (column nbval).",
        f"- Built with warnings as errors (`-W`): {'yes' if strict else 'no'}.",
        "- Claims held: of the claims each chapter checks, how many hold, by kind (theorem: the paper's "
        "statement on measured numbers; derived: a step of our derivation; identity: true by "
        "construction, a guard). A finding is a claim the chapter reports as not holding, and explains.",
        "", *head, *rows, "", f"Versions: {versions}.", ""])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _changed(chapter: Chapter, params: dict) -> str:
    defaults = default_parameters(chapter)
    diff = {k: v for k, v in params.items() if defaults.get(k) != v}
    return ", ".join(f"`{k}={v}`" for k, v in diff.items()).replace("|", "\\|") or "none"


def for_readers(nb: dict) -> dict:
    """The notebook as the book shows it: without the claims' JSON record, which is for the pipeline
    (readers see the same claims as a table; myst-nb has no renderer for application/json and
    would warn, failing a strict build)."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            record = data.get("application/json")
            if isinstance(record, dict) and "moebook_claims" in record and len(data) > 1:
                del data["application/json"]
    return nb


def edition(profile: str, student: bool) -> str:
    """The name of what is built: the profile, or its student edition (solutions removed)."""
    if not student:
        return profile
    return "student" if profile == "book" else f"{profile}-student"


def stage(chapters: list[Chapter], profile: str, strict: bool, student: bool = False) -> Path:
    from .coursework import build_wheel, student_view
    root = paths.stage_dir(edition(profile, student))
    if root.exists():
        shutil.rmtree(root)
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(paths.ROOT / "book", root / "book")
    shutil.copy(paths.ROOT / "_toc.yml", root / "_toc.yml")
    config = yaml.safe_load((paths.ROOT / "_config.yml").read_text())
    if profile != "book":
        config["title"] = f"{config.get('title', 'Book')} ({profile} profile)"
    if MATHJAX.is_dir():  # offline MathJax; never under _static/, which JB adds to every page
        shutil.copytree(MATHJAX, root / "_vendor" / "mathjax")
        sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
        sphinx["mathjax_path"] = "mathjax/tex-mml-chtml.js"
        sphinx["html_static_path"] = ["_vendor"]
    if student:  # sphinx-exercise hides solutions; the notebooks lose them too (the download buttons)
        config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    (root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for c in chapters:
        nb = json.loads((paths.executed_dir(profile) / f"{c.id}.ipynb").read_text())
        (root / "notebooks" / f"{c.id}.ipynb").write_text(json.dumps(for_readers(nb), indent=1) + "\n")
        if student:
            student_view(root / "notebooks" / f"{c.id}.ipynb")
    (root / "book" / "status.md").write_text(status_page(chapters, profile, strict))
    if (paths.ROOT / "pyproject.toml").is_file() and (paths.ROOT / "moe_lib").is_dir():
        build_wheel(root / "book" / "dist")  # offered for download on book/coursework.md
    return root


def build(chapters: list[Chapter], profile: str, strict: bool, student: bool = False) -> int:
    bad = stale_or_missing(chapters, profile)
    if bad:
        flag = "" if profile == "book" else f" --profile {profile}"
        print(f"moebook build: run 'moebook run --all{flag}' first; not ready: " + "; ".join(bad),
              file=sys.stderr)
        return 1
    name = edition(profile, student)
    root = stage(chapters, profile, strict, student)
    out = paths.ROOT if name == "book" else paths.BUILD / f"jb-{name}"
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--path-output", str(out)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    rc = subprocess.call(cmd)
    html = paths.html_dir(name)
    if rc == 0 and name != "book":
        if html.exists():
            shutil.rmtree(html)
        shutil.move(str(out / "_build" / "html"), str(html))
    if rc == 0:
        print(f"moebook build: open {(html / 'index.html').resolve()}")
    return rc
