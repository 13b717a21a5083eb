"""Two CPU processes (gloo, started by torchrun) train like one process with the same
global batch: the same loss curve, step by step."""

import csv
import os
import subprocess
import sys

import pytest
import torch

from symtrain.train import Trainer, load_recipe
from symtrain.train.recipes import find_recipe

torch.set_num_threads(1)


def _curve(run):
    with open(run / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f) if r.get("train/loss")]


def test_two_processes_match_one_process(tmp_path):
    env = dict(os.environ, SYMTRAIN_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    overrides = ["train.progress=false", "train.cpu=true"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "symtrain", "train", str(find_recipe("nbody_plain")), "--budget", "smoke",
           "--out", str(tmp_path / "two"), "--set", *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in (tmp_path / "two" / "train.log").read_text()

    os.environ["SYMTRAIN_CACHE"], old = str(tmp_path / "cache"), os.environ.get("SYMTRAIN_CACHE")
    try:
        recipe = load_recipe(find_recipe("nbody_plain"), overrides, "smoke")
        one = Trainer(recipe, tmp_path / "one").fit()
    finally:
        if old is None:
            os.environ.pop("SYMTRAIN_CACHE")
        else:
            os.environ["SYMTRAIN_CACHE"] = old
    two, single = _curve(tmp_path / "two"), _curve(tmp_path / "one")
    assert [s for s, _ in two] == [s for s, _ in single] == list(range(1, recipe.train.steps + 1))
    assert [v for _, v in two] == pytest.approx([v for _, v in single], abs=1e-4)
    import json

    two_final = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two_final["test/mse"] == pytest.approx(one["test/mse"], abs=1e-4)
