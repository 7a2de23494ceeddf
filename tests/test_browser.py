"""H2: every built page, opened in headless Chromium with the network cut, reads clean.

No raw TeX in the visible text, link texts or tab title; no broken image; no console error; no
request that is not a local file. `make test` runs this after `moebook build --strict` and
installs Debian's `chromium` first when it can; without a browser this module skips, loudly, and
nothing else does. The helper that drives the browser is tests/browser_check.py.
"""

from __future__ import annotations

import pytest
from browser_check import Browser, find_chromium, raw_tex
from test_standard import ROOT

HTML = ROOT / "_build" / "html"
PAGES = sorted(p for p in HTML.rglob("*.html")
               if not {"_static", "_sources", "_images"} & set(p.relative_to(HTML).parts)) \
    if HTML.is_dir() else []
NO_BROWSER = ("\n" + "!" * 78 + "\nBROWSER CHECK SKIPPED: no chromium on this machine, so the built pages "
              "were "
              "NOT checked for raw TeX, broken images, console errors or network requests.\nInstall it "
              "(Debian: apt-get install chromium; `make test` does this when run as root).\n" + "!" * 78)


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip(NO_BROWSER)
    with Browser() as b:
        yield b


def test_raw_tex_patterns():
    assert raw_tex("the class H and E^L pieces, 5 $ and 6 $") == []
    found = " ".join(raw_tex(r"a \(x\) b $E^L$ c \mathcal H d x_{1}"))
    for what in ("TeX delimiter", "dollar math", "TeX command", "TeX sub/superscript"):
        assert what in found


def test_the_checker_catches_a_broken_page(browser, tmp_path):
    """Each kind of defect, on purpose: the page must be reported for every one of them."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><head><title>Pieces: $E^L$</title>"
        "<script>let THEBE_JS_URL = 1;</script><script>let THEBE_JS_URL = 2;</script>"
        "<script>console.error('boom')</script></head><body><p>Text with \\(x\\) and \\mathcal{H}.</p>"
        "<img src='missing.png'><img src='http://example.com/x.png'>"
        "<script src='https://cdn.example.com/mathjax.js'></script></body></html>")
    rep = browser.inspect(page.as_uri(), mathjax_timeout_ms=1000)
    problems = "\n".join(rep.problems())
    assert "THEBE_JS_URL" in problems and "boom" in problems
    assert "broken image: missing.png" in problems
    assert "request that is not a local file: http://example.com/x.png" in problems
    assert "https://cdn.example.com/mathjax.js" in problems
    assert "raw TeX: dollar math '$E^L$'" in problems and "TeX command '\\\\mathcal'" in problems
    clean = tmp_path / "clean.html"
    clean.write_text("<html><head><title>Clean</title></head><body><p>Plain text.</p></body></html>")
    assert browser.inspect(clean.as_uri()).problems() == []


def test_the_network_is_cut(browser):
    if not browser.network_cut:
        pytest.skip("unshare -n is not allowed here, so the network is not cut; host names still resolve "
                    "to nowhere and every request that is not a local file is still reported")


@pytest.mark.parametrize("page", PAGES or [None], ids=lambda p: str(p.relative_to(HTML)) if p else "unbuilt")
def test_h2_page_reads_clean(browser, page):
    if page is None:
        pytest.skip(f"H2: the book is not built ({HTML} has no pages; run 'moebook build')")
    rep = browser.inspect(page.as_uri())
    problems = rep.problems()
    where = f"H2 {page.relative_to(HTML)} (MathJax: {rep.mathjax})"
    assert not problems, (f"{where}: {len(problems)} problem(s):\n"
                          + "\n".join(f"  {p}" for p in problems))

