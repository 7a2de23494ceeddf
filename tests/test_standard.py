"""The chapter standard (CONTRIBUTING.md, "The chapter standard"), checked on every chapter.

Source rules, read from notebooks/<id>.md (this module, run by the unit step of `make test`):

- S1 front matter `moebook: {label, paper}`; a `{prf:...}` block whose `:label:` is that label.
- S2 a `{admonition} Provenance` block and an `{admonition} Our set-up` block.
- S3 the `# ` title holds no `$` (titles are plain text in navigation and tab titles).
- S4 no code cell defines a function or class.
- S5 no text mentions "catalog" (any case), code comments included.
- S6 no decimal or scientific number in prose outside math, glue, inline code, fenced blocks, URLs,
  roles (cite keys, refs), directive options and result/section references ("Theorem 5.3",
  "P2-T5.3"); quoted paper values are listed in tests/prose_numbers_allowed.txt.
- S7 every glued key is used in the markdown, and every key used is glued.
- S8 every exercise has a label and a gated solution (`{solution-start} <label>` with
  `:class: dropdown` ... `{solution-end}`) holding a written answer and no fenced code that never runs.

Rules on built artefacts, defined here and applied in tests/test_built.py after `moebook build`:

- E1 the executed notebook carries the `moebook_claims` record of `Claims.report()`: at least one
  `theorem` claim, no `unclassified` claim, every claim holds or is a marked finding.
- H1 every image in a chapter page's body sits in a numbered figure with a "Fig. N" caption.

Each check returns a list of Violations (rule, line, offending text, why); the tests print them
as `notebooks/<id>.md:<line>: <rule> ...`. The unit tests at the end break each rule on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ALLOWED_NUMBERS = Path(__file__).with_name("prose_numbers_allowed.txt")
CHAPTERS = sorted(NOTEBOOKS.glob("*.md"))


@dataclass(frozen=True)
class Violation:
    rule: str
    line: int      # 1-based line in the chapter source (for E1: the cell number; H1: 0)
    text: str      # the offending line or item
    why: str

    def __str__(self) -> str:
        return f"{self.rule} line {self.line}: {self.why}: {self.text.strip()[:160]}"


# ---------------------------------------------------------------------------------------------
# A small MyST-notebook reader that keeps line numbers: fences, directives, code cells, options.

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>[^`]*)$")
CODE_LANGS = {"python", "py", "python3", "ipython", "ipython3", "pycon", "sh", "bash", "shell", "console"}
PYTHON_LANGS = {"python", "py", "python3", "ipython", "ipython3", "pycon"}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "ipython", "literalinclude"}
# directives whose content is not prose (S6 skips them)
NON_PROSE = CODE_DIRECTIVES | {"math", "raw", "glue", "glue:", "glue:any", "glue:text", "glue:figure",
                               "glue:math", "glue:md", "bibliography", "toctree", "tableofcontents",
                               "mermaid", "eval-rst", "image", "include"}
# directives whose argument is a title a reader sees (S6 checks it)
TITLED = {"admonition", "dropdown", "exercise", "exercise-start"}


@dataclass
class Block:
    kind: str              # "code-cell", "directive" or "literal"
    name: str              # directive name ("prf:theorem"), "code-cell", or the literal's language
    arg: str               # directive argument (title, label, key)
    start: int             # 0-based line of the opening fence
    char: str
    length: int
    parent: Block | None
    end: int = -1          # 0-based line of the closing fence
    options: dict = field(default_factory=dict)
    option_lines: set = field(default_factory=set)

    def body(self) -> range:
        first = max(self.option_lines, default=self.start) + 1
        return range(first, self.end)

    def ancestors(self):
        b = self
        while b is not None:
            yield b
            b = b.parent


@dataclass
class Source:
    lines: list[str]
    front: dict
    body_start: int        # first line after the front matter
    blocks: list[Block]
    owner: list            # owner[i]: the innermost block holding line i (its fences included), or None

    def code_cells(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "code-cell"]

    def directives(self, name: str | None = None) -> list[Block]:
        return [b for b in self.blocks if b.kind == "directive" and (name is None or b.name == name)]

    def is_prose(self, i: int) -> bool:
        """Markdown a reader reads: not front matter, fences, options, code, math or glue directives."""
        if i < self.body_start:
            return False
        b = self.owner[i]
        if b is None:
            return True
        if i in (b.start, b.end) or i in b.option_lines:
            return False
        return all(a.kind == "directive" and a.name not in NON_PROSE for a in b.ancestors())


def _parse_options(lines: list[str], block: Block) -> None:
    i = block.start + 1
    if i < len(lines) and lines[i].strip() == "---":           # YAML option block
        for j in range(i + 1, len(lines)):
            if lines[j].strip() == "---":
                block.option_lines.update(range(i, j + 1))
                try:
                    block.options.update(yaml.safe_load("\n".join(lines[i + 1:j])) or {})
                except yaml.YAMLError:
                    pass
                return
        return
    while i < len(lines) and (m := re.match(r"^\s*:([\w-]+):\s*(.*)$", lines[i])):
        block.options[m.group(1)] = m.group(2).strip()
        block.option_lines.add(i)
        i += 1


def parse(text: str) -> Source:
    lines = text.split("\n")
    front: dict = {}
    body_start = 0
    if lines and lines[0].strip() == "---":
        for j in range(1, len(lines)):
            if lines[j].strip() == "---":
                try:
                    front = yaml.safe_load("\n".join(lines[1:j])) or {}
                except yaml.YAMLError:
                    front = {}
                body_start = j + 1
                break
    owner: list = [None] * len(lines)
    blocks: list[Block] = []
    stack: list[Block] = []
    for i in range(body_start, len(lines)):
        m = FENCE.match(lines[i])
        top = stack[-1] if stack else None
        if top is not None:
            if (m and m["fence"][0] == top.char and len(m["fence"]) >= top.length
                    and not m["info"].strip()):
                top.end = i
                owner[i] = top
                stack.pop()
                continue
            if top.kind != "directive" or i in top.option_lines:
                owner[i] = top
                continue
        if m:
            info = m["info"].strip()
            d = re.match(r"^\{([^}]+)\}\s*(.*)$", info)
            if d:
                kind = "code-cell" if d.group(1) == "code-cell" else "directive"
                name, arg = d.group(1), d.group(2).strip()
            else:
                kind, name, arg = "literal", (info.split() or [""])[0].lower(), ""
            b = Block(kind, name, arg, i, m["fence"][0], len(m["fence"]), top)
            if kind != "literal":
                _parse_options(lines, b)
            blocks.append(b)
            stack.append(b)
            owner[i] = b
            continue
        owner[i] = top
    for b in stack:                                            # unclosed fences run to the end
        b.end = len(lines)
    return Source(lines, front, body_start, blocks, owner)


# ---------------------------------------------------------------------------------------------
# S1-S8

def check_s1(src: Source, **_) -> list[Violation]:
    meta = src.front.get("moebook") if isinstance(src.front, dict) else None
    if not isinstance(meta, dict) or not meta.get("label") or not meta.get("paper"):
        return [Violation("S1", 1, f"moebook: {meta!r}",
                          "front matter lacks 'moebook: {label: ..., paper: ...}'")]
    label = str(meta["label"])
    prf = [b for b in src.directives() if b.name.startswith("prf:")]
    if not any(str(b.options.get("label", "")).strip() == label for b in prf):
        found = ", ".join(f"{b.name} :label: {b.options.get('label')}" for b in prf) or "no prf block"
        return [Violation("S1", (prf[0].start + 1) if prf else src.body_start + 1, found,
                          f"no {{prf:...}} block has :label: {label}")]
    return []


def check_s2(src: Source, **_) -> list[Violation]:
    titles = {" ".join(b.arg.split()).lower() for b in src.directives("admonition")}
    return [Violation("S2", src.body_start + 1, f"{{admonition}} {want}", "missing block")
            for want in ("Provenance", "Our set-up") if want.lower() not in titles]


def check_s3(src: Source, **_) -> list[Violation]:
    for i in range(src.body_start, len(src.lines)):
        if src.owner[i] is None and src.lines[i].startswith("# "):
            if "$" in src.lines[i]:
                return [Violation("S3", i + 1, src.lines[i], "math in the title (shown as raw TeX in "
                                  "navigation and tab titles): write it as plain text")]
            return []
    return [Violation("S3", src.body_start + 1, "", "no '# ' title")]


DEF_OR_CLASS = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+\w")


def check_s4(src: Source, **_) -> list[Violation]:
    return [Violation("S4", i + 1, src.lines[i],
                      "a code cell defines a function or class (put it in moe_lib)")
            for b in src.code_cells() for i in b.body() if DEF_OR_CLASS.match(src.lines[i])]


def check_s5(src: Source, **_) -> list[Violation]:
    return [Violation("S5", i + 1, src.lines[i], "mentions the catalogue, which readers do not have")
            for i in range(src.body_start, len(src.lines)) if re.search("catalog", src.lines[i], re.I)]


# S6 -- what is masked before looking for numbers, in this order
_MASKS = [
    re.compile(r"<!--.*?-->", re.S),                               # HTML comments
    re.compile(r"\{[\w:.+-]+\}(`+).*?\1", re.S),                   # roles: glue, cite, math, ref, doc...
    re.compile(r"(`+).+?\1", re.S),                                # inline code
    re.compile(r"\$\$.*?\$\$", re.S),                              # display math
    re.compile(r"\\begin\{([\w*]+)\}.*?\\end\{\1\}", re.S),        # amsmath environments
    re.compile(r"(?<!\\)\$(?!\s)(?:\\.|[^$\\\n]|\n(?!\s*\n))+?(?<!\s)\$"),  # inline math
    re.compile(r"\\\(.*?\\\)", re.S),
    re.compile(r"\]\([^)]*\)"),                                    # link targets
    re.compile(r"<?https?://[^\s>)]+>?"),                          # URLs
    re.compile(r"\barXiv:?\s*\d{4}\.\d{4,5}(?:v\d+)?", re.I),       # arXiv ids
    # references to results and sections: "Theorem 5.3", "Thms 5.2 and 5.3", "Sec. 4.2", "P2-T5.3"
    re.compile(r"(?:\b|§)(?:Theorems?|Thms?\.?|Lemmas?|Corollar(?:y|ies)|Cors?\.?|Definitions?|Defs?\.?|"
               r"Examples?|Exs?\.?|Exercises?|Sections?|Secs?\.?|§|Appendix|Appendices|App\.?|Tables?|"
               r"Tabs?\.?|Figures?|Figs?\.?|Equations?|Eqs?\.?|Propositions?|Props?\.?|Remarks?|"
               r"Assumptions?|Algorithms?|Chapters?|Experiments?|Exps?\.?)\s*\(?[A-Z]?\d+(?:\.\d+)*[a-z]?\)?"
               r"(?:\s*(?:,|and|or|&|-|–|—|to)\s*\(?[A-Z]?\d+(?:\.\d+)*[a-z]?\)?)*", re.I),
    re.compile(r"\b(?:P\d-)?[A-Z]{1,3}\d+(?:\.\d+)+\b"),           # result ids: P2-T5.3, T4.8, EX5.1
]
PROSE_NUMBER = re.compile(r"(?<![\w.])(?:\d+(?:\.\d+)?[eE][+-]?\d+|\d*\.\d+)(?![\w]|\.\d)")


def _mask(text: str) -> str:
    for rx in _MASKS:
        text = rx.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def prose_text(src: Source) -> list[str]:
    """The chapter's lines with everything that is not prose blanked (same line numbers)."""
    keep = []
    for i, line in enumerate(src.lines):
        b = src.owner[i]
        if src.is_prose(i) and not line.startswith(("+++", "%")) and not re.match(r"^\(\S+\)=\s*$", line):
            keep.append(line)
        elif (b is not None and i == b.start and b.kind == "directive"
              and (b.name in TITLED or b.name.startswith("prf:"))
              and all(a.kind == "directive" and a.name not in NON_PROSE for a in b.ancestors())):
            keep.append(" " * (len(line) - len(b.arg)) + b.arg)    # a reader-visible title
        else:
            keep.append("")
    return _mask("\n".join(keep)).split("\n")


