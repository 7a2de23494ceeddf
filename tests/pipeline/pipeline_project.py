"""A throw-away moebook project of tiny chapters, shared by the tests/test_pipeline*.py files."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

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

{params}
```

```{{code-cell}} ipython3
{body}
```
"""

PARAMS = """\
n = 3  # an integer
scale = 0.5  # a float
flag = False  # a boolean
name = "float32"  # a string
grid = [8, 16]  # a list of integers
lrs = [0.001, 0.01]  # a list of floats"""

# Prints what the kernel's environment is, and records one claim of each kind as Claims.report() does.
GOOD_BODY = """\
import os
from IPython.display import display
print(n * scale, os.environ.get('TQDM_DISABLE'), os.environ.get('MPLBACKEND'),
      os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'),
      os.environ.get('OPENBLAS_NUM_THREADS'))
rows = [dict(name='a rate', kind='theorem', holds=True, measured='1', required='<= 2', why='', finding=''),
        dict(name='a step', kind='derived', holds=False, measured='3', required='<= 2', why='f',
             finding='explained')]
display({'application/json': {'moebook_claims': {'result': 'P9-A', 'claims': rows}},
         'text/plain': 'claims'}, raw=True)"""


def chapter(label: str, title: str, body: str, params: str = PARAMS) -> str:
    return HEADER.format(label=label, title=title, body=textwrap.dedent(body), params=params)


def make_project(root: Path, chapters: dict[str, str] | None = None) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "moe_lib").mkdir()
    (root / "moe_lib" / "lib.py").write_text("X = 1\n")
    (root / "requirements.lock").write_text("numpy==2\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    if chapters is None:
        chapters = {"p9_a_good": chapter("P9-A", "Good", GOOD_BODY),
                    "p9_b_bad": chapter("P9-B.1", "Bad", "raise RuntimeError('boom')")}
    for name, text in chapters.items():
        (root / "notebooks" / f"{name}.md").write_text(text)
    return root


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def executed(root: Path, name: str, profile: str = "book") -> Path:
    return root / "_build" / "executed" / profile / name


def outputs(path: Path) -> list:
    """Every code cell's outputs, for comparing runs cell by cell."""
    nb = json.loads(path.read_text())
    return [c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"]
