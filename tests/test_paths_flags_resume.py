"""Paths of the wrong kind, flags that cannot be honoured, records that survive resumes and
the run-folder lock (issue 24, classes 4, 5, 6 and the lock of class 8).

The path tests are driven by the command registry: every option of every command whose
``type`` is a path type of :mod:`symtrain.cli._paths` is given each wrong kind of path,
and must answer one line with exit code 2, writing nothing."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from symtrain.cli import COMMANDS, build_parser, main
from symtrain.cli._paths import PathType, module_or_file
from symtrain.lock import FolderInUseError, FolderLock
from symtrain.paths import PathKindError, input_file, output_folder
from symtrain.train import ConfigError, Trainer, load_recipe
from symtrain.train.recipes import find_recipe

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["train.progress=false", "train.steps=4", "train.checkpoint_every=2", "train.eval_every=4",
         "train.log_every=1", "symmetrization.lie_derivative=false"]
UNWRITABLE = Path("/proc/sys/symtrain-run")  # read-only even for root


def cheap(*overrides: str):
    return load_recipe(find_recipe("nbody_plain"), [*CHEAP, *overrides], "smoke")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- class 4: paths of the wrong kind ----------------------------------------------------------
PATH_WORDS = {"out", "recipes", "imports", "checkpoint", "images", "results"}


def path_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if isinstance(a.type, PathType) or a.type is module_or_file]


def untyped_path_options(parser: argparse.ArgumentParser) -> list[str]:
    """Options whose name says they take a path but that have no path type."""
    return [a.dest for a in parser._actions if a.dest in PATH_WORDS and a not in path_options(parser)]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_path_option_of_every_command_has_a_path_type():
    parsers = subparsers()
    assert set(parsers) == set(COMMANDS.list())
    assert {name: untyped_path_options(p) for name, p in parsers.items() if untyped_path_options(p)} == {}
    probe = argparse.ArgumentParser()
    probe.add_argument("--out")  # the check can fail
    assert untyped_path_options(probe) == ["out"]
    assert sum(len(path_options(p)) for p in parsers.values()) >= 12


def wrong_paths(kind: str, tmp: Path) -> dict[str, str]:
    (tmp / "a_file").write_text("x")
    (tmp / "a_folder").mkdir()
    if kind == "output folder":
        return {"file": "a_file", "under a file": "a_file/run", "unwritable": str(UNWRITABLE)}
    if kind in ("input file", "module or file"):
        return {"folder": "a_folder/" if kind == "module or file" else "a_folder", "missing": "no/such.py"}
    assert kind == "input folder", kind
    return {"file": "a_file", "missing": "no_such_folder"}


def _cases():
    out = []
    for name, parser in sorted(subparsers().items()):
        for action in path_options(parser):
            kind = action.type.kind
            for case in {"output folder": ("file", "under a file", "unwritable"),
                         "input file": ("folder", "missing"), "module or file": ("folder", "missing"),
                         "input folder": ("file", "missing")}[kind]:
                out.append(pytest.param(name, action.option_strings[0] if action.option_strings else None,
                                        kind, case, id=f"{name}-{action.dest}-{case}"))
    return out


@pytest.mark.parametrize("command, option, kind, case", _cases())
def test_a_path_of_the_wrong_kind_is_one_line_and_exit_2(command, option, kind, case, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = wrong_paths(kind, tmp_path)[case]
    before = snapshot(tmp_path)
    argv = [command, *([option, bad] if option else [bad])]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"symtrain {command}: error: argument "), err
    assert bad.rstrip("/") in err[0] or str(UNWRITABLE.parent) in err[0]
    assert snapshot(tmp_path) == before and not captured.out


def test_library_entry_points_check_their_paths(tmp_path):
    from symtrain.scaling.fit import fit_results
    from symtrain.scaling.sweep import run_sweep, synthetic_run

    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"train\.out_dir: .*file is a file, not a folder"):
        Trainer(cheap(), tmp_path / "file").fit()
    with pytest.raises(PathKindError, match=r"out_dir: cannot create .*file/sweep: .*file is a file"):
        run_sweep({"grid": {"params": [1]}}, synthetic_run, tmp_path / "file" / "sweep")
    with pytest.raises(PathKindError, match=r"results: .* is a folder, not a file"):
        fit_results(tmp_path)
    with pytest.raises(PathKindError, match=r"results: .*missing\.csv does not exist"):
        fit_results(tmp_path / "missing.csv")
    from symtrain.lie.report import LieReport, lie_report, plot_summary

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(PathKindError, match=r"out_dir: .*file is a file, not a folder"):
        lie_report(model, [torch.randn(1, 3, 8, 8)], ["rotation"], out_dir=tmp_path / "file")
    with pytest.raises(PathKindError, match=r"out_dir: .*file is a file, not a folder"):
        LieReport(summary=[], per_example=[]).save(tmp_path / "file")
    with pytest.raises(PathKindError, match=r"path: .* is a folder, not a file"):
        plot_summary([], tmp_path)
    assert snapshot(tmp_path) == before
    assert output_folder(tmp_path / "new" / "deeper", "x") == tmp_path / "new" / "deeper"  # mkdir -p is fine
    with pytest.raises(PathKindError, match="cannot write in /proc/sys"):
        output_folder(UNWRITABLE, "x")
    with pytest.raises(PathKindError, match="x: .* is a folder, not a file"):
        input_file(tmp_path, "x")


def test_a_folder_given_as_the_recipe_is_named(tmp_path, capsys):
    assert main(["train", str(tmp_path)]) == 2
    assert "is a folder, not a recipe file" in capsys.readouterr().err


# --- class 5: flags that cannot be honoured -----------------------------------------------------
def test_resume_of_a_folder_holding_no_run_is_refused(tmp_path, capsys, symtrain_cache):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        code = main(["train", "nbody_plain", "--budget", "smoke", "--resume", "--out", str(folder), "--set", *CHEAP])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith("symtrain train: error: --resume: ") and "holds no run" in err[-1]
    assert not (tmp_path / "missing").exists() and not any((tmp_path / "empty").iterdir())


def test_budget_of_a_recipe_without_presets_is_refused(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("data: {name: nbody}\nmodel: {name: nbody_transformer}\n")
    assert load_recipe(recipe).train.budget == "cpu"  # nothing asked, nothing refused
    with pytest.raises(ConfigError, match=r"train\.budget: 'smoke' asked for, but this recipe has no budget"):
        load_recipe(recipe, budget="smoke")
    with pytest.raises(ConfigError, match="no budget presets"):
        load_recipe(recipe, ["train.budget=paper"])


def test_ray_options_with_the_local_backend_are_refused(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("grid: {params: [1]}\n")
    code = main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--num-cpus", "2",
                 "--gpus-per-point", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["symtrain sweep: error: --num-cpus, --gpus-per-point only apply with --backend "
                                 "ray (the local backend runs one point at a time here)"]
    assert not (tmp_path / "o").exists()


def test_set_before_the_recipe_finds_the_recipe(capsys):
    from symtrain.cli.train import split_recipe

    args = argparse.Namespace(recipe=None, overrides=["optim.lr=1e-3", "nbody_ps", "train.steps=3"])
    assert split_recipe(args) and args.recipe == "nbody_ps" and args.overrides == ["optim.lr=1e-3", "train.steps=3"]
    assert not split_recipe(argparse.Namespace(recipe=None, overrides=["optim.lr=1e-3"]))
    assert main(["train", "--set", "optim.lr=1e-3"]) == 2
    assert capsys.readouterr().err.startswith("symtrain train: error: name a recipe")


# --- class 6: records that survive resumes ------------------------------------------------------
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, symtrain_cache):
    """A finished run started as the issue's user did: options before the recipe, --budget smoke."""
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--budget", "smoke", "--out", str(folder), "--set", *CHEAP, "nbody_plain"]) == 0
    return folder


def rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def test_resuming_a_finished_run_changes_no_byte_and_says_so(cli_run, tmp_path, capsys, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    before = snapshot(run)
    # the README's line: no --budget, no --set; the run recorded them
    assert main(["train", "nbody_plain", "--resume", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert "holds a finished run (step 4 of 4, same recipe): nothing to do" in caplog.text  # on stderr
    assert json.loads(captured.out) == json.loads((run / "metrics.json").read_text())
    assert snapshot(run) == before
    assert Trainer(cheap(), run, resume=True).fit() == json.loads((run / "metrics.json").read_text())
    assert snapshot(run) == before


def test_extending_a_finished_run_records_the_whole_run(cli_run, tmp_path, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    first = json.loads((run / "metrics.json").read_text())
    assert main(["train", "nbody_plain", "--resume", "--out", str(run), "--set", "train.steps=6"]) == 0
    whole = json.loads((run / "metrics.json").read_text())
    assert whole["steps"] == 6 and whole["train_flops"] == 6 * whole["flops_per_step"]
    assert whole["seconds"] > first["train_loop_seconds"] and whole["train_loop_seconds"] > 0
    logged = rows(run)
    keys = [(r["step"], tuple(sorted(r))) for r in logged]
    assert len(keys) == len(set(keys)), "a row appears twice"
    assert [r["step"] for r in logged if any(k.startswith("test/") for k in r)] == ["6"]  # the old test row went
    assert [r["step"] for r in logged if "train/loss" in r] == [str(s) for s in range(1, 7)]
    log = (run / "train.log").read_text()
    assert "learning-rate schedule rebuilt for the new recipe (cosine, 6 steps) at step 4: the rate goes from 0 to" in log
    assert "resuming with the recipe recorded in" in caplog.text


# --- the run-folder lock ------------------------------------------------------------------------
HOLD = "import sys, time; from symtrain.lock import FolderLock; FolderLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(120)"


def hold_lock(folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_on_a_run_folder_is_refused_and_a_dead_holder_does_not_block(tmp_path, symtrain_cache):
    folder = tmp_path / "run"
    holder = hold_lock(folder)
    try:
        before = snapshot(folder)
        with pytest.raises(FolderInUseError, match=rf"run folder .*run is in use by another process \(pid "
                                                   rf"{holder.pid} on .*wait for it to finish"):
            Trainer(cheap(), folder).fit()
        assert snapshot(folder) == before  # the lock file only: nothing of a run
        with pytest.raises(FolderInUseError):
            FolderLock(folder).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / ".symtrain.lock").exists()  # left by the killed process: stale, and not in the way
    with FolderLock(folder) as lock:
        assert lock.held
    assert not (folder / ".symtrain.lock").exists()
    Trainer(cheap("train.steps=2", "train.eval_every=2"), folder).fit()
    assert not (folder / ".symtrain.lock").exists()


def test_lock_is_refused_in_the_same_process_and_released_after_an_error(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderInUseError):
            FolderLock(tmp_path).acquire()
    with FolderLock(tmp_path):  # released
        pass