def read_allowed(path: Path = ALLOWED_NUMBERS) -> tuple[set[tuple[str, str]], list[str]]:
    """Allow-list entries `chapter_id number  # why`, and the malformed lines."""
    allowed, bad = set(), []
    for n, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, _, why = line.partition("#")
        parts = entry.split()
        if len(parts) != 2 or not why.strip() or not PROSE_NUMBER.fullmatch(parts[1]):
            bad.append(f"{path.name}:{n}: expected 'chapter_id number  # why', got {line!r}")
            continue
        allowed.add((parts[0], parts[1]))
    return allowed, bad


def prose_numbers(src: Source) -> list[tuple[int, str]]:
    return [(i, m.group(0)) for i, line in enumerate(prose_text(src)) for m in PROSE_NUMBER.finditer(line)]


def check_s6(src: Source, chapter: str = "", allowed: set | None = None, **_) -> list[Violation]:
    allowed = read_allowed()[0] if allowed is None else allowed
    return [Violation("S6", i + 1, src.lines[i], f"number {num} typed into prose (glue it, or quote the "
                      f"paper and list '{chapter} {num}  # why' in tests/prose_numbers_allowed.txt)")
            for i, num in prose_numbers(src) if (chapter, num) not in allowed]


GLUE_CALL = re.compile(r"""\bglue\(\s*(f?)(["'])(.*?)\2""")
GLUE_ROLE = re.compile(r"\{glue(?::[\w-]*)?\}`([^`]+)`")


