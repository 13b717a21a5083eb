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


def _is_factory_table(node: ast.AST) -> bool:
    """A dict from names to factories: annotated ``dict[str, <Callable or type ...>]``,
    or a literal whose keys are strings and whose values are all references
    (``{"l1": F.l1_loss}``) or tuples holding one."""
    value = getattr(node, "value", None)
    annotation = getattr(node, "annotation", None)
    if annotation is not None and isinstance(annotation, ast.Subscript) \
            and ast.unparse(annotation.value) in ("dict", "Dict", "typing.Dict", "Mapping"):
        inner = ast.unparse(annotation.slice).strip("()")
        if inner.startswith("str") and any(word in inner for word in ("Callable", "type[", "Type[")):
            return True
    if not isinstance(value, ast.Dict) or not value.keys:
        return False

    def reference(v: ast.AST) -> bool:
        return isinstance(v, (ast.Name, ast.Attribute)) or (
            isinstance(v, ast.Tuple) and any(isinstance(e, (ast.Name, ast.Attribute)) for e in v.elts))

    return all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys) \
        and all(reference(v) for v in value.values)


def factory_tables() -> list[str]:
    """Module- and class-level name → factory dicts outside ``symtrain/registry.py``
    (every registry is a :class:`symtrain.registry.Registry`)."""
    found = []
    for path, module, _ in _modules():
        if module == "symtrain.registry":
            continue
        tree = ast.parse(path.read_text())
        bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        for body in bodies:
            for node in body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_factory_table(node):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    found.append(f"{module}:{node.lineno} {', '.join(ast.unparse(t) for t in targets)}")
    return found


def test_no_name_to_factory_dict_outside_the_registry_type():
    assert factory_tables() == []


def test_the_factory_table_check_can_fail():
    bad = ROOT / "metrics" / "_registry_probe.py"
    bad.write_text("from typing import Callable\nimport torch.nn.functional as F\n"
                   "_LOSSES = {'l1': F.l1_loss, 'l2': F.mse_loss}\n"
                   "_MADE: dict[str, Callable[..., int]] = {}\n"
                   "class Holder:\n    TABLE = {'a': (r'x', int)}\n"
                   "_SIZES = {'tiny': {'depth': 2}}\n_NAMES = {'a': 'b'}\n")
    try:
        found = factory_tables()
    finally:
        bad.unlink()
    probe = [f.split(" ", 1)[1] for f in found if "_registry_probe" in f]
    assert probe == ["_LOSSES", "_MADE", "TABLE"]


# The layers, bottom up (CONTRIBUTING.md): a module imports, at module level, only from
# its own layer or the ones below (imports inside functions may reach up, lazily).
LAYERS = [
    {"registry", "errors", "checks", "tree", "_optional", "_escnn", "overrides", "user_code", "paths", "lock",
     "records", "domains"},
    {"groups"}, {"actions"}, {"symmetry"},
    {"symmetrize", "metrics", "augment", "losses", "data", "models"},
    {"lie"}, {"train", "demo", "recipes"}, {"scaling"}, {"cli", "__main__"},
]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return len(LAYERS)  # the package's __init__ re-exports from every layer
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), None)


def upward_imports(root: Path) -> list[str]:
    """Module-level imports of a ``symtrain`` tree at ``root`` that reach a higher layer,
    and modules in no layer."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        here = _layer(module)
        if here is None:
            found.append(f"{module}: in no layer (add it to LAYERS and CONTRIBUTING.md)")
            continue
        body = ast.parse(path.read_text()).body
        body = body + [n for node in body if isinstance(node, ast.If) for n in node.body]
        for node in body:
            if isinstance(node, ast.ImportFrom):
                targets = [_absolute(module, is_package, node)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                there = _layer(target) if target.startswith("symtrain.") else None
                if there is not None and there > here:
                    found.append(f"{module}:{node.lineno} imports {target}")
    return found


def test_modules_import_only_their_layer_and_below():
    assert upward_imports(ROOT) == []


def test_the_layer_check_can_fail(tmp_path):
    pkg = tmp_path / "symtrain"
    (pkg / "groups").mkdir(parents=True)
    (pkg / "groups" / "base.py").write_text("from ..train.trainer import Trainer\nimport symtrain.lie\n")
    (pkg / "mystery.py").write_text("x = 1\n")
    assert upward_imports(pkg) == ["symtrain.groups.base:1 imports symtrain.train.trainer",
                                   "symtrain.groups.base:2 imports symtrain.lie",
                                   "symtrain.mystery: in no layer (add it to LAYERS and CONTRIBUTING.md)"]
