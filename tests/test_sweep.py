"""Sweeps: grid expansion, stable point ids, results.csv, resume, and the Ray backend."""

import csv
import json

import pytest

from symtrain.cli import main
from symtrain.scaling import sweep as sw

SPEC = {
    "base": {"batch_size": 8},
    "grids": [
        {"method": ["plain", "augment"], "params": [1e3, 1e4], "steps": [10, 20], "seed": [0]},
        {"method": ["plain"], "params": [1e3], "steps": [10], "dataset_size": [100, 1000], "seed": [0]},
    ],
}


def _rows(out):
    with (out / sw.RESULTS).open(newline="") as f:
        return list(csv.DictReader(f))


def test_expand_and_point_ids(tmp_path):
    points = sw.expand(SPEC)
    assert len(points) == 2 * 2 * 2 + 2
    assert points[0] == {"batch_size": 8, "method": "plain", "params": 1e3, "steps": 10, "seed": 0}
    assert points[1]["steps"] == 20  # last key fastest
    # ids depend on the contents only, not on key order
    assert sw.point_id({"a": 1, "b": 2}) == sw.point_id({"b": 2, "a": 1}) != sw.point_id({"a": 1, "b": 3})
    file = tmp_path / "sweep.yaml"
    file.write_text("grid:\n  method: [plain, augment]\n  seed: 0\n  dataset_size: 1e4\n")
    assert sw.expand(file) == [{"method": "plain", "seed": 0, "dataset_size": 1e4},
                               {"method": "augment", "seed": 0, "dataset_size": 1e4}]
    with pytest.raises(ValueError, match="exactly one"):
        sw.load_sweep({"grid": {"a": [1]}, "grids": []})
    with pytest.raises(ValueError, match="unknown sweep keys"):
        sw.load_sweep({"grid": {"a": [1]}, "seeds": [1]})


def test_results_csv_and_resume(tmp_path):
    calls, broken = [], [True]

    def run_point(point, out_dir):
        calls.append(point)
        assert json.loads((out_dir / "point.json").read_text()) == point
        (out_dir / "metrics.json").write_text("{}")
        if point.get("dataset_size") == 1000 and broken[0]:
            raise RuntimeError("out of memory")  # fails on the first pass only
        return sw.synthetic_run(point, out_dir)

    first = sw.run_sweep(SPEC, run_point, tmp_path)
    assert len(first.ran) == 9 and len(first.failed) == 1 and not first.skipped
    rows = _rows(tmp_path)
    assert len(rows) == 9 and len({r["point_id"] for r in rows}) == 9
    assert list(rows[0]) == ["point_id", "batch_size", "method", "params", "steps", "seed", "dataset_size",
                             "test_loss", "flops", "extra"]
    assert all((tmp_path / "runs" / r["point_id"] / "metrics.json").is_file() for r in rows)
    # Resume: the 9 finished points are skipped, only the failed one runs again.
    calls.clear()
    broken[0] = False
    second = sw.run_sweep(SPEC, run_point, tmp_path)
    assert len(calls) == 1 and calls[0]["dataset_size"] == 1000
    assert len(second.skipped) == 9 and len(second.ran) == 1 and not second.failed
    assert len(_rows(tmp_path)) == 10 and (tmp_path / sw.RESULTS).read_text().count("point_id") == 1
    calls.clear()
    assert len(sw.run_sweep(SPEC, run_point, tmp_path).skipped) == 10 and not calls


def test_new_metric_keys_go_to_extra(tmp_path):
    file = tmp_path / "results.csv"
    sw.append_row(file, {"point_id": "a", "loss": 1.0})
    sw.append_row(file, {"point_id": "b", "loss": 2.0, "ece": 0.1})
    rows = _rows(tmp_path)
    assert rows[1]["loss"] == "2.0" and json.loads(rows[1]["extra"]) == {"ece": 0.1} and rows[0]["extra"] == ""


def test_metrics_must_be_a_mapping_and_not_shadow_settings(tmp_path):
    spec = {"grid": {"seed": [0]}}
    assert sw.run_sweep(spec, lambda p, d: [1.0], tmp_path).failed
    with pytest.raises(ValueError, match="names of sweep settings"):
        sw.run_sweep(spec, lambda p, d: {"seed": 1}, tmp_path / "b")
    with pytest.raises(ValueError, match="backend"):
        sw.run_sweep(spec, sw.synthetic_run, tmp_path, backend="slurm")


def test_ray_backend_on_one_local_cpu(tmp_path, ray_one_cpu):
    """Correctness only: its speed is bench/sweep_ray.py's (no timed test in the suite)."""
    spec = {"grid": {"method": ["plain", "augment"], "params": [1e3, 1e4], "seed": [0, 1]}}
    outcome = sw.run_sweep(spec, sw.synthetic_run, tmp_path, backend="ray", num_cpus=1)
    assert len(outcome.ran) == 8 and not outcome.failed
    rows = _rows(tmp_path)
    assert sorted(r["point_id"] for r in rows) == sorted(sw.point_id(p) for p in sw.expand(spec))
    local = tmp_path / "local"
    sw.run_sweep(spec, sw.synthetic_run, local)  # same metrics as the local backend
    by_id = {r["point_id"]: r["test_loss"] for r in _rows(local)}
    assert all(by_id[r["point_id"]] == r["test_loss"] for r in rows)
    # resumed under Ray: nothing left to run
    assert len(sw.run_sweep(spec, sw.synthetic_run, tmp_path, backend="ray", num_cpus=1).skipped) == 8


def test_cli_runs_the_synthetic_sweep(tmp_path):
    file = tmp_path / "sweep.yaml"
    file.write_text("grid:\n  params: [1000, 10000]\n  seed: [0]\n")
    assert main(["sweep", str(file), "--out", str(tmp_path / "out"),
                 "--run", "symtrain.scaling.sweep:synthetic_run"]) == 0
    assert len(_rows(tmp_path / "out")) == 2
