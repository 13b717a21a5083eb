"""``symtrain sweep`` and ``symtrain fit`` end to end on the rigid-body recipes (local
backend; the Ray backend has its own test in test_sweep.py), the provided sweep file, and
the pieces of ``bench/scale.py`` at a tiny scale."""

import csv
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import mujoco  # noqa: F401,E402  (the [physics] extra; make install installs it)
import pytest
import yaml

from symtrain.cli import main
from symtrain.scaling.runs import point_overrides
from symtrain.scaling.sweep import expand, find_sweep
from symtrain.train.config import load_recipe
from symtrain.train.recipes import find_recipe

pytestmark = pytest.mark.usefixtures("symtrain_cache")
ROOT = Path(__file__).resolve().parents[1]


def _rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_of_training_runs_through_the_cli_resumes_and_fits(tmp_path, capsys):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": {"recipe": "rigid_plain", "budget": "smoke", "model.size": "xs",
                 "train.eval_every": 100, "train.checkpoint_every": 100},
        "grid": {"train.steps": [1, 3], "label": ["plain"]}}))
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    rows = _rows(out)
    assert sorted(int(r["steps"]) for r in rows) == [1, 3]
    for row in rows:
        assert row["method"] == "plain" and int(row["params"]) == 10387 and int(row["dataset_size"]) == 32
        assert int(row["flops"]) == int(row["flops_per_step"]) * int(row["steps"]) > 0
        metrics = json.loads((out / "runs" / row["point_id"] / "metrics.json").read_text())
        assert metrics["train_flops"] == int(row["flops"]) and math.isfinite(float(row["test_loss"]))
    # resumable: finished points are skipped, nothing is appended
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    assert len(_rows(out)) == 2
    # a point whose row is missing (e.g. killed after training) resumes from its checkpoint
    lines = (out / "results.csv").read_text().splitlines()
    (out / "results.csv").write_text("\n".join(lines[:2]) + "\n")
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    assert sorted(r["point_id"] for r in _rows(out)) == sorted(r["point_id"] for r in rows)
    capsys.readouterr()
    assert main(["fit", str(out / "results.csv"), "--out", str(tmp_path / "fit"), "--bootstrap", "5"]) == 0
    assert "plain: L(C) frontier" in capsys.readouterr().out
    assert json.loads((tmp_path / "fit" / "fits.json").read_text())["methods"]["plain"]["runs"] == 2
    assert (tmp_path / "fit" / "loss_vs_compute.png").is_file()


def test_rigid_recipe_without_mujoco_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # makes `import mujoco` raise ImportError
    args = ["train", "rigid_plain", "--budget", "smoke", "--out", str(tmp_path / "run"),
            "--set", f"data.cache_dir={tmp_path / 'empty'}"]
    assert main(args) == 2
    assert "pip install symtrain[physics]" in capsys.readouterr().err


def test_bad_sweep_keys_are_named():
    with pytest.raises(ValueError, match="needs a `recipe` key"):
        point_overrides({"train.steps": 3})
    with pytest.raises(ValueError, match="sweep key 'steps' is not a recipe key"):
        point_overrides({"recipe": "rigid_plain", "steps": 3})


def test_provided_rigid_sweep_resolves_to_valid_recipes():
    path = find_sweep("rigid_sweep")
    assert path.is_file()
    points = expand(path)
    recipes = {p["recipe"] for p in points}
    assert recipes == {"rigid_plain", "rigid_augment", "rigid_remul", "rigid_fa", "rigid_canonical",
                       "rigid_ps", "rigid_egnn"}
    assert len(points) == 7 * 5 * 5 + 4 * 4
    for point in points[::7]:
        recipe = load_recipe(find_recipe(point["recipe"]), point_overrides(point), point["budget"])
        assert recipe.train.steps == point["train.steps"] and recipe.model.args["size"] == point["model.size"]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_grids_cover_the_issue():
    bench = _bench()
    compute = expand(bench.compute_sweep())
    for label in ("augment", "fa", "ps"):
        runs = [p for p in compute if p["label"] == label]
        assert len({p["model.size"] for p in runs}) >= 3 and len({p["train.steps"] for p in runs}) >= 3
    data = expand(bench.data_sweep())
    assert {p["label"] for p in data} == {"plain", "augment", "fa"}
    for label in ("plain", "augment", "fa"):
        runs = [p for p in data if p["label"] == label]
        epochs = {p["train.steps"] * 32 / p["data.train"] for p in runs}
        assert len({p["data.train"] for p in runs if p["train.steps"] * 32 / p["data.train"] == 4}) >= 3
        assert len({e for e in epochs if any(p["data.train"] == 512 and p["train.steps"] * 32 / 512 == e
                                              for p in runs)}) >= 3  # loss vs epochs at 512 scenes
    # every method's compute grid reaches the same training compute (steps × cost per step)
    cost = {"augment": 1, "ps": 4, "fa": 8}
    reach = {label: max(p["train.steps"] for p in compute if p["label"] == label) * cost[label] for label in cost}
    assert len(set(reach.values())) == 1, reach


def test_bench_smoke_prints_fits_and_the_ratio(tmp_path, capsys):
    assert _bench().main(["--smoke", "--out", str(tmp_path), "--bootstrap", "5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"scale_fa_vs_aug=(nan|[0-9.]+(e[-+]?\d+)?)", out[-1]), out[-1]
    assert re.fullmatch(r"scale_mfa_vs_aug=(nan|[0-9.]+(e[-+]?\d+)?)", out[-2]), out[-2]
    assert any(line.startswith("fa: L(C) frontier") for line in out)
    assert any(line.startswith("augment ÷ mfa at augment's") for line in out)
    assert len(_rows(tmp_path / "compute")) == 8 and len(_rows(tmp_path / "data")) == 9
    assert (tmp_path / "compute" / "fits.json").is_file() and (tmp_path / "data" / "loss_vs_data.png").is_file()
