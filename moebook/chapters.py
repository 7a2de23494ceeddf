"""The chapters: one MyST-markdown notebook per result, found in notebooks/.

Each chapter's front matter names its result: ``moebook: {label: P2-T5.3, paper: P2}``. A chapter
is addressed by its file stem (``p2_t5_3_deep_moe_cubes``) or by its label's short form
(``p2_t5_3``, the label lower-cased with every run of other characters turned into ``_``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import yaml

from . import paths


class UsageError(Exception):
    """A bad chapter id or parameter name: the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Chapter:
    id: str
    label: str
    paper: str
    title: str
    path: Path

    @property
    def alias(self) -> str:
        return short_label(self.label)


def short_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    return yaml.safe_load(text[3:end]) or {} if end > 0 else {}


def load(path: Path) -> Chapter:
    text = path.read_text()
    meta = _front_matter(text).get("moebook") or {}
    if "label" not in meta or "paper" not in meta:
        raise UsageError(f"{path}: expected front matter 'moebook: {{label: ..., paper: ...}}', got {meta!r}")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
    return Chapter(path.stem, str(meta["label"]), str(meta["paper"]), title, path)


def all_chapters() -> list[Chapter]:
    return [load(p) for p in sorted(paths.NOTEBOOKS.glob("*.md"))]


def resolve(names: list[str], chapters: list[Chapter] | None = None) -> list[Chapter]:
    """Chapters named by file stem or label alias; an unknown name is a UsageError listing the valid ids."""
    chapters = all_chapters() if chapters is None else chapters
    by_name = {c.id: c for c in chapters} | {c.alias: c for c in chapters}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        valid = ", ".join(f"{c.id} ({c.alias})" for c in chapters)
        raise UsageError(f"unknown chapter {', '.join(unknown)}; valid chapters: {valid}")
    out: list[Chapter] = []
    for n in names:
        if by_name[n] not in out:
            out.append(by_name[n])
    return out


def default_parameters(chapter: Chapter) -> dict:
    """The chapter's parameters cell (tag ``parameters``), evaluated as literal assignments."""
    nb = jupytext.read(chapter.path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise UsageError(f"{chapter.path}: expected exactly one cell tagged 'parameters', got {len(cells)}")
    params: dict = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise UsageError(f"{chapter.path}: the parameters cell must hold only 'name = literal' lines, "
                             f"got: {ast.unparse(node)}")
        try:
            params[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as e:
            raise UsageError(f"{chapter.path}: parameter '{node.targets[0].id}' is not a literal: "
                             f"{ast.unparse(node.value)}") from e
    return params


def profile_parameters(chapter: Chapter, profile: str) -> dict:
    """Overrides for a profile: none for 'book'; the chapter's entry in full_profile.yml for 'full'."""
    if profile == "book":
        return {}
    if profile == "full":
        table = yaml.safe_load(paths.FULL_PROFILE.read_text()) if paths.FULL_PROFILE.exists() else {}
        return dict((table or {}).get(chapter.id) or {})
    raise UsageError(f"unknown profile '{profile}'; valid profiles: book, full")


def parameters(chapter: Chapter, profile: str, overrides: dict) -> dict:
    """Defaults, then the profile's values, then the user's; every name must be a declared parameter."""
    defaults = default_parameters(chapter)
    chosen = profile_parameters(chapter, profile) | overrides
    unknown = sorted(set(chosen) - set(defaults))
    if unknown:
        raise UsageError(f"{chapter.id}: unknown parameter {', '.join(unknown)}; valid parameters: "
                         + ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()))
    return defaults | chosen
