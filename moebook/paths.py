"""Where things are. Every path is relative to the project root, which is the working directory."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(".")
NOTEBOOKS = ROOT / "notebooks"
FULL_PROFILE = NOTEBOOKS / "full_profile.yml"
LOCK = ROOT / "requirements.lock"
LIBRARY = ROOT / "moe_lib"
BUILD = ROOT / "_build"
RUNS = BUILD / "runs"
SANITIZE = Path(__file__).parent / "sanitize.cfg"


def executed_dir(profile: str) -> Path:
    """A profile's executed notebooks: what `moebook check` and `moebook build` use."""
    return BUILD / "executed" / profile


def run_dir(chapter_id: str, params_hash: str) -> Path:
    """A run with the user's own parameters (-p): never a profile's folder."""
    return RUNS / f"{chapter_id}-{params_hash}"


def stage_dir(profile: str) -> Path:
    return BUILD / "stage" / profile


def html_dir(profile: str) -> Path:
    """The built book: _build/html for the book profile, _build/html-<profile> for the others."""
    return BUILD / ("html" if profile == "book" else f"html-{profile}")


def find_root() -> Path:
    """The project root: the nearest folder upwards holding _toc.yml and notebooks/."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    raise SystemExit(f"moebook: no project root (a folder with _toc.yml and notebooks/) at or above {here}")
