"""``symtrain sweep SWEEP [--out DIR] [--backend local|ray ...] [--run MODULE:FUNCTION]``:
every point of a sweep file not yet in ``OUT/results.csv``, each an ordinary ``symtrain
train`` run (or ``--run``'s function), one row per finished point. Exit code 1 if a point
failed, 2 if the sweep file does not exist (see :mod:`symtrain.scaling.sweep`)."""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from pathlib import Path

from ..errors import SymmetryError
from . import COMMANDS
from ._numbers import COUNT, NON_NEGATIVE_NUMBER, POSITIVE_NUMBER
from ._paths import INPUT_FOLDER, OUTPUT_FOLDER, module_or_file

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="sweep YAML file, or the name of a provided one (rigid_sweep)")
    parser.add_argument("--out", default=None, type=OUTPUT_FOLDER,
                        help="output folder: results.csv and runs/<point id>/ "
                        "(default sweeps/<sweep name>)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: one point at a time here; ray: each point a Ray task")
    parser.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:10001)")
    parser.add_argument("--num-cpus", type=COUNT, default=None, help="CPUs of a local Ray instance")
    parser.add_argument("--cpus-per-point", type=POSITIVE_NUMBER, default=None,
                        help="ray: CPUs of each point (default 1)")
    parser.add_argument("--gpus-per-point", type=NON_NEGATIVE_NUMBER, default=None,
                        help="ray: GPUs of each point (default 0)")
    parser.add_argument("--recipes", action="append", default=[], metavar="DIR", type=INPUT_FOLDER,
                        help="a folder of your own recipes (and sweeps), searched first (repeatable)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        type=module_or_file,
                        help="import a module or .py file registering datasets, models or methods, in "
                             "every run (repeatable)")
    parser.add_argument("--run", default=None, metavar="MODULE:FUNCTION",
                        help="run_point(point, out_dir) -> metrics instead of a symtrain train run "
                             "(e.g. symtrain.scaling.sweep:synthetic_run)")


#: Options of the Ray backend, meaningless with the local one (see symtrain.cli.unmet_needs).
NEEDS = {dest: ("--backend ray (the local backend runs one point at a time here)", lambda args: args.backend == "ray")
         for dest in ("address", "num_cpus", "cpus_per_point", "gpus_per_point")}


def import_function(path: str):
    """The function named by ``module:function`` (``--run``)."""
    module, _, name = path.partition(":")
    if not name:
        raise SymmetryError(f"--run takes module:function, got {path!r}")
    return getattr(importlib.import_module(module), name)


@COMMANDS.register("sweep")
def run(args: argparse.Namespace) -> int:
    """run a grid of training runs (local or Ray), resumable, into results.csv"""
    from ..scaling.sweep import RESULTS, find_sweep, run_sweep

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = find_sweep(args.sweep, args.recipes)
    if not path.is_file():
        what = "is a folder, not a sweep file" if path.is_dir() else "names no sweep file"
        print(f"symtrain sweep: error: {args.sweep!r} {what}", file=sys.stderr)
        return 2
    if args.run is not None:
        run_point = import_function(args.run)
    else:
        from ..scaling.runs import train_point

        run_point = functools.partial(train_point, recipe_dirs=tuple(args.recipes), imports=tuple(args.imports))
    out = Path(args.out) if args.out else Path("sweeps") / path.stem
    outcome = run_sweep(path, run_point, out, backend=args.backend, address=args.address,
                        num_cpus=args.num_cpus,
                        cpus_per_point=1 if args.cpus_per_point is None else args.cpus_per_point,
                        gpus_per_point=args.gpus_per_point or 0)
    log.info("ran %d, skipped %d, failed %d -> %s", len(outcome.ran), len(outcome.skipped),
             len(outcome.failed), out / RESULTS)
    return 1 if outcome.failed else 0
