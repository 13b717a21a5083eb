"""n-body at an equal CPU budget: plain, augmented, REMUL, canonicalized, group-averaged
and probabilistically symmetrized (LPS) transformers, then the LPS paper's own setting.

Every recipe runs at its ``cpu`` budget and the table reports test MSE, the equivariance
error and Lie derivative of the trained model, the training time and the wall time of
the row (data, training, evaluations). Two groups of rows:

- ``nbody_*``: a permutation-equivariant particle transformer, symmetrized over E(3)
  (a cheaper variant of the paper's setting);
- ``nbody_pair_*``: the paper's setting: the pair-token transformer (not
  permutation-equivariant), PS over S_n × E(3) with noise on the vectors, learned
  canonicalization (the same interface, zero noise, one sample), test MSE of the best
  validation step averaged over test draws (``train.select: best_val``).

Last lines: ``nbody_ps_mse=<PS, particle transformer>``, ``nbody_pair_ps_mse=<PS, the
paper's setting>``, ``nbody_pair_ratio=<pair PS MSE / pair canonical MSE>``.

The LPS paper reports, at full scale (``--budget paper`` on a GPU), Transformer-PS 0.00417
and canonicalization 0.00779 (ratio 0.54).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time

from symtrain.train import ConfigError, Trainer, TrainingDiverged, load_recipe
from symtrain.train.recipes import find_recipe

RECIPES = ["nbody_plain", "nbody_augment", "nbody_remul", "nbody_canonicalization",
           "nbody_learned_canonicalization", "nbody_ga", "nbody_ps",
           "nbody_pair_plain", "nbody_pair_augment", "nbody_pair_canonical", "nbody_pair_ps"]


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
        recipe = load_recipe(find_recipe(name), ["train.progress=false", *args.overrides], args.budget)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            try:
                m = Trainer(recipe, out).fit()
                rows.append((name, m["test/mse"], m["test/equivariance_error"],
                             m.get("test/lie_derivative", math.nan), m["train_loop_seconds"],
                             time.perf_counter() - start, ""))
            except (TrainingDiverged, ConfigError) as err:
                rows.append((name, math.nan, math.nan, math.nan, math.nan, time.perf_counter() - start,
                             str(err)[:90]))
        print(f"done {name}: {rows[-1][1]:.5f} ({rows[-1][5]:.0f} s)", flush=True)
    print(f"\n{'recipe':<32}{'test MSE':>10}{'equiv. err':>12}{'Lie deriv.':>12}{'train s':>9}{'wall s':>8}")
    for name, mse, err, lie, secs, wall, note in rows:
        print(f"{name:<32}{mse:>10.5f}{err:>12.2e}{lie:>12.2e}{secs:>9.1f}{wall:>8.0f}  {note}")
    mse = {r[0]: r[1] for r in rows}
    pair_ps, pair_canon = mse.get("nbody_pair_ps", math.nan), mse.get("nbody_pair_canonical", math.nan)
    print(f"nbody_ps_mse={mse.get('nbody_ps', math.nan):.5f}")
    print(f"nbody_pair_ps_mse={pair_ps:.5f}")
    print(f"nbody_pair_ratio={pair_ps / pair_canon if pair_canon > 0 else math.nan:.3f}")


if __name__ == "__main__":
    main()
