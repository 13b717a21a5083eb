"""n-body at an equal CPU budget: plain, augmented, REMUL, canonicalized, group-averaged
and probabilistically symmetrized (LPS) transformers.

Every recipe runs at its ``cpu`` budget (the same base transformer, data, optimizer and
number of steps; only the symmetrization differs) and the table reports test MSE, the
equivariance error and Lie derivative of the trained model, and the training time.
Last line: ``nbody_ps_mse=<test MSE of the PS transformer>``.

The LPS paper reports, at full scale (``--budget paper`` on a GPU), Transformer-PS 0.00417
and canonicalization 0.00779.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile

from symtrain.train import ConfigError, Trainer, TrainingDiverged, load_recipe
from symtrain.train.recipes import find_recipe

RECIPES = ["nbody_plain", "nbody_augment", "nbody_remul", "nbody_canonicalization",
           "nbody_learned_canonicalization", "nbody_ga", "nbody_ps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="cpu")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides applied to every recipe (e.g. train.steps=600)")
    parser.add_argument("--only", nargs="*", default=None, help="a subset of the recipes")
    args = parser.parse_args()
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    rows = []
    for name in args.only or RECIPES:
        recipe = load_recipe(find_recipe(name), ["train.progress=false", *args.overrides],
                             args.budget)
        with tempfile.TemporaryDirectory() as out:
            try:
                m = Trainer(recipe, out).fit()
                rows.append((name, m["test/mse"], m["test/equivariance_error"],
                             m.get("test/lie_derivative", math.nan), m["train_loop_seconds"], ""))
            except (TrainingDiverged, ConfigError) as err:
                rows.append((name, math.nan, math.nan, math.nan, math.nan, str(err)[:90]))
        print(f"done {name}: {rows[-1][1]:.5f}", flush=True)
    print(f"\n{'recipe':<32}{'test MSE':>10}{'equiv. err':>12}{'Lie deriv.':>12}{'train s':>9}")
    for name, mse, err, lie, secs, note in rows:
        print(f"{name:<32}{mse:>10.5f}{err:>12.2e}{lie:>12.2e}{secs:>9.1f}  {note}")
    ps = dict((r[0], r[1]) for r in rows).get("nbody_ps", math.nan)
    print(f"nbody_ps_mse={ps:.5f}")


if __name__ == "__main__":
    main()
