"""Sweep points as ordinary training runs: :func:`train_point` is the ``run_point`` of
``symtrain sweep`` (:func:`symtrain.scaling.sweep.run_sweep`).

A point names a recipe and overrides it::

    recipe: rigid_fa            # a recipe name (symtrain recipes) or a file
    budget: cpu                 # optional: the recipe's budget preset
    label: fa                   # optional: the `method` column (default: the recipe's name)
    model.size: s               # any other key is a dotted recipe key (--set model.size=s)
    train.steps: 1000
    data.train: 2048

It runs exactly as ``symtrain train RECIPE --budget B --set KEY=VALUE ... --out
<sweep>/runs/<point id> --resume`` would (the same :class:`~symtrain.train.trainer.Trainer`,
in this process or in a Ray worker), so a point interrupted half-way continues from its
last checkpoint when the sweep is run again. Its row in ``results.csv`` holds the
columns :mod:`symtrain.scaling.fit` reads:

- ``method`` (the label), ``params`` (parameters of the base model: the model size N,
  the same for every method at a preset), ``params_total`` (every trained parameter,
  e.g. an LPS interface too);
- ``steps``, ``dataset_size`` (training examples), ``batch_size``, ``seed`` (``train.seed``);
- ``flops`` (training compute ``C = flops_per_step × steps``) and ``flops_per_step``;
- ``test_loss`` / ``val_loss`` (the task's main metric on the test / validation split),
  ``test_equivariance_error``, ``seconds`` (wall time of the run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import SymmetryError

SPECIAL_KEYS = ("recipe", "budget", "label")


def point_overrides(point: Mapping[str, Any]) -> list[str]:
    """``--set`` overrides (``key=value``, values as JSON, which YAML reads back) of a
    point's dotted keys; a key that is neither special nor dotted raises ``ValueError``."""
    if "recipe" not in point:
        raise SymmetryError(f"a sweep point of symtrain train runs needs a `recipe` key, got keys {sorted(point)}")
    out = []
    for key, value in point.items():
        if key in SPECIAL_KEYS:
            continue
        if "." not in key:
            raise SymmetryError(f"sweep key {key!r} is not a recipe key: use a dotted key such as "
                             f"model.size or train.steps, or one of {', '.join(SPECIAL_KEYS)}")
        out.append(f"{key}={json.dumps(value)}")
    return out


def train_point(point: Mapping[str, Any], out_dir: str | Path, *, recipe_dirs: Iterable[str] = (),
                imports: Iterable[str] = ()) -> dict[str, Any]:
    """Train one sweep point in ``out_dir`` (resuming its checkpoint if there is one) and
    return its ``results.csv`` row (see the module docstring). ``recipe_dirs``: user
    recipe folders (``--recipes``); ``imports``: modules or ``.py`` files registering
    datasets, models or methods, imported first (``--import``; in the worker, for Ray)."""
    from ..train.build import build_task
    from ..train.config import load_recipe
    from ..train.recipes import find_recipe, recipe_folders
    from ..train.run_folder import holds_run
    from ..train.trainer import Trainer
    from ..user_code import import_user_code

    for target in imports:
        import_user_code(target)
    recipe = load_recipe(find_recipe(point["recipe"], recipe_folders(list(recipe_dirs))),
                         point_overrides(point) + ["train.progress=false"], point.get("budget"))
    trainer = Trainer(recipe, out_dir, resume=holds_run(out_dir))
    metrics = trainer.fit()
    task = trainer.task if trainer.task is not None else build_task(recipe)  # a finished run is not rebuilt
    main = task.main_metric
    return {"method": point.get("label", recipe.name), "params": metrics["base_params"],
            "params_total": metrics["params"], "steps": metrics["steps"],
            "dataset_size": len(task.train), "batch_size": recipe.data.batch_size,
            "seed": recipe.train.seed, "flops": metrics["train_flops"],
            "flops_per_step": metrics["flops_per_step"], "test_loss": metrics[f"test/{main}"],
            "val_loss": metrics[f"val/{main}"], "test_equivariance_error": metrics.get("test/equivariance_error"),
            "seconds": metrics["seconds"]}
