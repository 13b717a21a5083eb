"""The training demo: a short n-body run on CPU comparing the plain transformer, the
transformer trained with data augmentation, and the transformer made equivariant by
learned probabilistic symmetrization (PS), at the same (``cpu``) budget.

``python -m symtrain.train.demo [--budget cpu] [--out runs/demo]`` prints the test MSE and
the relative equivariance error of each trained model. The data (5-body Coulomb
simulations) is generated locally and cached; the first run simulates it (about a
minute), later runs reuse it. Runs live in ``--out``; a finished run is not trained again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

CASES = [("plain transformer", "nbody_plain"), ("transformer + augmentation", "nbody_augment"),
         ("transformer + PS (LPS)", "nbody_ps")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symtrain.train.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="cpu", help="budget preset of the recipes (smoke for a check in seconds)")
    parser.add_argument("--out", default="runs/demo", help="folder of the runs")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)  # the runs' own logs go to their train.log
    logging.getLogger().addHandler(handler)

    from .config import ConfigError, load_recipe
    from .recipes import find_recipe
    from .trainer import Trainer, TrainingDiverged

    rows = []
    for title, name in CASES:
        recipe = load_recipe(find_recipe(name), [], args.budget)
        print(f"training {title} ({name}, {recipe.train.steps} steps)...", flush=True)
        try:
            metrics = Trainer(recipe, Path(args.out) / f"{name}-{args.budget}", resume=True).fit()
        except (ConfigError, TrainingDiverged) as err:
            print(f"  failed: {err}", file=sys.stderr)
            return 1
        rows.append((title, metrics["test/mse"], metrics["test/equivariance_error"]))
    print(f"\nn-body (5 charged particles, positions 1000 steps ahead), budget {args.budget!r}")
    print(f"{'model':<30}{'test MSE':>10}{'equivariance error':>21}")
    for title, mse, err in rows:
        print(f"{title:<30}{mse:>10.5f}{err:>21.2e}")
    print("\nequivariance error: ||f(g.x) - g.f(x)|| / ||g.f(x)|| over random rotations, "
          "translations and permutations g of the test inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
