"""``symtrain diagnose RECIPE [--budget B] [--set key=value ...]``: does the recipe's
training data have the recipe's symmetry?

A two-sample test (:func:`symtrain.symmetry_test`): a small classifier learns to tell
training examples from randomly transformed ones; its held-out AUC is ≈ 0.5 when the
data look symmetric and near 1 when the symmetry is broken. The symmetry is the task's,
with ``symmetrization.group`` replacing its group when the recipe sets it (``--set
symmetrization.group=C4``). The last two lines are ``symmetry_auc=<held-out AUC>`` and
``symmetry_p=<permutation p-value>``; every error prints one line and exits with code 2.

    symtrain diagnose pretrain_vit_digits --budget smoke --set symmetrization.group=C4
"""

from __future__ import annotations

import argparse
import sys

from . import COMMANDS
from ._numbers import COUNT, FRACTION, SEED
from ._paths import INPUT_FOLDER, module_or_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a recipe file, or the name of a recipe (see `symtrain recipes`)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override recipe keys, e.g. symmetrization.group=C4 data.train=500")
    parser.add_argument("--budget", default=None,
                        help="budget preset: smoke, cpu or paper (same as --set train.budget=...)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="train",
                        help="the split to test (default train)")
    parser.add_argument("--samples", type=COUNT, default=1000,
                        help="examples to use (at most; default 1000, or the whole split if smaller)")
    parser.add_argument("--test-fraction", type=FRACTION, default=0.5, help="share held out to score the classifier")
    parser.add_argument("--no-targets", action="store_true", help="test the inputs alone, not (inputs, targets)")
    parser.add_argument("--steps", type=COUNT, default=300, help="full-batch training steps of the classifier")
    parser.add_argument("--hidden", type=COUNT, default=128, help="width of the classifier's two hidden layers")
    parser.add_argument("--permutations", type=COUNT, default=1000, help="label shufflings for the p-value")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--threads", type=COUNT, default=None,
                        help="torch CPU threads (default: the recipe's train.threads)")
    parser.add_argument("--recipes", action="append", default=[], metavar="DIR", type=INPUT_FOLDER,
                        help="a folder of your own recipes, searched before the provided ones (repeatable)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        type=module_or_file,
                        help="import a module or a .py file first (datasets it registers can be named)")


@COMMANDS.register("diagnose")
def run(args: argparse.Namespace) -> int:
    """test whether a recipe's training data have its symmetry (held-out AUC, p-value)"""
    import time

    import torch

    from ..errors import SymmetryError
    from ..metrics.symmetry_test import symmetry_test
    from ..train.build import build_symmetry, build_task
    from ..train.config import load_recipe
    from ..train.recipes import find_recipe, recipe_folders
    from ..user_code import import_user_code

    def fail(message: str) -> int:
        print(f"symtrain diagnose: error: {message}", file=sys.stderr)
        return 2

    if args.samples < 8:
        return fail(f"--samples {args.samples}: expected at least 8")
    if args.threads is not None and args.threads < 1:
        return fail(f"--threads {args.threads}: expected a positive integer")
    for target in args.imports:
        try:
            import_user_code(target)
        except ImportError as err:
            return fail(f"--import {target}: {err}")
    start = time.perf_counter()
    try:
        recipe = load_recipe(find_recipe(args.recipe, recipe_folders(args.recipes)), args.overrides, args.budget)
        threads = args.threads if args.threads is not None else recipe.train.threads
        if threads is not None:
            torch.set_num_threads(threads)
        task = build_task(recipe)
        symmetry = build_symmetry(recipe, task)
        data = getattr(task, args.split)
        samples = min(args.samples, len(data))
        result = symmetry_test(data, symmetry, samples=samples, test_fraction=args.test_fraction,
                               targets=not args.no_targets, hidden=args.hidden, steps=args.steps,
                               permutations=args.permutations, seed=args.seed)
    except SymmetryError as err:  # recipe, data and argument errors
        return fail(str(err))
    except ImportError as err:  # an optional dependency of the recipe's data
        if "pip install symtrain[" not in str(err):
            raise
        return fail(str(err))
    seconds = time.perf_counter() - start
    print(f"{recipe.name}: {symmetry}")
    print(f"{result.samples} {args.split} examples ({'inputs and targets' if result.targets else 'inputs'}, "
          f"{result.features} features), half moved by a random element; classifier trained on "
          f"{result.train}, scored on {result.test}; {seconds:.1f} s")
    print(f"train AUC {result.train_auc:.3f}, held-out AUC {result.auc:.3f}, "
          f"p = {result.p_value:.4g} ({result.permutations} permutations)")
    if result.per_element:
        print("held-out AUC per element (most distinguishable first):")
        for row in result.per_element:
            print(f"  {row['label']:<12} {row['auc']:.3f}  ({row['count']} examples)")
    verdict = ("the symmetry looks broken: exact methods discard what the data hold; prefer relaxed ones "
               "(REMUL, augmentation, approximate networks)" if result.auc > 0.6 and result.p_value < 0.05 else
               "no evidence against the symmetry at this sample size" if result.p_value >= 0.05 else
               "a small but significant difference: the symmetry holds approximately")
    print(verdict)
    print(f"symmetry_auc={result.auc:.4f}")
    print(f"symmetry_p={result.p_value:.4g}")
    return 0
