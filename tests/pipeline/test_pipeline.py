"""The moebook pipeline on a throw-away project of two tiny chapters (one of which fails)."""

import json
import textwrap

import pytest

from moebook import cli
from moebook.chapters import short_label

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
moebook:
  label: {label}
  paper: P9
---

# {title}

```{{code-cell}} ipython3
:tags: [parameters, remove-cell]

n = 3
scale = 0.5
```

```{{code-cell}} ipython3
{body}
```
"""


def chapter(label, title, body):
    return HEADER.format(label=label, title=title, body=textwrap.dedent(body))


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "moe_lib").mkdir()
    (tmp_path / "moe_lib" / "lib.py").write_text("X = 1\n")
    (tmp_path / "requirements.lock").write_text("numpy==2\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "notebooks" / "p9_a_good.md").write_text(
        chapter("P9-A", "Good", "import os\nprint(n * scale, os.environ.get('TQDM_DISABLE'),"
                                   " os.environ.get('MPLBACKEND'))"))
    (tmp_path / "notebooks" / "p9_b_bad.md").write_text(
        chapter("P9-B.1", "Bad", "raise RuntimeError('boom')"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def executed(project, name):
    return project / "_build" / "executed" / "book" / name


def test_short_label():
    assert short_label("P2-T5.3") == "p2_t5_3"
    assert short_label("P2-D4.1-4.3+T4.4") == "p2_d4_1_4_3_t4_4"


def test_list(project, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "p9_a_good" in out and "p9_b_1" in out and "Bad" in out


def test_unknown_chapter_and_parameter_exit_2(project, capsys):
    assert cli.main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown chapter nope" in err and "p9_a_good (p9_a)" in err
    assert cli.main(["run", "p9_a", "-p", "bogus", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter bogus" in err and "n (default 3)" in err and "scale" in err
    assert not (project / "_build" / "executed" / "book" / "p9_a_good.ipynb").exists()


def test_run_caches_reruns_on_change_and_keeps_failures(project, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # must not reach the kernel: it drops every figure
    rc = cli.main(["run", "--all"])
    out = capsys.readouterr().out
    assert rc == 1  # one chapter failed, the other still ran
    assert "p9_a_good  ok" in out and "p9_b_bad   FAILED" in out and "boom" in out
    good = executed(project, "p9_a_good.ipynb")
    assert "1.5 1 module://matplotlib_inline" in good.read_text()
    assert json.loads(executed(project, "p9_a_good.json").read_text())["params"] == {"n": 3, "scale": 0.5}
    assert "RuntimeError" in executed(project, "p9_b_bad.failed.ipynb").read_text()
    assert not executed(project, "p9_b_bad.ipynb").exists()
    assert not list(executed(project, "").glob("*partial*"))
    nb = json.loads(good.read_text())
    assert nb["metadata"]["papermill"]["input_path"] == "notebooks/p9_a_good.md"

    assert cli.main(["run", "p9_a"]) == 0
    assert "cached" in capsys.readouterr().out
    assert cli.main(["run", "p9_a", "-p", "scale", "2.5"]) == 0  # new parameters: executed again
    assert "p9_a_good  ok" in capsys.readouterr().out
    assert "7.5 1 module://matplotlib_inline" in good.read_text()
    (project / "moe_lib" / "lib.py").write_text("X = 2\n")  # the library changed: executed again
    assert cli.main(["run", "p9_a", "-p", "scale", "2.5"]) == 0
    assert "p9_a_good  ok" in capsys.readouterr().out


def test_build_refuses_missing_or_stale_chapters(project, capsys):
    from moebook.build import stale_or_missing
    from moebook.chapters import all_chapters

    chapters = all_chapters()
    assert stale_or_missing(chapters, "book") == ["p9_a_good (not executed)", "p9_b_bad (not executed)"]
    assert cli.main(["run", "p9_a"]) == 0
    assert stale_or_missing(chapters[:1], "book") == []
    path = project / "notebooks" / "p9_a_good.md"
    path.write_text(path.read_text() + "\nA new paragraph.\n")
    assert stale_or_missing(chapters[:1], "book") == [
        "p9_a_good (stale: its source, moe_lib or the lock changed)"]
    assert cli.main(["build"]) == 1
    assert "run 'moebook run --all' first" in capsys.readouterr().err
