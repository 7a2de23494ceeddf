"""Parameter values, read against the type of the chapter's default.

A value comes as text (``-p NAME VALUE``) or as a YAML node of ``notebooks/full_profile.yml``; both
are read with YAML's base loader, which keeps every scalar a string, and then converted to the type
of the default: ``010`` is the integer 10 (never YAML's octal 8), ``1e-3`` is a float, ``2024-01-01``
for an integer is an error (never a date), and a string stays exactly as typed. Supported types:
int, float, bool, str and (nested) lists of those. A bad value is a ``UsageError`` of the form
``parameter NAME: expected ..., got ...``.
"""

from __future__ import annotations

import math
import re

import yaml

from .errors import UsageError

_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_BOOLS = {"true": True, "false": False}


def describe(default) -> str:
    """What a value for this default must look like, for messages."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        inner = _element_default(default)
        if inner is None:
            return "a list"
        words = {"true or false": "booleans", "an integer": "integers", "a number": "numbers",
                 "a string": "strings"}
        d = describe(inner)
        return f"a list of {words.get(d, d.replace('a list', 'lists'))} like {_example(default)}"
    return f"a value of type {type(default).__name__}"


def _example(default) -> str:
    return "[" + ", ".join(_show(v) for v in list(default)[:3]) + "]"


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return _example(v)
    return str(v)


def _element_default(default):
    """A representative element of a list default (a float if ints and floats mix), or None if empty."""
    items = list(default)
    if not items:
        return None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return 0.0 if any(isinstance(v, float) for v in items) else 0
    return items[0]


def supported(default) -> bool:
    if isinstance(default, (bool, int, float, str)):
        return True
    if isinstance(default, (list, tuple)):
        kinds = {type(v) for v in default}
        numeric = kinds <= {int, float}
        return (numeric or len(kinds) <= 1) and all(supported(v) for v in default)
    return False


def _fail(name: str, default, got) -> UsageError:
    shown = got if isinstance(got, str) else _plain(got)
    return UsageError(f"parameter {name}: expected {describe(default)}, got {shown!r}")


def _plain(node) -> str:
    if isinstance(node, list):
        return "[" + ", ".join(_plain(v) for v in node) + "]"
    if isinstance(node, dict):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in node.items()) + "}"
    return str(node)


def convert(name: str, node, default):
    """A YAML base-loader node (str, list or dict of those) as a value of the default's type."""
    if isinstance(default, (list, tuple)):
        if not isinstance(node, list):
            raise _fail(name, default, node)
        inner = _element_default(default)
        try:
            out = [_convert_element(name, v, inner, default) for v in node]
        except UsageError:
            raise _fail(name, default, node) from None
        return tuple(out) if isinstance(default, tuple) else out
    if isinstance(node, (list, dict)):
        raise _fail(name, default, node)
    text = node.strip() if not isinstance(default, str) else node
    if isinstance(default, bool):
        if text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        raise _fail(name, default, node)
    if isinstance(default, int):
        if _INT.match(text):
            return int(text, 10)
        raise _fail(name, default, node)
    if isinstance(default, float):
        if _FLOAT.match(text) and math.isfinite(float(text)):
            return float(text)
        raise _fail(name, default, node)
    if isinstance(default, str):
        return node
    raise UsageError(f"parameter {name}: its default {default!r} is of type {type(default).__name__}, "
                     "which cannot be set from the command line (int, float, bool, str or lists of those)")


def _convert_element(name, node, inner, whole):
    if inner is None:  # an empty default list: take each element as an int, a float or a string
        if isinstance(node, str) and _INT.match(node.strip()):
            return int(node, 10)
        if isinstance(node, str) and _FLOAT.match(node.strip()):
            return float(node)
        if isinstance(node, str):
            return node
        raise _fail(name, whole, node)
    return convert(name, node, inner)


def parse_text(name: str, text: str, default):
    """A ``-p NAME VALUE`` value."""
    if isinstance(default, str):
        return text
    try:
        node = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"parameter {name}: expected {describe(default)}, got {text!r} "
                         f"(not valid: {problem})") from None
    if node is None:
        raise _fail(name, default, text)
    try:
        return convert(name, node, default)
    except UsageError:
        raise _fail(name, default, text) from None


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The ``-p`` pairs as a dict of raw texts; a name given twice is an error."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            raise UsageError(f"parameter {name}: given twice (-p {name} {seen[name]!r} and "
                             f"-p {name} {value!r}); give it once")
        seen[name] = value
    return seen


def digest_text(params: dict) -> str:
    """A canonical text of parameter values (for cache keys and run folders)."""
    import json
    return json.dumps(params, sort_keys=True, separators=(",", ":"))
