"""The package's layering, read from its imports: other modules ask actions and groups
what they can do; only ``actions/`` names concrete actions and only ``groups/`` names
concrete groups (registries excepted). A new data type or group is then one new file."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import symtrain
from symtrain.actions import Action
from symtrain.groups import Group

ROOT = Path(symtrain.__file__).parent


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts), path.name == "__init__.py"


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _concrete(obj, kind) -> bool:
    return inspect.isclass(obj) and issubclass(obj, kind) and not inspect.isabstract(obj) \
        and obj.__module__.startswith("symtrain.")


def violations(package: str, kind: type) -> list[str]:
    """Places outside ``symtrain.<package>`` that import or name a concrete ``kind``."""
    found = []
    home = f"symtrain.{package}"
    for path, module, is_package in _modules():
        if module == "symtrain" or module.startswith(home) or path.name == "registry.py":
            continue
        tree = ast.parse(path.read_text())
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(module, is_package, node)
                for alias in node.names:
                    if source == "symtrain" and alias.name == package:
                        aliases.add(alias.asname or alias.name)
                    elif source.startswith(home):
                        obj = getattr(importlib.import_module(source), alias.name, None)
                        if _concrete(obj, kind):
                            found.append(f"{module}:{node.lineno} imports {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == home and alias.asname:
                        aliases.add(alias.asname)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases:
                obj = getattr(importlib.import_module(home), node.attr, None)
                if _concrete(obj, kind):
                    found.append(f"{module}:{node.lineno} names {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("package,kind", [("actions", Action), ("groups", Group)])
def test_no_module_outside_its_package_names_a_concrete_class(package, kind):
    assert violations(package, kind) == []


def test_the_check_can_fail(tmp_path, monkeypatch):
    # A module that imports a concrete action is reported.
    bad = ROOT / "metrics" / "_layering_probe.py"
    bad.write_text("from ..actions.points import Points\nfrom .. import groups as G\nX = G.SO\n"
                   "Y = G.SymmetricGroup\n")
    try:
        found = violations("actions", Action) + violations("groups", Group)
    finally:
        bad.unlink()
    assert any("imports Points" in f for f in found)
    assert any("names G.SymmetricGroup" in f for f in found)
