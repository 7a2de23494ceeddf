"""Every command that README.md and book/*.md show is one that works: each `moebook` line parses and
names real chapters, parameters and values (checked as `moebook run` checks them, without running
anything), each `.venv/bin/TOOL` is installed, and papermill lines set real parameters."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from moebook import cli
from moebook.chapters import UsageError, all_chapters, default_parameters

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[list[str]]:
    out = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value prefixes
            words.pop(0)
        if words:
            out.append(words)
    return out


def problem(words: list[str], block: str) -> str:
    """What is wrong with one documented command line, or ''."""
    tool = words[0]
    if tool.startswith(".venv/bin/") and not (BIN / tool.split("/")[-1]).exists():
        return f"{tool} is not installed by the project"
    name = tool.split("/")[-1]
    if name == "moebook" and len(words) > 1:  # a bare path is a mention, not a command
        try:
            args = cli.parser().parse_args(words[1:])
        except SystemExit:
            return "moebook rejects its options"
        try:
            if args.command == "run":
                cli.plan_run(args)
            elif args.command == "check" and args.ids:
                cli.resolve(args.ids)
        except UsageError as e:
            return str(e)
    if name == "papermill":
        ids = {c.id for c in all_chapters()}
        chapters = re.findall(r"notebooks/(\w+)\.md", block) + [
            n for n in re.findall(r"(\w+)\.ipynb", block) if n in ids]  # a downloaded chapter
        if not chapters:
            return "papermill line without the chapter it runs in the same block"
        defaults = default_parameters(next(c for c in all_chapters() if c.id == chapters[0]))
        names = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-p", "--parameters")]
        names += [y.split(":")[0].strip() for i, y in enumerate(words[1:]) if words[i] == "-y"]
        unknown = [n for n in names if n not in defaults]
        if unknown:
            return f"papermill sets unknown parameter {', '.join(unknown)} of {chapters[0]}"
    if name == "jupyter" and len(words) > 1 and not (BIN / f"jupyter-{words[1]}").exists():
        return f"jupyter {words[1]} is not installed"
    return ""


def inline_commands(text: str) -> list[str]:
    """Commands quoted in prose, e.g. `.venv/bin/jupyter lab` or `moebook run --all`."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return [c for c in re.findall(r"`([^`\n]+)`", prose) if re.match(r"(\.venv/bin/|moebook )", c)]


def documented():
    for doc in DOCS:
        text = doc.read_text()
        for block in shell_blocks(text) + inline_commands(text):
            for words in commands(block):
                yield doc.name, words, block


CASES = list(documented())


def test_the_docs_show_moebook_commands():
    shown = [w for _, w, _ in CASES if w[0].endswith("moebook")]
    assert len(shown) >= 10 and any("-p" in w for w in shown) and any("--jobs" in w for w in shown)


@pytest.mark.parametrize("doc, words, block", CASES, ids=[f"{d}:{' '.join(w)[:60]}" for d, w, _ in CASES])
def test_documented_command_works(doc, words, block):
    assert problem(words, block) == "", f"{doc}: {shlex.join(words)}"


@pytest.mark.parametrize("line, found", [
    (".venv/bin/moebook run p2_t5_3 -p widths '[8, 16, 32]'", "unknown parameter widths"),
    (".venv/bin/moebook run p2_t5_3 -p m_grid 8", "expected a list of integers"),
    (".venv/bin/moebook run p2_t9_9", "unknown chapter p2_t9_9"),
    (".venv/bin/moebook run --all --jobs 0", "moebook rejects its options"),
    (".venv/bin/jupyter lab", "not installed"),
    (".venv/bin/papermill a.ipynb b.ipynb -p widths 3", "papermill line without the chapter"),
])
def test_a_wrong_command_is_caught(line, found):
    assert found in problem(shlex.split(line), line)


def test_papermill_parameters_are_checked():
    block = ".venv/bin/jupytext --to ipynb notebooks/p2_t5_3_deep_moe_cubes.md -o /tmp/ch.ipynb\n"
    assert "unknown parameter widths" in problem(shlex.split(
        ".venv/bin/papermill /tmp/ch.ipynb /tmp/o.ipynb -p widths 3"), block)
    line = ".venv/bin/papermill /tmp/ch.ipynb /tmp/o.ipynb -y 'm_grid: [8]'"
    assert problem(shlex.split(line), block) == ""
