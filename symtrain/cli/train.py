"""``symtrain train RECIPE [--budget B] [--set key=value ...] [--out DIR] [--resume
[--allow-changes KEY ...]] [--overwrite] [--recipes DIR] [--import MODULE_OR_FILE]``.

A folder holding a previous run is refused unless ``--resume`` (continue it; a recipe
that changes what is trained is refused unless its keys are given to ``--allow-changes``)
or ``--overwrite`` (replace it). ``--resume`` continues with the recipe the run recorded
in its ``config.yaml`` (its budget and ``--set`` values), with this command's ``--set``
on top; a ``--budget`` other than the recorded one re-reads the recipe file with it. A
folder that holds no run cannot be resumed; a finished run resumed with the same recipe
is left as it is (say ``--set train.steps=N`` to train it longer). Every error prints one
line and exits with code 2.

``--import`` loads your own registry entries (a dataset, model or method registered in
a module or a ``.py`` file) before the recipe is read, so the recipe can name them.

Many processes: ``accelerate launch -m symtrain train RECIPE`` on GPUs, or
``torchrun --nproc_per_node N -m symtrain train RECIPE`` (without a GPU the processes
train on CPU together, with gloo).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import COMMANDS
from ._paths import INPUT_FOLDER, OUTPUT_FOLDER, module_or_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", help="a recipe file, or the name of a recipe (see `symtrain recipes`)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override recipe keys, e.g. optim.lr=1e-3 train.budget=smoke")
    parser.add_argument("--budget", default=None,
                        help="budget preset: smoke, cpu or paper (same as --set train.budget=...)")
    parser.add_argument("--out", default=None, type=OUTPUT_FOLDER,
                        help="run directory (default train.out_dir or runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint in the run directory")
    parser.add_argument("--allow-changes", dest="allow_changes", nargs="+", action="extend", default=[], metavar="KEY",
                        help="with --resume: recipe keys (or sections) that may differ from the run's config.yaml, "
                             "e.g. optim.lr data.batch_size")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of a previous run in the run directory")
    parser.add_argument("--recipes", action="append", default=[], metavar="DIR", type=INPUT_FOLDER,
                        help="a folder of your own recipes, searched before the provided ones (repeatable)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        type=module_or_file,
                        help="import a module (my_pkg.methods) or a .py file first, so the datasets, models "
                             "and methods it registers can be named in the recipe (repeatable)")


def split_recipe(args: argparse.Namespace) -> bool:
    """``--set`` takes every word after it, so in ``symtrain train --set optim.lr=1e-3
    nbody_ps`` the recipe is among its values: the one value that is no ``key=value`` is
    taken as the recipe. False if no recipe is named (or several values could be one)."""
    if args.recipe is None:
        names = [v for v in args.overrides if "=" not in v]
        if len(names) != 1:
            return False
        args.recipe = names[0]
        args.overrides = [v for v in args.overrides if v != names[0]]
    return True


@COMMANDS.register("train")
def run(args: argparse.Namespace) -> int:
    """train a model from a YAML recipe (Accelerate: CPU, GPUs, processes)"""
    from ..errors import SymmetryError
    from ..train.config import load_recipe
    from ..train.recipes import find_recipe, recipe_folders
    from ..train.run_folder import recorded_recipe, run_dir
    from ..train.trainer import Trainer
    from ..user_code import import_user_code

    if not split_recipe(args):
        print("symtrain train: error: name a recipe: symtrain train RECIPE [--set key=value ...] "
              "(see symtrain recipes)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    for target in args.imports:
        try:
            import_user_code(target)
        except ImportError as err:
            print(f"symtrain train: error: --import {target}: {err}", file=sys.stderr)
            return 2
    try:
        recipe = load_recipe(find_recipe(args.recipe, recipe_folders(args.recipes)), args.overrides, args.budget)
        if args.resume:  # continue with what the run recorded (its budget, its --set), plus this --set
            recipe = recorded_recipe(run_dir(recipe, args.out), args.overrides, args.budget) or recipe
        metrics = Trainer(recipe, args.out, resume=args.resume, overwrite=args.overwrite,
                          allow_changes=args.allow_changes).fit()
    except SymmetryError as err:  # recipe, run folder, weights, checkpoint and divergence errors
        print(f"symtrain train: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:  # an optional dependency of the recipe's data or model
        if "pip install symtrain[" not in str(err):
            raise
        print(f"symtrain train: error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in metrics.items() if not k.startswith(("val/lie/", "test/lie/"))}, indent=2))
    return 0
