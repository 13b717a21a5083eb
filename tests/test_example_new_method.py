"""``examples/new_method.py`` registers a symmetrization method in one file; a recipe
trains it through ``symtrain train --import``, with no other edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "examples" / "new_method.py"


def test_new_method_trains_from_a_recipe(tmp_path, symtrain_cache):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "symtrain", "train", "nbody_ga", "--import", str(PATH), "--budget", "smoke",
           "--out", str(tmp_path / "run"), "--set", "symmetrization.method=antithetic_averaging",
           "symmetrization.samples=2", "train.progress=false"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout)
    assert metrics["steps"] == 12 and metrics["test/mse"] < 10
    assert 0 <= metrics["test/equivariance_error"] < 1
    assert "antithetic_averaging" in (tmp_path / "run" / "train.log").read_text()


def test_without_the_import_the_method_is_unknown(tmp_path, capsys):
    from symtrain.cli import main
    from symtrain.train import list_methods

    assert "antithetic_averaging" not in list_methods()  # only the subprocess above imported it
    args = ["train", "nbody_ga", "--budget", "smoke", "--out", str(tmp_path / "run")]
    assert main([*args, "--set", "symmetrization.method=antithetic_averaging"]) == 2
    assert "symmetrization.method: must be one of" in capsys.readouterr().err
    assert main([*args, "--import", "no_such_module_xyz"]) == 2
    assert "--import no_such_module_xyz" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
