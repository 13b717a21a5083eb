"""The extension examples (``examples/new_*.py``): a group, a dataset, a model and a
command, each one file, each working with the rest of the package unchanged. They run
in subprocesses, so their registrations do not leak into the registries other tests
loop over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str, cwd: Path | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", code, *args] if code is not None else [sys.executable, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


LOAD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("example", sys.argv[1])
example = sys.modules["example"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
import torch, symtrain as st
"""


def test_new_group_is_a_group_name_everywhere():
    done = run(str(EXAMPLES / "new_group.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "P3 group averaging" in done.stdout
    check = LOAD + """
from symtrain.groups import create_group, list_groups
g = create_group("P3")
assert "P3" in list_groups() and g.order == 2 and str(create_group("S_n x P3")) == "S_n x P3"
x = g.sample(64, generator=torch.Generator().manual_seed(0))
e = g.identity(64)
assert bool(g.allclose(g.compose(x, g.inverse(x)), e).all())          # inverses
y, z = g.sample(64), g.sample(64)
assert bool(g.allclose(g.compose(g.compose(x, y), z), g.compose(x, g.compose(y, z))).all())
for dtype in (torch.float32, torch.float64):
    sym = st.Symmetry("P3", input=st.actions.Points(), output=st.actions.Vectors(nodes=False))
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).to(dtype)
    pts = torch.randn(6, 4, 3, dtype=dtype)
    assert st.equivariance_error(st.GroupAveraging(base, sym), sym, pts).max < 1e-5
    assert st.equivariance_error(base, sym, pts).max > 1e-2
print("ok")
"""
    done = run(str(EXAMPLES / "new_group.py"), code=check)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_new_command_runs_through_symtrain_main():
    done = run(str(EXAMPLES / "new_command.py"), "--group", "D4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "D4: order 8, continuous: False, factors: D4"
    done = run(str(EXAMPLES / "new_command.py"), "--group", "Q7")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "symtrain groups: error:" in done.stderr and "Q7" in done.stderr


def test_new_dataset_declares_a_symmetry_its_targets_have(tmp_path):
    check = LOAD + """
task = example.harmonic_task(train=16, val=4, test=4)
x, y = task.train.__getitems__(list(range(16)))
for dtype in (torch.float32, torch.float64):
    xs = tuple(t.to(dtype) for t in x)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert st.equivariance_error(example.harmonic_positions, task.symmetry, xs, samples=8).max < tol
    broken = lambda pos, vel, charge: example.harmonic_positions(pos + 0.1 * pos.abs(), vel, charge)
    assert st.equivariance_error(broken, task.symmetry, xs, samples=8).max > 1e-2
print("ok")
"""
    done = run(str(EXAMPLES / "new_dataset.py"), code=check)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("name", ["new_dataset", "new_model"])
def test_example_trains_with_symtrain_train(name, tmp_path, symtrain_cache):
    done = run(str(EXAMPLES / f"{name}.py"), "--set", "train.progress=false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout)
    assert metrics["steps"] > 0 and 0 <= metrics["test/mse"] < 10