def glue_keys(src: Source) -> tuple[dict[str, int], dict[str, int]]:
    """(keys glued in code cells, keys used in the markdown), each with its first line (0-based)."""
    defined: dict[str, int] = {}
    for b in src.code_cells():
        for i in b.body():
            for m in GLUE_CALL.finditer(src.lines[i]):
                defined.setdefault(("f:" if m.group(1) else "") + m.group(3), i)
    used: dict[str, int] = {}
    code = {i for b in src.code_cells() for i in b.body()}
    for i, line in enumerate(src.lines):
        if i < src.body_start or i in code:
            continue
        for m in GLUE_ROLE.finditer(line):
            used.setdefault(m.group(1).split(":")[0].strip(), i)
    for b in src.directives():
        if b.name.startswith("glue") and b.arg:
            used.setdefault(b.arg.split()[0], b.start)
    return defined, used


def _fstring_pattern(key: str) -> re.Pattern:
    parts = re.split(r"\{[^}]*\}", key)
    return re.compile(".+".join(re.escape(p) for p in parts) + "$")


def check_s7(src: Source, **_) -> list[Violation]:
    defined, used = glue_keys(src)
    literal = {k for k in defined if not k.startswith("f:")}
    patterns = {k: _fstring_pattern(k[2:]) for k in defined if k.startswith("f:")}
    out = [Violation("S7", i + 1, src.lines[i], f"glue key '{k}' is glued but never used in the text")
           for k, i in defined.items() if k in literal and k not in used]
    out += [Violation("S7", i + 1, src.lines[i],
                      f"glue key pattern '{k[2:]}' matches no key used in the text")
            for k, i in defined.items() if k in patterns and not any(patterns[k].match(u) for u in used)]
    out += [Violation("S7", i + 1, src.lines[i], f"glue key '{k}' is used but never glued")
            for k, i in used.items()
            if k not in literal and not any(p.match(k) for p in patterns.values())]
    return sorted(out, key=lambda v: v.line)


