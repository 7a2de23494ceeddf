"""Bad inputs against the moebook CLI: each exits 2 (usage) or 1 with one line naming the thing, what
was expected and what came, and no traceback; corrupt cache entries are executed again.

No chapter is executed for real here: a fake executor stands in for ``job.execute``.
"""

from __future__ import annotations

import json
import shutil

import pytest
from pipeline_project import chapter, executed, make_project

from moebook import cli, job

GOOD = "notebooks/p9_a_good.md"


def fake_execute(calls):
    def run(j):
        calls.append(j["chapter"])
        nb = {"cells": [], "metadata": {"moebook": {"key": j["key"], "params": j["params"]}},
              "nbformat": 4, "nbformat_minor": 5}
        return {"status": "ok", "error": "", "seconds": 0.1, "host": "here", "claims": [],
                "notebook": (json.dumps(nb) + "\n").encode()}
    return run


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj", {
        "p9_a_good": chapter("P9-A", "Good", "print(n)"),
        "p9_c_other": chapter("P9-C", "Other", "print(scale)")})
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def calls(project, monkeypatch) -> list[str]:
    """The chapters the (fake) executor was asked to run."""
    seen: list[str] = []
    monkeypatch.setattr(job, "execute", fake_execute(seen))
    return seen


def edit(path, old, new):
    def do(root):
        p = root / path
        p.write_text(p.read_text().replace(old, new, 1))
    return do


def write(path, text):
    def do(root):
        (root / path).write_bytes(text if isinstance(text, bytes) else text.encode())
    return do


FM = "moebook:\n  label: P9-A\n  paper: P9\n"

