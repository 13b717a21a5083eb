"""``symtrain recipes [--recipes DIR ...]``: the provided recipes (and yours), one line
each: name, description, budgets. Exit code 1 when no recipe is found."""

from __future__ import annotations

import argparse

from . import COMMANDS
from ._paths import INPUT_FOLDER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipes", "--dir", dest="recipes", action="append", default=[], metavar="DIR",
                        type=INPUT_FOLDER,
                        help="a folder of your own recipes, searched before the provided ones (repeatable)")


@COMMANDS.register("recipes")
def run(args: argparse.Namespace) -> int:
    """list the provided recipes, one line each"""
    from ..train.recipes import describe_recipes, recipe_folders

    rows = describe_recipes(recipe_folders(args.recipes))
    if not rows:
        print("no recipes found")
        return 1
    width = max(len(row.name) for row in rows)
    for name, budgets, description in rows:
        print(f"{name:<{width}}  {description}  [{budgets}]")
    print("\nrun one: symtrain train <name> --budget smoke|cpu|paper [--set key=value ...]")
    return 0