def check_s8(src: Source, **_) -> list[Violation]:
    out: list[Violation] = []
    exercises = [b for b in src.directives() if b.name in ("exercise", "exercise-start")]
    labels = {}
    for b in exercises:
        label = str(b.options.get("label", "")).strip()
        if not label:
            out.append(Violation("S8", b.start + 1, src.lines[b.start], "exercise without :label:"))
        else:
            labels[label] = b
    solved: set[str] = set()
    for b in src.directives("solution"):
        solved.add(b.arg.split()[0] if b.arg else "")
        out.append(Violation("S8", b.start + 1, src.lines[b.start], "solution written with {solution}: use "
                             "the gated {solution-start} <label> ... {solution-end} so its code is a real "
                             "code cell"))
        out += _solution_body(src, b.start, range(b.body().start, b.end))
    starts = src.directives("solution-start")
    ends = src.directives("solution-end")
    for k, b in enumerate(starts):
        label = b.arg.split()[0] if b.arg else ""
        solved.add(label)
        if label not in labels:
            out.append(Violation("S8", b.start + 1, src.lines[b.start], f"solution for unknown exercise "
                                 f"'{label}'"))
        if "dropdown" not in str(b.options.get("class", "")):
            out.append(Violation("S8", b.start + 1, src.lines[b.start], "solution without :class: dropdown"))
        limit = starts[k + 1].start if k + 1 < len(starts) else len(src.lines)
        end = next((e for e in ends if b.end < e.start < limit), None)
        if end is None:
            out.append(Violation("S8", b.start + 1, src.lines[b.start], "no {solution-end} before the next "
                                 "solution or the end of the chapter"))
            continue
        out += _solution_body(src, b.start, range(b.end + 1, end.start))
    for label, b in labels.items():
        if label not in solved:
            out.append(Violation("S8", b.start + 1, src.lines[b.start],
                                 f"exercise '{label}' has no solution"))
    return sorted(out, key=lambda v: v.line)


