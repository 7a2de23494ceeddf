"""The layout rules of moe_lib (CONTRIBUTING.md), checked by parsing every import with ast.

1. Imports run one way: utilities <- models <- {geometry, fitting, analysis, capacity} <-
   constructions <- experiments (a module imports only lower layers or its own subpackage; the
   four middle subpackages do not import each other); so models never imports fitting.
2. A paper's modules (prefix p1_, p2_, p3_ in constructions/ and experiments/) never import
   another paper's.
3. No module imports another module's private names (``from x import _name``, ``x._name``).
4. moe_lib never imports moebook, IPython, Jupyter or myst_nb; matplotlib only in plots.py.
5. moebook never imports moe_lib.
6. No module over 500 lines, and no paper-specific (p1_/p2_/p3_) module at the top of moe_lib.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UTILITIES = {"claims", "validate", "seed", "progress", "plots"}
LAYER = {"models": 1, "geometry": 2, "fitting": 2, "analysis": 2, "capacity": 2,
         "constructions": 3, "experiments": 4}
NOTEBOOK_ONLY = ("moebook", "IPython", "ipykernel", "ipywidgets", "jupyter", "jupyter_client",
                 "myst_nb", "nbformat", "nbclient", "papermill")
PAPER = re.compile(r"^(p\d)_")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path):
    """(line, target module, imported name or None) for every import of ``path``."""
    mod = _module_name(path, root)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                yield node.lineno, target, a.name


def _submodule(root: Path, target: str, name: str | None) -> str:
    """``from pkg import name`` imports the module pkg.name when that file exists."""
    if name and name != "*":
        cand = root.joinpath(*(target + "." + name).split("."))
        if cand.with_suffix(".py").exists() or (cand / "__init__.py").exists():
            return target + "." + name
    return target


def _layer(mod: str) -> tuple[int, str]:
    parts = mod.split(".")
    if len(parts) < 2:
        return (-1, "")                 # moe_lib itself (its __init__ re-exports everything)
    if parts[1] in UTILITIES:
        return (0, "utilities")
    return (LAYER.get(parts[1], 99), parts[1])


def violations(root: Path = ROOT) -> list[str]:
    out = []
    lib = root / "moe_lib"
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(root)
        n_lines = len(path.read_text().splitlines())
        if n_lines > 500:
            out.append(f"{rel}: {n_lines} lines (> 500)")
        if path.parent == lib and PAPER.match(path.name):
            out.append(f"{rel}: paper-specific module at the top level of moe_lib")
        mod = _module_name(path, root)
        my_layer, my_pkg = _layer(mod)
        my_paper = PAPER.match(mod.split(".")[-1])
        for line, target, name in _imports(path, root):
            where = f"{rel}:{line}"
            top = target.split(".")[0]
            if top in NOTEBOOK_ONLY:
                out.append(f"{where}: moe_lib imports {target} (notebook machinery)")
            if top == "matplotlib" and mod != "moe_lib.plots":
                out.append(f"{where}: matplotlib outside moe_lib/plots.py")
            if top != "moe_lib":
                continue
            full = _submodule(root, target, name)
            if name and name.startswith("_") and full == target and target != mod:
                out.append(f"{where}: imports the private name {name} from {target}")
            if mod == "moe_lib":
                continue
            t_layer, t_pkg = _layer(full)
            if t_layer == -1:
                out.append(f"{where}: imports the top-level moe_lib package (import a module)")
            elif t_layer > my_layer or (t_layer == my_layer and t_pkg != my_pkg):
                out.append(f"{where}: {my_pkg} (layer {my_layer}) imports {full} "
                           f"({t_pkg}, layer {t_layer}): imports run one way")
            t_paper = PAPER.match(full.split(".")[-1])
            if my_paper and t_paper and my_paper.group(1) != t_paper.group(1):
                out.append(f"{where}: {my_paper.group(1)} code imports {full} ({t_paper.group(1)})")
        # attribute access to private names of imported moe_lib modules: alias._name
        tree = ast.parse(path.read_text())
        mod_aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    mod_aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    mod_aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.value.id in mod_aliases and node.value.id not in ("torch", "np")):
                out.append(f"{rel}:{node.lineno}: uses the private name "
                           f"{node.value.id}.{node.attr} of another module")
    for path in sorted((root / "moebook").rglob("*.py")):
        for line, target, _ in _imports(path, root):
            if target.split(".")[0] == "moe_lib":
                out.append(f"{path.relative_to(root)}:{line}: moebook imports moe_lib")
    return out


def test_layout_and_import_rules_hold():
    found = violations()
    assert not found, "layout rules broken:\n" + "\n".join(found)


@pytest.mark.parametrize("rel, line, message", [
    ("moe_lib/models/extra.py", "from ..fitting import train\n", "imports run one way"),
    ("moe_lib/geometry/extra.py", "from ..fitting.random_features import sup_error\n",
     "imports run one way"),
    ("moe_lib/constructions/p1_extra.py", "from . import p2_shallow\n", "p1 code imports"),
    ("moe_lib/fitting/extra.py", "from .train import _stacked\n", "private name"),
    ("moe_lib/analysis/extra.py", "import matplotlib.pyplot as plt\n", "matplotlib outside"),
    ("moe_lib/analysis/extra.py", "from IPython.display import display\n", "notebook machinery"),
    ("moebook/extra.py", "import moe_lib\n", "moebook imports moe_lib"),
    ("moe_lib/p2_extra.py", "x = 1\n", "top level"),
])
def test_checker_catches_a_forbidden_import(tmp_path, rel, line, message):
    """A copy of the tree with one forbidden addition fails the check."""
    import shutil
    for pkg in ("moe_lib", "moebook"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / rel).write_text(line)
    found = violations(tmp_path)
    assert any(message in v for v in found), found
