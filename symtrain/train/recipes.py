"""``symtrain recipes``: the provided recipes, one line each."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def recipes_dir() -> Path:
    """The ``recipes/`` folder of the source tree (``$SYMTRAIN_RECIPES`` overrides it)."""
    import os

    env = os.environ.get("SYMTRAIN_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "recipes"


def list_recipes(folder: Path | None = None) -> list[tuple[str, str, str]]:
    """``(name, budgets, description)`` for every ``*.yaml`` in ``folder``."""
    out = []
    for path in sorted((folder or recipes_dir()).glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        budgets = ",".join(data.get("budgets") or {})
        out.append((path.stem, budgets, str(data.get("description", "")).strip()))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None, help="folder of recipes (default: the provided ones)")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else recipes_dir()
    rows = list_recipes(folder)
    if not rows:
        print(f"no recipes in {folder}")
        return 1
    width = max(len(name) for name, _, _ in rows)
    for name, budgets, description in rows:
        print(f"{name:<{width}}  {description}  [{budgets}]")
    print(f"\nrun one: symtrain train {folder}/<name>.yaml --budget smoke|cpu|paper [--set key=value ...]")
    return 0