def _solution_body(src: Source, start: int, region: range) -> list[Violation]:
    out = []
    for b in src.blocks:
        if b.start in region and ((b.kind == "literal" and b.name in CODE_LANGS)
                                  or (b.kind == "directive" and b.name in CODE_DIRECTIVES)):
            out.append(Violation("S8", b.start + 1, src.lines[b.start],
                                 "fenced code in a solution never runs: "
                                 "make it a {code-cell} between {solution-start} and {solution-end}"))
    answer = any(src.is_prose(i) and re.search(r"[A-Za-z]{2}", src.lines[i])
                 and not src.lines[i].startswith(("+++", "%")) for i in region)
    if not answer:
        out.append(Violation("S8", start + 1, src.lines[start], "solution without a written answer"))
    return out


SOURCE_RULES = {"S1": check_s1, "S2": check_s2, "S3": check_s3, "S4": check_s4, "S5": check_s5,
                "S6": check_s6, "S7": check_s7, "S8": check_s8}


def check_source(text: str, chapter: str, rules=SOURCE_RULES, allowed: set | None = None) -> list[Violation]:
    src = parse(text)
    return [v for rule in rules for v in SOURCE_RULES[rule](src, chapter=chapter, allowed=allowed)]


def report(chapter: str, where: str, violations: list[Violation]) -> str:
    return f"{chapter}: {len(violations)} violation(s) of the chapter standard:\n" + "\n".join(
        f"  {where}:{v.line}: {v}" for v in violations)


# ---------------------------------------------------------------------------------------------
# E1 (executed notebook) and H1 (built HTML); applied in tests/test_built.py

def claims_record(nb: dict) -> tuple[int, dict] | None:
    """(cell number, record) of the last `moebook_claims` JSON output in an executed notebook."""
    found = None
    for n, cell in enumerate(nb.get("cells", []), 1):
        for out in cell.get("outputs", []) or []:
            data = (out.get("data") or {}).get("application/json")
            if isinstance(data, dict) and "moebook_claims" in data:
                found = (n, data["moebook_claims"])
    return found


