"""``symtrain demo [--only wrap|train] [--budget cpu] [--out runs/demo]``: the demo of
:mod:`symtrain.demo`, printed. First non-equivariant models wrapped with each symmetrizer
and their equivariance error (seconds), then a short n-body training run of a plain, an
augmented and a PS transformer (a few minutes on CPU; ``--budget smoke`` for seconds),
with each one's test MSE and equivariance error. Exit code 1 if a training run fails."""

from __future__ import annotations

import argparse
import logging
import sys

from . import COMMANDS
from ._numbers import COUNT, SEED
from ._paths import OUTPUT_FOLDER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", choices=("wrap", "train"), default=None,
                        help="only the wrapper table (seconds) or only the training comparison")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--samples", type=COUNT, default=16, help="group elements per input in the check")
    parser.add_argument("--budget", default="cpu", help="budget preset of the recipes (smoke for a check in seconds)")
    parser.add_argument("--out", default="runs/demo", type=OUTPUT_FOLDER, help="folder of the training runs")


def print_wrapper_table(args: argparse.Namespace) -> None:
    from ..demo import wrapper_table

    print("Relative equivariance error ||f(g.x) - g.f(x)|| / ||g.f(x)||, mean and max over inputs "
          "and group elements\n")
    table = wrapper_table(seed=args.seed, samples=args.samples)
    width = max(len(row.name) for case in table for row in case.rows)
    for case in table:
        print(case.title)
        for row in case.rows:
            print(f"  {row.name:<{width}} mean {row.mean:9.2e}   max {row.max:9.2e}")
        print()


def print_training(args: argparse.Namespace) -> int:
    from ..demo import TRAINING_CASES, train_case, training_recipe
    from ..train import ConfigError, TrainingDiverged

    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)  # the runs' own logs go to their train.log
    logging.getLogger().addHandler(handler)
    results = []
    for title, name in TRAINING_CASES:
        recipe = training_recipe(name, args.budget)
        print(f"training {title} ({name}, {recipe.train.steps} steps)...", flush=True)
        try:
            results.append(train_case(title, name, recipe, args.out))
        except (ConfigError, TrainingDiverged) as err:
            print(f"  failed: {err}", file=sys.stderr)
            return 1
    print(f"\nn-body (5 charged particles, positions 1000 steps ahead), budget {args.budget!r}")
    print(f"{'model':<30}{'test MSE':>10}{'equivariance error':>21}")
    for row in results:
        print(f"{row.title:<30}{row.test_mse:>10.5f}{row.equivariance_error:>21.2e}")
    print("\nequivariance error: ||f(g.x) - g.f(x)|| / ||g.f(x)|| over random rotations, "
          "translations and permutations g of the test inputs")
    return 0


@COMMANDS.register("demo")
def run(args: argparse.Namespace) -> int:
    """wrap models and print their equivariance error, then train plain, augmented and PS models"""
    if args.only != "train":
        print_wrapper_table(args)
    if args.only != "wrap":
        return print_training(args)
    return 0
