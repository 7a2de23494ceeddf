"""Sphinx tweaks for the rendered book (loaded from _config.yml, `sphinx.local_extensions`).

- MathJax on every page. Sphinx loads it only on pages with math, so a chapter title holding math
  showed as raw `\\(...\\)` in the navigation of every other page (search, status, references).
- Author-year labels in the bibliography (style `author_year_plain`), matching the author-year
  citations, instead of the plain style's [1]-[N].
- Each script once per page. sphinx-thebe adds its inline config with `filename=None`; Sphinx 7.4
  keeps that copy and re-adds the registered one as `''`, so every page declared
  `const THEBE_JS_URL` twice and logged a SyntaxError.
"""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _last_names(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_names(p) for p in people]
    if len(names) >= 3 or "others" in names:
        who = f"{names[0]} et al."
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = names[0] if names else entry.fields.get("title", entry.key)
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year(e) for e in sorted_entries]
        for i, label in enumerate(labels):
            same = [j for j, other in enumerate(labels) if other == label]
            yield label + ("abcdefghijklmnopqrstuvwxyz"[same.index(i)] if len(same) > 1 else "")


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels


def _scripts_once(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for js in context.get("script_files", []):
        name = js.filename if hasattr(js, "filename") else str(js)
        key = (name or "", tuple(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    register_plugin("pybtex.style.formatting", "author_year_plain", AuthorYearStyle)
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _scripts_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
