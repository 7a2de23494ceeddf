"""The book's structure: toc <-> chapters <-> the catalogue of results in ../shared/papers."""

import re
from pathlib import Path

import pytest
import yaml

from moebook.chapters import all_chapters, default_parameters

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT.parent / "shared" / "papers"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files


def catalogue_ids(paper: str) -> list[str]:
    path = next(CATALOGUE.glob(f"{paper.lower()}_*.md"))
    return re.findall(r"^### (\S+) — ", path.read_text(), flags=re.M)


def test_every_toc_entry_exists_and_every_chapter_is_in_the_toc():
    files = toc_files()
    for f in files:
        assert (ROOT / f"{f}.md").exists(), f"_toc.yml names {f}, which does not exist"
    chapters = {f"notebooks/{c.id}" for c in all_chapters()}
    assert chapters <= set(files), f"chapters missing from _toc.yml: {sorted(chapters - set(files))}"


@pytest.mark.parametrize("chapter", all_chapters(), ids=lambda c: c.id)
def test_chapter_follows_the_template(chapter):
    text = chapter.path.read_text()
    assert chapter.id.startswith(chapter.paper.lower()) or chapter.id == "moe_primer"
    assert re.search(r"\{prf:[a-z]+\}.*\n:label: " + re.escape(chapter.label) + r"\n", text), \
        f"{chapter.id}: no prf block labelled {chapter.label}"
    assert "seed" in default_parameters(chapter), f"{chapter.id}: no seed parameter"
    assert re.search(r'Claims\("' + re.escape(chapter.label) + r'"[,)]', text), \
        f"{chapter.id}: no claim check for {chapter.label}"
    assert "Provenance" in text and "{exercise}" in text and "{solution-start}" in text
    assert "return fig" not in text and "MPLBACKEND" not in text


@pytest.mark.skipif(not CATALOGUE.is_dir(), reason="the catalogue ../shared/papers is not here")
@pytest.mark.parametrize("chapter", all_chapters(), ids=lambda c: c.id)
def test_chapter_label_is_a_catalogue_id(chapter):
    assert chapter.label in catalogue_ids(chapter.paper)


@pytest.mark.skipif(not CATALOGUE.is_dir(), reason="the catalogue ../shared/papers is not here")
@pytest.mark.parametrize("paper", ["P2"])
def test_every_result_of_a_finished_part_has_a_chapter(paper):
    labels = {c.label for c in all_chapters()}
    missing = [i for i in catalogue_ids(paper) if i not in labels]
    assert not missing, f"{paper} results without a chapter: {missing}"

