"""Stage the executed notebooks with book/, _config.yml and _toc.yml, then build with Jupyter Book 1.

The book is built from the executed notebooks (execution off), so what readers see is what CI
checked. Staging under _build/ keeps notebooks/X.md and X.ipynb from meeting ("multiple files").
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

from . import paths
from .chapters import Chapter
from .execute import cache_key, record

MATHJAX = paths.BUILD / "npm" / "node_modules" / "mathjax" / "es5"


def stale_or_missing(chapters: list[Chapter], profile: str) -> list[str]:
    """Chapters whose executed notebook is missing or older than its source, library or lock."""
    bad = []
    for c in chapters:
        rec = record(profile, c)
        nb = paths.executed_dir(profile) / f"{c.id}.ipynb"
        if rec is None or not nb.exists():
            bad.append(f"{c.id} (not executed)")
        elif rec["key"] != cache_key(c, rec["params"]):
            bad.append(f"{c.id} (stale: its source, moe_lib or the lock changed)")
    return bad


def status_page(chapters: list[Chapter], profile: str) -> str:
    """book/status.md: per-chapter run time and parameters, and the versions that produced them."""
    rows = ["| chapter | result | paper | seconds | non-default parameters |", "|---|---|---|---|---|"]
    total = 0.0
    for c in chapters:
        rec = record(profile, c) or {}
        total += rec.get("seconds", 0.0)
        rows.append(f"| {{doc}}`../notebooks/{c.id}` | {c.label} | {c.paper} | "
                    f"{rec.get('seconds', 0.0):.1f} | {_changed(c, rec.get('params', {}))} |")
    versions = ", ".join(f"{p} {_version(p)}" for p in
                         ("torch", "numpy", "jupyter-book", "myst-nb", "papermill", "nbval"))
    return "\n".join([
        "# Status", "",
        f"Every chapter below was executed in the `{profile}` profile on the machine that built this",
        "page, then checked by nbval and built with warnings as errors.",
        f"Total execution time: {total:.0f} s on {platform.machine()} "
        f"with Python {platform.python_version()}.",
        "", *rows, "", f"Versions: {versions}.", ""])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _changed(chapter: Chapter, params: dict) -> str:
    from .chapters import default_parameters
    defaults = default_parameters(chapter)
    diff = {k: v for k, v in params.items() if defaults.get(k) != v}
    return ", ".join(f"`{k}={v}`" for k, v in diff.items()) or "none"


def stage(chapters: list[Chapter], profile: str, student: bool = False) -> Path:
    root = paths.stage_dir(profile + ("-student" if student else ""))
    if root.exists():
        shutil.rmtree(root)
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(paths.ROOT / "book", root / "book")
    shutil.copy(paths.ROOT / "_toc.yml", root / "_toc.yml")
    config = yaml.safe_load((paths.ROOT / "_config.yml").read_text())
    if MATHJAX.is_dir():  # offline MathJax; never under _static/, which JB adds to every page
        shutil.copytree(MATHJAX, root / "_vendor" / "mathjax")
        sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
        sphinx["mathjax_path"] = "mathjax/tex-mml-chtml.js"
        sphinx["html_static_path"] = ["_vendor"]
    if student:  # sphinx-exercise hides solutions; the notebooks lose them too (the download buttons)
        config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    (root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for c in chapters:
        shutil.copy(paths.executed_dir(profile) / f"{c.id}.ipynb", root / "notebooks" / f"{c.id}.ipynb")
        if student:
            from .coursework import student_view
            student_view(root / "notebooks" / f"{c.id}.ipynb")
    (root / "book" / "status.md").write_text(status_page(chapters, profile))
    from .coursework import build_wheel
    build_wheel(root / "book" / "dist")  # offered for download on book/coursework.md
    return root


def build(chapters: list[Chapter], profile: str, strict: bool, student: bool = False) -> int:
    bad = stale_or_missing(chapters, profile)
    if bad:
        print("moebook build: run 'moebook run --all' first; not ready: " + "; ".join(bad),
              file=sys.stderr)
        return 1
    root = stage(chapters, profile, student)
    out = root.parent / "student-out" if student else paths.ROOT
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root),
           "--path-output", str(out)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    rc = subprocess.call(cmd)
    html = paths.BUILD / ("html-student" if student else "html")
    if rc == 0 and student:
        shutil.rmtree(html, ignore_errors=True)
        shutil.move(str(out / "_build" / "html"), html)
    if rc == 0:
        print(f"moebook build: open {(html / 'index.html').resolve()}")
    return rc

