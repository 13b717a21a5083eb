"""The issue-22 recipes at their ``cpu`` preset, one table per dataset (MD17, QM9,
ModelNet40), on data written in each dataset's real raw format and read through PyG's
own classes (no copy of the real datasets is available offline here):

- MD17: a 21-atom molecule (aspirin's C9H8O4) with pair-potential energies and forces,
  ``md17_aspirin.npz`` (1,500 frames); metrics force and energy MAE (kcal/mol/Å, kcal/mol);
- QM9: ``qm9_v3.pt`` with 3,300 molecules of 3–9 atoms and invariant synthetic targets
  (``tests/pyg_fixtures.py``); metric MAE of the target (U0 column);
- ModelNet40: ``.off`` box meshes of 10 classes told apart by their proportions,
  aligned training clouds and SO(3)-rotated test clouds; metric accuracy.

``--steps`` overrides ``train.steps`` (a reduced budget, labelled in the output);
``--only`` runs a subset. Each row: the test metrics, the test equivariance error and
the training-loop seconds.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pyg_fixtures import ASPIRIN_ATOMS, MODELNET10, aspirin_like_geometry, write_md17, write_modelnet, write_qm9  # noqa: E402

from symtrain.train import ConfigError, Trainer, TrainingDiverged, load_recipe  # noqa: E402
from symtrain.train.recipes import find_recipe  # noqa: E402

TABLES = {
    "md17": (["md17_transformer_remul", "md17_transformer_augment", "md17_transformer_fa",
              "md17_transformer_ps", "md17_egnn", "md17_schnet"], ["force_mae", "energy_mae"]),
    "qm9": (["qm9_transformer_remul", "qm9_transformer_augment", "qm9_transformer_fa", "qm9_transformer_ps",
             "qm9_egnn", "qm9_schnet"], ["mae"]),
    "modelnet40": (["modelnet40_pointnet_augment", "modelnet40_pointnet_remul", "modelnet40_pointnet_fa",
                    "modelnet40_pointnet_ps", "modelnet40_dgcnn"], ["accuracy"]),
}


def roots(tmp: Path) -> dict[str, Path]:
    return {"md17": write_md17(tmp / "md17", "aspirin", frames=1500, atoms=ASPIRIN_ATOMS,
                               geometry=aspirin_like_geometry()),
            "qm9": write_qm9(tmp / "qm9", molecules=3300),
            "modelnet40": write_modelnet(tmp / "modelnet", MODELNET10, train=40, test=20)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="train.steps (default: the cpu budget)")
    parser.add_argument("--only", nargs="*", default=None, help="recipes to run")
    args = parser.parse_args(argv)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    logging.getLogger("symtrain").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    overrides = [f"train.steps={args.steps}"] if args.steps else []
    overrides += ["train.eval_every=100000", "train.checkpoint_every=100000"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = roots(Path(tmp))
        for dataset, (recipes, _) in TABLES.items():
            for name in recipes:
                if args.only and name not in args.only:
                    continue
                recipe = load_recipe(find_recipe(name), ["train.progress=false", f"data.path={paths[dataset]}",
                                                         *overrides], "cpu")
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as run:
                    try:
                        results[name] = (Trainer(recipe, run).fit(), "")
                    except (TrainingDiverged, ConfigError) as err:
                        results[name] = ({}, str(err)[:80])
                shown = {k[5:]: round(v, 4) for k, v in results[name][0].items()
                         if k in {f"test/{m}" for m in TABLES[dataset][1]}}
                print(f"done {name}: {shown} ({time.perf_counter() - start:.0f} s)", flush=True)
    budget = "cpu budget" if not args.steps else f"REDUCED budget: {args.steps} steps"
    for dataset, (recipes, metrics) in TABLES.items():
        rows = [n for n in recipes if n in results]
        if not rows:
            continue
        print(f"\n{dataset} ({budget})")
        print(f"{'recipe':<30}" + "".join(f"{m:>12}" for m in metrics)
              + f"{'equiv. err':>12}{'params':>9}{'train s':>9}")
        for name in rows:
            m, note = results[name]
            cells = "".join(f"{m.get('test/' + k, math.nan):>12.4f}" for k in metrics)
            print(f"{name:<30}{cells}{m.get('test/equivariance_error', math.nan):>12.2e}"
                  f"{m.get('params', 0):>9}{m.get('train_loop_seconds', math.nan):>9.1f}  {note}")


if __name__ == "__main__":
    main()
