"""Faults of sweeps: a sweep killed (SIGKILL) in the middle resumes without rerunning its
finished points and without losing or repeating rows; two sweeps in one folder are
refused; a row cut short is dropped and its point run again."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from symtrain.lock import FolderInUseError, FolderLock
from symtrain.scaling import sweep as sw
from symtrain.scaling.fit import read_results

REPO = Path(__file__).resolve().parents[1]

POINT = textwrap.dedent("""
    import json, os, signal
    from symtrain.scaling.sweep import synthetic_run

    def run(point, out_dir):
        with open(os.environ["CALLS"], "a") as f:
            f.write(str(point["params"]) + "\\n")
        if str(point["params"]) == os.environ.get("KILL_AT"):
            os.kill(os.getpid(), signal.SIGKILL)
        return synthetic_run(point, out_dir)
""")


def sweep_cli(tmp: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLS": str(tmp / "calls.txt"), "PYTHONPATH": f"{tmp}{os.pathsep}{REPO}"}
    env.pop("KILL_AT", None)
    if kill_at:
        env["KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "symtrain", "sweep", str(tmp / "sweep.yaml"), "--out",
                           str(tmp / "out"), "--run", "faulty_point:run"], env=env, capture_output=True,
                          text=True, timeout=120)


def rows(out: Path) -> list[dict]:
    with (out / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_sweep_killed_mid_way_resumes_without_rerunning_or_repeating(tmp_path):
    (tmp_path / "faulty_point.py").write_text(POINT)
    (tmp_path / "sweep.yaml").write_text("grid:\n  params: [100, 200, 300, 400, 500]\n")
    killed = sweep_cli(tmp_path, kill_at="300")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [r["params"] for r in rows(tmp_path / "out")] == ["100", "200"]
    done = sweep_cli(tmp_path, kill_at=None)
    assert done.returncode == 0, done.stderr[-2000:]
    calls = (tmp_path / "calls.txt").read_text().split()
    assert calls == ["100", "200", "300", "300", "400", "500"]  # finished points never rerun
    final = rows(tmp_path / "out")
    assert sorted(r["params"] for r in final) == ["100", "200", "300", "400", "500"]
    assert len({r["point_id"] for r in final}) == 5


def test_two_sweeps_in_one_folder_are_refused(tmp_path):
    spec = {"grid": {"params": [10, 20]}}
    with FolderLock(tmp_path, "sweep folder"):
        with pytest.raises(FolderInUseError, match="sweep folder"):
            sw.run_sweep(spec, sw.synthetic_run, tmp_path)
    assert not (tmp_path / "results.csv").exists()
    assert len(sw.run_sweep(spec, sw.synthetic_run, tmp_path).ran) == 2


def test_a_row_cut_short_is_dropped_and_its_point_run_again(tmp_path):
    spec = {"grid": {"params": [10, 20, 30]}}
    sw.run_sweep(spec, sw.synthetic_run, tmp_path)
    results = tmp_path / "results.csv"
    text = results.read_text()
    lines = text.splitlines()
    cut = lines[-1][: len(lines[-1]) // 3]  # the last row, cut inside its cells, no newline
    results.write_text("\n".join(lines[:-1] + [cut]))
    assert len(read_results(results)) == 2  # fit reads only whole rows
    outcome = sw.run_sweep(spec, sw.synthetic_run, tmp_path)
    assert len(outcome.ran) == 1 and len(outcome.skipped) == 2
    whole = read_results(results)
    assert sorted(r["params"] for r in whole) == [10, 20, 30]
    assert results.read_text().count("\n") == 5  # header, 2 rows, the cut line, the rerun row
