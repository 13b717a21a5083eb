"""Finding recipes, and listing them as rows (``symtrain recipes`` prints them).

The provided recipes are package data (``symtrain/recipes/*.yaml``, read through
:mod:`importlib.resources`, so they are found from a wheel or any install). A user's
folders come first: ``--recipes DIR`` and ``$SYMTRAIN_RECIPES`` (folders separated by
``os.pathsep``); a recipe there shadows a provided one of the same name.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Iterable, NamedTuple

import yaml


class RecipeInfo(NamedTuple):
    """One line of ``symtrain recipes``."""

    name: str
    budgets: str
    description: str


def provided_recipes() -> Traversable:
    """The folder of recipes shipped with the package."""
    return resources.files("symtrain.recipes")


def recipe_folders(extra: Iterable[str | os.PathLike] = ()) -> list[Traversable]:
    """Folders searched for recipes, first match wins: ``extra`` (``--recipes``), then
    ``$SYMTRAIN_RECIPES``, then the provided recipes."""
    env = [p for p in os.environ.get("SYMTRAIN_RECIPES", "").split(os.pathsep) if p]
    return [Path(p) for p in (*extra, *env)] + [provided_recipes()]


def _recipe_files(folders: list[Traversable]) -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            stem, suffix = os.path.splitext(entry.name)
            if suffix in (".yaml", ".yml") and entry.is_file():
                found.setdefault(stem, entry)
    return found


def list_recipes(folders: list[Traversable] | None = None) -> list[str]:
    """Names of every recipe (sorted), as ``symtrain train NAME`` takes them."""
    return sorted(_recipe_files(recipe_folders() if folders is None else folders))


def find_recipe(name: str | os.PathLike, folders: list[Traversable] | None = None) -> Traversable:
    """A recipe file: a path as given, or a recipe by name (``nbody_ps``) from the folders
    of :func:`recipe_folders`. A name that matches nothing is returned as a path, so
    loading it reports the missing file."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return _recipe_files(recipe_folders() if folders is None else folders).get(str(name), path)


def describe_recipes(folders: list[Traversable] | None = None) -> list[RecipeInfo]:
    """``(name, budgets, description)`` of every recipe."""
    files = _recipe_files(recipe_folders() if folders is None else folders)
    out = []
    for name in sorted(files):
        data = yaml.safe_load(files[name].read_text()) or {}
        budgets = ",".join(data.get("budgets") or {})
        out.append(RecipeInfo(name, budgets, str(data.get("description", "")).strip()))
    return out
