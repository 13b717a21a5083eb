"""``symtrain fit RESULTS.csv [--out DIR] [--offset auto|yes|no] [--bootstrap N]``:
power-law fits of a sweep's results (:mod:`symtrain.scaling.fit`), written to
``fits.json`` with the plots of :mod:`symtrain.scaling.plots`; a summary on stdout."""

from __future__ import annotations

import argparse

from . import COMMANDS
from ._numbers import COUNT, SEED
from ._paths import INPUT_FILE, OUTPUT_FOLDER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=INPUT_FILE, help="results.csv written by a sweep")
    parser.add_argument("--out", default=None, type=OUTPUT_FOLDER, help="output folder (default: next to results.csv)")
    parser.add_argument("--offset", choices=("auto", "yes", "no"), default="auto",
                        help="offset c in L = a·x^(−b) + c: chosen by AICc (auto), always, never")
    parser.add_argument("--bootstrap", type=COUNT, default=200, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--data-at", choices=("epochs", "steps"), default="epochs",
                        help="loss vs dataset size at fixed epochs or at fixed steps")
    parser.add_argument("--loss-label", default="test loss (MSE)")


@COMMANDS.register("fit")
def run(args: argparse.Namespace) -> int:
    """power-law fits, bootstrap intervals and plots of a sweep's results.csv"""
    from ..scaling.fit import fit_results, summarize

    offset = {"auto": "auto", "yes": True, "no": False}[args.offset]
    fits = fit_results(args.results, args.out, offset=offset, bootstrap=args.bootstrap, seed=args.seed,
                       data_at=args.data_at, loss_label=args.loss_label)
    for line in summarize(fits):
        print(line)
    return 0
