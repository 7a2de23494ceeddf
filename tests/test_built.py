"""The chapter standard on what the pipeline produced: E1 on the executed notebooks, H1 on the HTML.

`make test` runs this module after `moebook run --all` and `moebook build --strict` (the unit step
skips it). The rules and their unit tests are in tests/test_standard.py. A chapter that has not
been executed or built is skipped, saying which command makes it.
"""

from __future__ import annotations

import json

import pytest
from test_standard import CHAPTERS, ROOT, check_e1, check_h1, report

EXECUTED = ROOT / "_build" / "executed" / "book"
HTML = ROOT / "_build" / "html"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_e1_claims_of_the_executed_chapter(path):
    nb = EXECUTED / f"{path.stem}.ipynb"
    if not nb.exists():
        pytest.skip(f"E1 {path.stem}: not executed ({nb.relative_to(ROOT)} is missing; "
                    f"run 'moebook run {path.stem}')")
    bad = check_e1(json.loads(nb.read_text()))
    assert not bad, report(path.stem, f"{nb.relative_to(ROOT)} cell", bad)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_h1_every_image_is_a_numbered_figure(path):
    page = HTML / "notebooks" / f"{path.stem}.html"
    if not page.exists():
        pytest.skip(f"H1 {path.stem}: not built ({page.relative_to(ROOT)} is missing; run 'moebook build')")
    bad = check_h1(page.read_text())
    assert not bad, report(path.stem, f"{page.relative_to(ROOT)} image", bad)
