"""The chapters: one MyST-markdown notebook per result, found in notebooks/.

Each chapter's front matter names its result: ``moebook: {label: P2-T5.3, paper: P2}``. A chapter
is addressed by its file stem (``p2_t5_3_deep_moe_cubes``) or by its label's short form
(``p2_t5_3``, the label lower-cased with every run of other characters turned into ``_``). Two
chapters with the same label, short id or name are an error naming both files.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import yaml

from . import params as P
from . import paths
from .errors import UsageError

__all__ = ["Chapter", "UsageError", "all_chapters", "default_parameters", "full_profile", "load",
           "parameters", "profile_parameters", "resolve", "short_label"]

PROFILES = ("book", "full")


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


def _yaml_problem(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: expected UTF-8 text, got a byte {e.object[e.start]:#x} at "
                         f"offset {e.start}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})") from None


def _front_matter(path: Path, text: str) -> dict:
    if not text.startswith("---"):
        raise UsageError(f"{path}: expected front matter ('---' on the first line) holding "
                         "'moebook: {label: ..., paper: ...}', got none")
    end = text.find("\n---", 3)
    if end < 0:
        raise UsageError(f"{path}: expected front matter closed by a '---' line, got no closing line")
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: front matter is not valid YAML: {_yaml_problem(e)}") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: expected front matter to be a mapping, got {type(meta).__name__}")
    return meta


def load(path: Path) -> Chapter:
    text = _read_text(path)
    meta = _front_matter(path, text).get("moebook")
    if not isinstance(meta, dict) or "label" not in meta or "paper" not in meta:
        raise UsageError(f"{path}: expected front matter 'moebook: {{label: ..., paper: ...}}', got {meta!r}")
    label, paper = meta["label"], meta["paper"]
    if not isinstance(label, str) or not short_label(label):
        raise UsageError(f"{path}: expected moebook.label to be a result id like 'P2-T5.3', got {label!r}")
    if not isinstance(paper, str) or not re.fullmatch(r"P[0-9]+", paper):
        raise UsageError(f"{path}: expected moebook.paper to be like 'P2', got {paper!r}")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
    return Chapter(path.stem, label, paper, title, path)


def all_chapters() -> list[Chapter]:
    """Every chapter, sorted by id; two chapters answering to the same name are a UsageError."""
    chapters = [load(p) for p in sorted(paths.NOTEBOOKS.glob("*.md"))]
    owner: dict[str, Chapter] = {}
    for c in chapters:
        for what, name in (("label", c.label), ("name", c.id), ("name", c.alias)):
            key = name if what == "label" else f"name:{name}"
            other = owner.get(key)
            if other is not None and other is not c:
                kind = "label" if what == "label" else ("short id" if name == c.alias else "name")
                raise UsageError(f"{other.path} and {c.path} have the same {kind} '{name}'; "
                                 "every chapter needs its own")
            owner[key] = c
    return chapters


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


_DEFAULTS: dict[tuple[str, str], dict] = {}


def default_parameters(chapter: Chapter) -> dict:
    """The chapter's parameters cell (tag ``parameters``), evaluated as literal assignments."""
    text = _read_text(chapter.path)
    memo = (str(chapter.path), text)
    if memo not in _DEFAULTS:
        if len(_DEFAULTS) > 256:
            _DEFAULTS.clear()
        _DEFAULTS[memo] = _default_parameters(chapter, text)
    return copy.deepcopy(_DEFAULTS[memo])


def _default_parameters(chapter: Chapter, text: str) -> dict:
    try:
        nb = jupytext.reads(text, fmt="md:myst")
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - jupytext's errors are not one class
        raise UsageError(f"{chapter.path}: not a MyST notebook jupytext can read: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    cells = [c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])]
    if len(cells) != 1:
        raise UsageError(f"{chapter.path}: expected exactly one cell tagged 'parameters', got {len(cells)}")
    try:
        body = ast.parse(cells[0].source).body
    except SyntaxError as e:
        raise UsageError(f"{chapter.path}: the parameters cell is not valid Python: {e.msg} "
                         f"(line {e.lineno} of the cell)") from None
    params: dict = {}
    for node in body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise UsageError(f"{chapter.path}: the parameters cell must hold only 'name = literal' lines, "
                             f"got: {ast.unparse(node).splitlines()[0]}")
        name = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            raise UsageError(f"{chapter.path}: parameter '{name}' is not a literal: "
                             f"{ast.unparse(node.value).splitlines()[0]}") from None
        if name in params:
            raise UsageError(f"{chapter.path}: parameter '{name}' is assigned twice in the parameters cell")
        if not P.supported(value):
            raise UsageError(f"{chapter.path}: parameter '{name}': expected an int, float, bool, str or a "
                             f"list of one of those, got {value!r}")
        params[name] = value
    return params


def _unknown(where: str, chapter: Chapter, names: list[str], defaults: dict) -> UsageError:
    return UsageError(f"{where}unknown parameter {', '.join(names)}; valid parameters: "
                      + ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()))


def full_profile(chapters: list[Chapter]) -> dict[str, dict]:
    """notebooks/full_profile.yml, checked whole: every key a chapter id, every value a valid parameter."""
    where = paths.FULL_PROFILE
    if not where.exists():
        return {}
    try:
        table = yaml.load(_read_text(where), Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        raise UsageError(f"{where}: not valid YAML: {_yaml_problem(e)}") from None
    if table is None or table == "":
        return {}
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a mapping of chapter ids to parameter values, "
                         f"got {type(table).__name__}")
    by_id = {c.id: c for c in chapters}
    out: dict[str, dict] = {}
    for key, values in table.items():
        if key not in by_id:
            hint = next((f" (did you mean {c.id}?)" for c in chapters if c.alias == key), "")
            raise UsageError(f"{where}: '{key}' is not a chapter id{hint}; valid chapter ids: "
                             + ", ".join(by_id))
        if values in (None, ""):
            out[key] = {}
            continue
        if not isinstance(values, dict):
            raise UsageError(f"{where}: {key}: expected a mapping of parameter names to values, "
                             f"got {values!r}")
        chapter = by_id[key]
        defaults = default_parameters(chapter)
        unknown = [n for n in values if n not in defaults]
        if unknown:
            raise _unknown(f"{where}: {key}: ", chapter, unknown, defaults)
        try:
            out[key] = {n: P.convert(n, v, defaults[n]) for n, v in values.items()}
        except UsageError as e:
            raise UsageError(f"{where}: {key}: {e}") from None
    return out


def profile_parameters(chapter: Chapter, profile: str, chapters: list[Chapter] | None = None) -> dict:
    """Overrides for a profile: none for 'book'; the chapter's entry in full_profile.yml for 'full'."""
    if profile == "book":
        return {}
    if profile == "full":
        return dict(full_profile(chapters if chapters is not None else all_chapters()).get(chapter.id, {}))
    raise UsageError(f"unknown profile '{profile}'; valid profiles: {', '.join(PROFILES)}")


def parameters(chapter: Chapter, profile: str, overrides: dict | None = None,
               chapters: list[Chapter] | None = None) -> dict:
    """Defaults, then the profile's values, then the user's ``-p`` texts (parsed against the defaults)."""
    defaults = default_parameters(chapter)
    overrides = overrides or {}
    unknown = [n for n in overrides if n not in defaults]
    if unknown:
        raise _unknown(f"{chapter.id}: ", chapter, unknown, defaults)
    user = {n: P.parse_text(n, v, defaults[n]) if isinstance(v, str) else v for n, v in overrides.items()}
    return defaults | profile_parameters(chapter, profile, chapters) | user
