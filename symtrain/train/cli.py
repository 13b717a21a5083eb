"""``symtrain train RECIPE [--budget B] [--set key=value ...] [--out DIR] [--resume]``.

Many processes: ``accelerate launch -m symtrain train RECIPE`` on GPUs, or
``torchrun --nproc_per_node N -m symtrain train RECIPE`` (CPU processes use gloo).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a recipe file (recipes/*.yaml) or the name of a provided recipe")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override recipe keys, e.g. optim.lr=1e-3 train.budget=smoke")
    parser.add_argument("--budget", default=None, help="budget preset: smoke, cpu or paper (same as --set train.budget=...)")
    parser.add_argument("--out", default=None, help="run directory (default train.out_dir or runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in the run directory")


def recipe_path(name: str) -> Path:
    """A path as given, or a provided recipe by name (``nbody_ps`` → ``recipes/nbody_ps.yaml``)."""
    from .recipes import recipes_dir

    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    return recipes_dir() / f"{name}.yaml"


def run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_recipe
    from .trainer import Trainer, TrainingDiverged

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:
        recipe = load_recipe(recipe_path(args.recipe), args.overrides, args.budget)
        metrics = Trainer(recipe, args.out, resume=args.resume).fit()
    except (ConfigError, TrainingDiverged) as err:
        print(f"symtrain train: error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in metrics.items() if not k.startswith(("val/lie/", "test/lie/"))}, indent=2))
    return 0