def check_e1(nb: dict) -> list[Violation]:
    found = claims_record(nb)
    if found is None:
        return [Violation("E1", 0, "",
                          "no moebook_claims record: the claim cell must end with claims.report()")]
    cell, rec = found
    claims = rec.get("claims") or []
    out = []
    if not any(c.get("kind") == "theorem" for c in claims):
        out.append(Violation("E1", cell, rec.get("result", ""), "no claim of kind 'theorem' (the paper's "
                             "quantitative statement on measured values)"))
    unkinded = [c for c in claims if c.get("kind") not in ("theorem", "derived", "identity")]
    if unkinded:
        names = "; ".join(c.get("name", "") for c in unkinded[:3]) + ("; ..." if len(unkinded) > 3 else "")
        out.append(Violation("E1", cell, names, f"{len(unkinded)} of {len(claims)} claims have no kind "
                             f"({', '.join(sorted({str(c.get('kind')) for c in unkinded}))}): pass "
                             "kind='theorem'|'derived'|'identity'"))
    for c in claims:
        if bool(c.get("holds")) == bool(c.get("finding")):
            why = ("finding is stale: the claim holds" if c.get("finding")
                   else "claim fails and is not a finding")
            out.append(Violation("E1", cell, c.get("name", ""), f"{why} (measured {c.get('measured')}, "
                                 f"required {c.get('required')})"))
    return out


def check_h1(html: str) -> list[Violation]:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(html, "html.parser")
    body = soup.select_one("article.bd-article") or soup.find("main") or soup.body or soup
    out = []
    for n, img in enumerate(body.find_all("img"), 1):
        fig = img.find_parent("figure")
        where = f"image {n} ({img.get('src', '')[:60]}) after '{_heading_before(img)}'"
        if fig is None:
            out.append(Violation("H1", n, where, "image outside a numbered figure"))
            continue
        num = fig.select_one("figcaption .caption-number")
        if num is None or not re.match(r"Fig\.\s*\d+", num.get_text(strip=True)):
            out.append(Violation("H1", n, where, "figure without a 'Fig. N' caption"))
    return out


def _heading_before(tag) -> str:
    h = tag.find_previous(["h1", "h2", "h3", "h4"])
    return h.get_text(" ", strip=True).rstrip("#¶ ") if h else "start of page"


# ---------------------------------------------------------------------------------------------
# The tests: every chapter, every rule

@pytest.mark.parametrize("rule", list(SOURCE_RULES))
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_source(path, rule):
    bad = check_source(path.read_text(), path.stem, rules=[rule])
    assert not bad, report(path.stem, f"notebooks/{path.name}", bad)


def test_allowed_numbers_are_well_formed_and_used():
    allowed, malformed = read_allowed()
    assert not malformed, "\n".join(malformed)
    found = {(p.stem, num) for p in CHAPTERS for _, num in prose_numbers(parse(p.read_text()))}
    stale = sorted(allowed - found)
    assert not stale, ("tests/prose_numbers_allowed.txt lists numbers no chapter's prose contains "
                       f"(remove them): {stale}")


def test_book_page_and_part_titles_are_plain_text():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    bad = [f"_toc.yml caption {p['caption']!r}" for p in toc.get("parts", []) if "$" in p.get("caption", "")]
    for page in sorted((ROOT / "book").glob("*.md")):
        title = next((ln for ln in page.read_text().splitlines() if ln.startswith("# ")), "")
        if "$" in title:
            bad.append(f"book/{page.name}: {title}")
    assert not bad, "math in titles shows as raw TeX in navigation and tab titles:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------------
# Each rule, broken on purpose

GOOD = '''---
jupytext:
  text_representation:
    format_name: myst
moebook:
  label: P9-T1.1
  paper: P9
---

# A good chapter

```{admonition} Provenance
:class: note
Theorem 1.1 of the paper [paper], see P9-T1.1 and Thms 1.1 and 2.3.
```

```{prf:theorem} Rate (Thm 1.1)
:label: P9-T1.1
The error is $O(m^{-0.5})$ and $$x = 0.25$$ holds.
```

```{admonition} Our set-up
:class: note
We use {glue:text}`p9_t1_1_m` widths, see [the doc](https://example.org/v1.5).
```

```{code-cell} ipython3
:tags: [parameters, remove-cell]
seed = 0    # seed of the run
rate = 0.5  # a decimal in code is fine
```

```{code-cell} ipython3
glue("p9_t1_1_m", 3, display=False)
glue("p9_t1_1_err", 0.01, display=False)
print(f"{1e-3:.3g}")
```

The error is {glue:text}`p9_t1_1_err:.3g`, with `tol = 1e-12` in code and arXiv:2505.24205.

```{glue:figure} p9_t1_1_err
:name: fig-p9-err
A caption.
```

````{exercise}
:label: p9-ex-a
Compute it.
````

```{solution-start} p9-ex-a
:class: dropdown
```

The answer is three, as the cell below computes.

```{code-cell} ipython3
print(1 + 2)
```

```{solution-end}
```
'''