# (id, set-up, argv, exit status, text the one-line message must contain)
USAGE = [
    # parameters, each type: n int, scale float, flag bool, name str, grid list[int], lrs list[float]
    ("int-word", None, ["run", "p9_a", "-p", "n", "abc"], 2, "parameter n: expected an integer, got 'abc'"),
    ("int-date", None, ["run", "p9_a", "-p", "n", "2024-01-01"], 2,
     "parameter n: expected an integer, got '2024-01-01'"),
    ("int-float", None, ["run", "p9_a", "-p", "n", "1.5"], 2, "expected an integer, got '1.5'"),
    ("int-sci", None, ["run", "p9_a", "-p", "n", "1e3"], 2, "expected an integer, got '1e3'"),
    ("int-empty", None, ["run", "p9_a", "-p", "n", ""], 2, "parameter n: expected an integer, got ''"),
    ("int-bad-yaml", None, ["run", "p9_a", "-p", "n", "[1, 2"], 2,
     "parameter n: expected an integer, got '[1, 2' (not valid"),
    ("int-list", None, ["run", "p9_a", "-p", "n", "[1]"], 2, "expected an integer, got '[1]'"),
    ("float-word", None, ["run", "p9_a", "-p", "scale", "abc"], 2,
     "parameter scale: expected a number, got 'abc'"),
    ("float-nan", None, ["run", "p9_a", "-p", "scale", "nan"], 2, "expected a number, got 'nan'"),
    ("float-inf", None, ["run", "p9_a", "-p", "scale", "1e999"], 2, "expected a number, got '1e999'"),
    ("float-comma", None, ["run", "p9_a", "-p", "scale", "0,5"], 2, "expected a number, got '0,5'"),
    ("bool-word", None, ["run", "p9_a", "-p", "flag", "maybe"], 2,
     "parameter flag: expected true or false, got 'maybe'"),
    ("bool-int", None, ["run", "p9_a", "-p", "flag", "2"], 2, "expected true or false, got '2'"),
    ("list-scalar", None, ["run", "p9_a", "-p", "grid", "8"], 2,
     "parameter grid: expected a list of integers like [8, 16], got '8'"),
    ("list-unclosed", None, ["run", "p9_a", "-p", "grid", "[1, 2"], 2,
     "parameter grid: expected a list of integers like [8, 16], got '[1, 2' (not valid"),
    ("list-word", None, ["run", "p9_a", "-p", "grid", "[1, x]"], 2, "got '[1, x]'"),
    ("list-float-in-int", None, ["run", "p9_a", "-p", "grid", "[1, 2.5]"], 2, "list of integers"),
    ("list-mapping", None, ["run", "p9_a", "-p", "grid", "{a: 1}"], 2, "got '{a: 1}'"),
    ("list-nested", None, ["run", "p9_a", "-p", "grid", "[[1]]"], 2, "got '[[1]]'"),
    ("floats-word", None, ["run", "p9_a", "-p", "lrs", "[0.1, abc]"], 2,
     "parameter lrs: expected a list of numbers like [0.001, 0.01], got '[0.1, abc]'"),
    ("duplicate", None, ["run", "p9_a", "-p", "n", "1", "-p", "n", "2"], 2,
     "parameter n: given twice (-p n '1' and -p n '2')"),
    ("unknown-param", None, ["run", "p9_a", "-p", "bogus", "1"], 2,
     "unknown parameter bogus; valid parameters: n (default 3), scale (default 0.5)"),
    ("p-with-all", None, ["run", "--all", "-p", "n", "1"], 2, "-p sets parameters of one chapter"),
    ("unknown-chapter", None, ["run", "nope"], 2, "unknown chapter nope; valid chapters: p9_a_good (p9_a)"),
    ("no-chapter", None, ["run"], 2, "name at least one chapter, or use --all"),
    ("ids-and-all", None, ["run", "p9_a", "--all"], 2, "give chapter ids or --all, not both"),
    ("check-unknown", None, ["check", "nope"], 2, "unknown chapter nope"),
    # options
    ("timeout-word", None, ["run", "p9_a", "--timeout", "soon"], 2,
     "expected a number of seconds, got 'soon'"),
    ("timeout-zero", None, ["run", "p9_a", "--timeout", "0"], 2, "expected a positive number of seconds"),
    ("jobs-zero", None, ["run", "p9_a", "--jobs", "0"], 2, "expected a number of workers >= 1, got '0'"),
    ("jobs-and-scheduler", None, ["run", "p9_a", "--jobs", "2", "--scheduler", "tcp://x:1"], 2,
     "not allowed with argument"),
    ("bad-profile", None, ["run", "p9_a", "--profile", "huge"], 2, "invalid choice: 'huge'"),
    # notebooks/full_profile.yml
    ("full-not-a-chapter", write("notebooks/full_profile.yml", "zz:\n  n: 1\n"),
     ["run", "p9_a", "--profile", "full"], 2, "'zz' is not a chapter id; valid chapter ids: p9_a_good"),
    ("full-short-id", write("notebooks/full_profile.yml", "p9_a:\n  n: 1\n"),
     ["run", "p9_a", "--profile", "full"], 2, "'p9_a' is not a chapter id (did you mean p9_a_good?)"),
    ("full-unknown-param", write("notebooks/full_profile.yml", "p9_c_other:\n  m: 1\n"),
     ["run", "p9_a", "--profile", "full"], 2, "p9_c_other: unknown parameter m; valid parameters: n"),
    ("full-bad-value", write("notebooks/full_profile.yml", "p9_a_good:\n  n: lots\n"),
     ["run", "p9_a", "--profile", "full"], 2, "p9_a_good: parameter n: expected an integer, got 'lots'"),
    ("full-bad-list", write("notebooks/full_profile.yml", "p9_a_good:\n  grid: 8\n"),
     ["build", "--profile", "full"], 2, "p9_a_good: parameter grid: expected a list of integers"),
    ("full-bad-yaml", write("notebooks/full_profile.yml", "p9_a_good:\n  n: [1,\n"),
     ["check", "--profile", "full"], 2, "full_profile.yml: not valid YAML"),
    ("full-a-list", write("notebooks/full_profile.yml", "- p9_a_good\n"),
     ["run", "--all", "--profile", "full"], 2,
      "expected a mapping of chapter ids to parameter values, got list"),
    ("full-values-not-mapping", write("notebooks/full_profile.yml", "p9_a_good: [1, 2]\n"),
     ["run", "p9_a", "--profile", "full"], 2, "p9_a_good: expected a mapping of parameter names to values"),
    # chapter files
    ("fm-bad-yaml", edit(GOOD, "  paper: P9\n", "  paper: [P9\n"), ["list"], 2,
     "front matter is not valid YAML"),
    ("fm-no-moebook", edit(GOOD, FM, ""), ["run", "p9_c"], 2,
     "p9_a_good.md: expected front matter 'moebook: {label: ..., paper: ...}', got None"),
    ("fm-label-number", edit(GOOD, "label: P9-A", "label: 1.5"), ["list"], 2,
     "expected moebook.label to be a result id like 'P2-T5.3', got 1.5"),
    ("fm-paper", edit(GOOD, "paper: P9", "paper: 9"), ["list"], 2,
     "expected moebook.paper to be like 'P2', got 9"),
    ("fm-unclosed", write(GOOD, "---\nmoebook: {label: P9-A, paper: P9}\n# Title\n"), ["list"], 2,
     "expected front matter closed by a '---' line"),
    ("fm-none", write(GOOD, "# Title\n"), ["list"], 2, "expected front matter ('---' on the first line)"),
    ("not-utf8", write(GOOD, b"---\n\xff\xfe\n---\n"), ["list"], 2, "expected UTF-8 text, got a byte 0xff"),
    ("same-label", edit("notebooks/p9_c_other.md", "label: P9-C", "label: P9-A"), ["run", "p9_a"], 2,
     "p9_a_good.md and notebooks/p9_c_other.md have the same label 'P9-A'"),
    ("same-short-id", edit("notebooks/p9_c_other.md", "label: P9-C", "label: P9 A"), ["run", "p9_a"], 2,
     "have the same short id 'p9_a'"),
    ("params-not-literal", edit(GOOD, "n = 3  #", "n = 1 + len('ab')  #"), ["run", "p9_a"], 2,
     "parameter 'n' is not a literal: 1 + len('ab')"),
    ("params-def", edit(GOOD, "n = 3  #", "def n(): pass  #"), ["run", "p9_a"], 2,
     "the parameters cell must hold only 'name = literal' lines"),
    ("params-syntax", edit(GOOD, "n = 3  #", "n = (3  #"), ["run", "p9_a"], 2,
     "the parameters cell is not valid Python"),
    ("params-twice", edit(GOOD, "n = 3  #", "n = 3\nn = 4  #"), ["run", "p9_a"], 2,
     "parameter 'n' is assigned twice"),
    ("params-dict", edit(GOOD, "n = 3  #", "n = {'a': 1}  #"), ["run", "p9_a"], 2,
     "parameter 'n': expected an int, float, bool, str or a list of one of those, got {'a': 1}"),
    ("params-two-cells", edit(GOOD, ":tags: [parameters, remove-cell]", ":tags: [parameters]\n\nx = 1\n```"
                              "\n\n```{code-cell} ipython3\n:tags: [parameters]"),
     ["run", "p9_a"], 2, "expected exactly one cell tagged 'parameters', got 2"),
    # not ready for check / build
    ("check-not-executed", None, ["check", "p9_a"], 1, "p9_a_good (not executed)"),
    ("build-not-executed", None, ["build"], 1,
     "not ready: p9_a_good (not executed); p9_c_other (not executed)"),
]


