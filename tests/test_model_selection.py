"""``train.select: best_val`` and ``train.test_trials``: the final metrics are those of the
best validation evaluation, averaged over fresh test draws (as the LPS paper reports);
the recipes of the paper's n-body setting use them."""

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from symtrain.train import Trainer, find_recipe, list_recipes, load_recipe

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("symtrain_cache")

PAIR_RECIPES = ["nbody_pair_plain", "nbody_pair_canonical", "nbody_pair_ps", "nbody_pair_augment"]


def smoke(name, *overrides):
    return load_recipe(find_recipe(name), ["train.progress=false", *overrides], "smoke")


def val_curve(run):
    with open(run / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["val/mse"]) for r in csv.DictReader(f) if r.get("val/mse")}


def test_best_val_reports_the_best_validation_step_and_its_weights(tmp_path):
    recipe = smoke("nbody_plain", "train.select=best_val", "train.eval_every=3", "optim.lr=0.05")
    metrics = Trainer(recipe, tmp_path).fit()
    curve = val_curve(tmp_path)
    best = min(curve, key=curve.get)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["select"] == "best_val" and saved["selected_step"] == best == metrics["selected_step"]
    assert saved["selected_val"] == pytest.approx(curve[best], rel=1e-6)
    assert metrics["val/mse"] == pytest.approx(curve[best], rel=1e-5)   # re-evaluated: the same weights
    exported, kept = load_file(str(tmp_path / "model.safetensors")), load_file(str(tmp_path / "best.safetensors"))
    assert all(torch.equal(exported[k], kept[k]) for k in kept)
    last = Trainer(smoke("nbody_plain", "train.eval_every=3", "optim.lr=0.05"), tmp_path / "last").fit()
    assert last["select"] == "last" and last["selected_step"] == recipe.train.steps
    if best != recipe.train.steps:
        assert last["val/mse"] != pytest.approx(metrics["val/mse"])


def test_best_val_survives_a_resume(tmp_path):
    over = ["train.select=best_val", "train.eval_every=3", "train.checkpoint_every=3", "optim.lr=0.05",
            "optim.schedule=constant"]  # a cosine schedule would depend on train.steps
    full = Trainer(smoke("nbody_plain", *over), tmp_path / "full").fit()
    Trainer(smoke("nbody_plain", *over, "train.steps=6"), tmp_path / "cut").fit()
    resumed = Trainer(smoke("nbody_plain", *over), tmp_path / "cut", resume=True).fit()
    assert resumed["selected_step"] == full["selected_step"]
    assert resumed["test/mse"] == pytest.approx(full["test/mse"], rel=1e-6)


def test_test_trials_average_fresh_draws_of_the_ps_samples(tmp_path):
    metrics = Trainer(smoke("nbody_ps", "train.test_trials=3"), tmp_path).fit()
    assert metrics["test_trials"] == 3
    assert metrics["test/mse_std"] > 0                 # the draws differ
    assert math.isfinite(metrics["test/mse"]) and "test/equivariance_error" in metrics


def test_pair_recipes_are_provided_with_three_presets_and_select_best_val():
    """Each also trains at the smoke budget in test_train's test over every recipe."""
    for name in PAIR_RECIPES:
        assert name in list_recipes()
        recipe = smoke(name)
        assert set(recipe.budgets) == {"smoke", "cpu", "paper"}, name
        assert recipe.train.select == "best_val" and recipe.model.name == "nbody_pair_transformer"


def test_paper_presets_are_the_lps_settings():
    ps = load_recipe(find_recipe("nbody_pair_ps"), budget="paper")
    assert ps.train.steps == 300_000 and ps.data.batch_size == 100 and ps.train.test_trials == 5
    assert ps.model.args == {"dim": 64, "ff": 64, "layers": 8, "heads": 4, "dropout": 0.0}
    s = ps.symmetrization.args
    assert (s["samples"], s["eval_samples"], ps.symmetrization.test_samples) == (20, 20, 200)
    assert s["interface"]["noise_on"] == "vectors" and s["interface"]["normalize"] is True
    assert ps.optim.schedule == "constant" and ps.optim.grad_clip is None
    canon = load_recipe(find_recipe("nbody_pair_canonical"), budget="paper")
    assert canon.symmetrization.method == "learned_canonicalization"
    assert canon.symmetrization.args["interface"] == s["interface"]