def _rules(text: str, chapter: str = "p9_t1_1", allowed: set | None = None) -> dict[str, list[Violation]]:
    out: dict[str, list[Violation]] = {}
    for v in check_source(text, chapter, allowed=set() if allowed is None else allowed):
        out.setdefault(v.rule, []).append(v)
    return out


def test_the_good_example_passes_every_rule():
    assert _rules(GOOD) == {}


def test_s1_front_matter_and_prf_label():
    assert "S1" in _rules(GOOD.replace("  label: P9-T1.1\n", ""))
    bad = _rules(GOOD.replace(":label: P9-T1.1", ":label: P9-T1.2"))["S1"]
    assert "no {prf:...} block has :label: P9-T1.1" in bad[0].why


def test_s2_provenance_and_setup_blocks():
    assert [v.text for v in _rules(GOOD.replace("{admonition} Our set-up", "{admonition} Setup"))["S2"]] \
        == ["{admonition} Our set-up"]
    assert "S2" in _rules(GOOD.replace("{admonition} Provenance", "{note}"))


def test_s3_no_math_in_the_title():
    v = _rules(GOOD.replace("# A good chapter", "# A $E^L$ chapter"))["S3"]
    assert v[0].line == 10 and "$E^L$" in v[0].text


def test_s4_no_def_or_class_in_code_cells():
    v = _rules(GOOD.replace("print(1 + 2)", "def f(x):\n    class A:\n        pass\n    return x"))["S4"]
    assert [x.text.strip() for x in v] == ["def f(x):", "class A:"]


def test_s5_no_catalogue():
    v = _rules(GOOD.replace("# seed of the run", "# as in the Catalogue"))["S5"]
    assert len(v) == 1 and "Catalogue" in v[0].text


def test_s6_numbers_in_prose():
    text = GOOD.replace("Compute it.", "Compute it to 0.031, or .5, or 1e-3 or 2.5e+04 (Fig. 3).")
    v = _rules(text)["S6"]
    assert [x.why.split()[1] for x in v] == ["0.031", ".5", "1e-3", "2.5e+04"]
    assert v[0].line == text.split("\n").index("Compute it to 0.031, or .5, or 1e-3 or 2.5e+04 (Fig. 3).") + 1
    assert "S6" not in _rules(text, allowed={("p9_t1_1", n) for n in ("0.031", ".5", "1e-3", "2.5e+04")})
    # numbers in titles of prose blocks count; in math, code, glue, options and references they do not
    assert "S6" in _rules(GOOD.replace("Rate (Thm 1.1)", "Rate 0.5"))
    assert "S6" in _rules(GOOD.replace("| header", "").replace("Compute it.", "| a | 0.25 |\n|---|---|"))


def test_s6_allow_list_format(tmp_path):
    p = tmp_path / "allowed.txt"
    p.write_text("# comment\np2_exp2 0.031  # Table 3 of the paper\np2_exp2 0.5\np2_exp2 abc  # x\n")
    allowed, bad = read_allowed(p)
    assert allowed == {("p2_exp2", "0.031")} and len(bad) == 2


def test_s7_glue_keys_defined_and_used():
    v = _rules(GOOD.replace('glue("p9_t1_1_m", 3, display=False)', 'glue("p9_t1_1_m", 3, display=False)\n'
                            'glue("p9_t1_1_unused", 1.0, display=False)'))["S7"]
    assert [x.why for x in v] == ["glue key 'p9_t1_1_unused' is glued but never used in the text"]
    v = _rules(GOOD.replace("{glue:text}`p9_t1_1_m`", "{glue:text}`p9_t1_1_typo`"))["S7"]
    assert {x.why for x in v} == {"glue key 'p9_t1_1_m' is glued but never used in the text",
                                  "glue key 'p9_t1_1_typo' is used but never glued"}
    # f-string keys count as patterns
    assert "S7" not in _rules(GOOD.replace('glue("p9_t1_1_m"', 'glue(f"p9_t1_1_{name}"'))