@pytest.mark.parametrize("setup, argv, rc, message", [c[1:] for c in USAGE], ids=[c[0] for c in USAGE])
def test_bad_input(project, calls, capsys, setup, argv, rc, message):
    if setup:
        setup(project)
    assert cli.main(argv) == rc
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0] and "Traceback" not in err
    assert calls == []  # nothing ran
    assert not (project / "_build" / "executed" / "book" / "p9_a_good.ipynb").exists()


# Corrupt cache entries: (id, corruption of the entry of p9_a_good, reason shown)
def truncate(name, keep=20):
    def do(d):
        p = d / name
        p.write_bytes(p.read_bytes()[:keep])
    return do


def other_key(d):
    nb = json.loads((d / "p9_a_good.ipynb").read_text())
    nb["metadata"]["moebook"]["key"] = "0" * 64
    (d / "p9_a_good.ipynb").write_text(json.dumps(nb))
    rec = json.loads((d / "p9_a_good.json").read_text())
    import hashlib
    rec["notebook_sha256"] = hashlib.sha256((d / "p9_a_good.ipynb").read_bytes()).hexdigest()
    (d / "p9_a_good.json").write_text(json.dumps(rec))


def copy_other(d):
    shutil.copy(d / "p9_c_other.ipynb", d / "p9_a_good.ipynb")


CORRUPT = [
    ("truncated-notebook", truncate("p9_a_good.ipynb"), "is not the notebook its record describes"),
    ("empty-notebook", truncate("p9_a_good.ipynb", 0), "is not the notebook its record describes"),
    ("notebook-of-another-chapter", copy_other, "is not the notebook its record describes"),
    ("notebook-of-another-key", other_key, "was made for another cache key"),
    ("truncated-sidecar", truncate("p9_a_good.json"), "p9_a_good.json does not parse"),
    ("sidecar-a-list", lambda d: (d / "p9_a_good.json").write_text("[1]"), "p9_a_good.json does not parse"),
    ("sidecar-binary", lambda d: (d / "p9_a_good.json").write_bytes(b"\xff\x00"),
     "p9_a_good.json does not parse"),
    ("sidecar-missing", lambda d: (d / "p9_a_good.json").unlink(), "p9_a_good.json is missing"),
    ("notebook-missing", lambda d: (d / "p9_a_good.ipynb").unlink(), "p9_a_good.ipynb is missing"),
]


@pytest.mark.parametrize("corrupt, reason", [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_corrupt_cache_entry_is_executed_again(project, calls, capsys, corrupt, reason):
    assert cli.main(["run", "--all"]) == 0
    corrupt(executed(project, ""))
    capsys.readouterr()
    assert cli.main(["check", "p9_a"]) == 1  # neither checked ...
    assert reason in capsys.readouterr().err
    assert cli.main(["build"]) == 1  # ... nor built
    assert "p9_a_good (corrupt: _build/executed/book/p9_a_good" in capsys.readouterr().err
    calls.clear()
    assert cli.main(["run", "p9_a", "p9_c"]) == 0  # ... but executed again, and the run goes on
    out = capsys.readouterr().out
    assert "cache entry unusable (corrupt:" in out and reason in out
    assert calls == ["p9_a_good"] and "p9_c_other  cached" in out
    assert cli.main(["run", "p9_a"]) == 0 and "cached" in capsys.readouterr().out


def test_battery_size():
    assert len(USAGE) + len(CORRUPT) >= 40