def test_s8_gated_solutions():
    assert _rules(GOOD.replace(":label: p9-ex-a\n", ""))["S8"][0].why == "exercise without :label:"
    assert "S8" in _rules(GOOD.replace(":class: dropdown\n```\n\nThe", "```\n\nThe"))
    no_answer = GOOD.replace("The answer is three, as the cell below computes.\n", "")
    assert [v.why for v in _rules(no_answer)["S8"]] == ["solution without a written answer"]
    fenced = GOOD.replace("```{code-cell} ipython3\nprint(1 + 2)", "```python\nprint(1 + 2)")
    assert [v.why.split(":")[0] for v in _rules(fenced)["S8"]] == ["fenced code in a solution never runs"]
    no_end = GOOD.replace("```{solution-end}\n```\n", "")
    assert "no {solution-end}" in _rules(no_end)["S8"][0].why
    unsolved = GOOD.replace("{solution-start} p9-ex-a", "{solution-start} p9-ex-b")
    assert {v.why for v in _rules(unsolved)["S8"]} == {"solution for unknown exercise 'p9-ex-b'",
                                                       "exercise 'p9-ex-a' has no solution"}
    old_style = GOOD.replace("```{solution-start} p9-ex-a\n:class: dropdown\n```\n",
                             "````{solution} p9-ex-a\n:class: dropdown\n").replace(
        "```{code-cell} ipython3\nprint(1 + 2)\n```\n\n```{solution-end}\n```\n",
        "```python\nx = 1\n```\n````\n")
    assert [v.why.split(":")[0] for v in _rules(old_style)["S8"]] == ["solution written with {solution}",
                                                                     "fenced code in a solution never runs"]


def _nb(claims, json=True):
    rec = {"moebook_claims": {"result": "P9-T1.1", "claims": claims}}
    out = {"output_type": "execute_result", "data": {"text/plain": "..."} | ({"application/json": rec}
                                                                            if json else {})}
    return {"cells": [{"cell_type": "code", "outputs": []}, {"cell_type": "code", "outputs": [out]}]}


def _claim(kind="theorem", holds=True, finding=""):
    return {"name": "c", "kind": kind, "holds": holds, "measured": "1", "required": "<= 2", "why": "",
            "finding": finding}


def test_e1_claim_record():
    assert check_e1(_nb([_claim(), _claim("identity"), _claim(holds=False, finding="too few steps")])) == []
    assert check_e1(_nb([_claim()], json=False))[0].why.startswith("no moebook_claims record")
    assert "no claim of kind 'theorem'" in check_e1(_nb([_claim("derived")]))[0].why
    v = check_e1(_nb([_claim(), _claim("unclassified"), _claim("unclassified")]))
    assert [x.why for x in v] == ["2 of 3 claims have no kind (unclassified): "
                                  "pass kind='theorem'|'derived'|'identity'"]
    assert check_e1(_nb([_claim(holds=False)]))[0].why.startswith("claim fails and is not a finding")
    assert check_e1(_nb([_claim(finding="x")]))[0].why.startswith("finding is stale")
    assert check_e1(_nb([_claim()]))[0:1] == [] and claims_record(_nb([_claim()]))[0] == 2


def test_h1_captions():
    page = ('<html><body><article class="bd-article"><h2>Rate</h2>'
            '<figure><img src="a.png"><figcaption><p><span class="caption-number">Fig. 2 </span>'
            'Error.</p></figcaption></figure>{}</article></body></html>')
    assert check_h1(page.format("")) == []
    v = check_h1(page.format('<div class="cell_output"><img src="b.png"></div>'))
    assert [x.why for x in v] == ["image outside a numbered figure"] and "b.png" in v[0].text
    v = check_h1(page.format('<figure><img src="c.png"><figcaption>no number</figcaption></figure>'))
    assert [x.why for x in v] == ["figure without a 'Fig. N' caption"]
