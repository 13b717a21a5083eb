"""Bad input gets a clear error naming the problem at every public entry point, never a
silent wrong answer. Organised by class; each test asserts the exception type and a
phrase of its message."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.errors import NonFiniteError
from symtrain.models.timm_loader import WeightsMismatchError, WeightsUnavailableError, load_timm_model
from symtrain.train import ConfigError, Trainer, TrainingDiverged, load_recipe
from symtrain.train.build import build
from symtrain.train.checkpoints import CheckpointError
from symtrain.train.recipes import find_recipe


class Flat(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))

    def forward(self, x):
        return self.net(x)


# --- shapes: actions check their data wherever they are called ---------------------------
def test_action_called_directly_checks_the_image_is_square():
    sym = st.Symmetry("C4", input="image")
    g = sym.group.sample(2)
    with pytest.raises(st.ShapeError, match="square image"):
        sym.act_input(g, torch.randn(2, 3, 8, 10))
    with pytest.raises(st.ShapeError, match="square image"):
        sym.input.act(sym.group, g, torch.randn(2, 3, 8, 10))


@pytest.mark.parametrize("group,action,x", [
    ("SO3", "points", torch.randn(2, 5, 2)),          # 2-d points for a 3-d group
    ("SO3", "points", torch.randn(2, 5)),             # no coordinate axis
    ("S5", "nodes", torch.randn(2, 4, 3)),            # S5 on 4 nodes
    ("S_n", "adjacency", torch.randn(2, 4, 5)),       # not square
    ("D4", "image", torch.randn(2, 16, 16)),          # no channel axis
])
def test_action_shape_mismatch(group, action, x):
    sym = st.Symmetry(group, input=action)
    g = sym.group.sample(2, context=st.groups.GroupContext(num_nodes=5))
    with pytest.raises(st.ShapeError):
        sym.act_input(g, x)


def test_element_count_must_match_the_batch():
    sym = st.Symmetry("SO3", input="points")
    with pytest.raises(st.ShapeError, match="3 group elements for a batch of 2"):
        sym.act_input(sym.group.sample(3), torch.randn(2, 5, 3))


def test_wrapper_checks_the_base_models_output():
    sym = st.Symmetry("C4", input="image", output="image")
    model = st.GroupAveraging(nn.Conv2d(1, 1, (1, 3)), sym)  # output 8x6: not square
    with pytest.raises(st.ShapeError, match="square image"):
        model(torch.randn(2, 1, 8, 8))


def test_metrics_augment_and_losses_check_shapes():
    sym = st.Symmetry("C4", input="image", output="trivial")
    x = torch.randn(2, 3, 8, 10)
    model = Flat(240, 2)
    with pytest.raises(st.ShapeError, match="square image"):
        st.equivariance_error(model, sym, x)
    with pytest.raises(st.ShapeError, match="square image"):
        st.Augment(sym)(x)
    with pytest.raises(st.ShapeError, match="square image"):
        st.EquivarianceLoss(sym)(model, x, torch.randn(2, 2))


# --- masks --------------------------------------------------------------------------------
MIDDLE = torch.tensor([[True, False, True, False, True]])


def test_mask_with_padding_in_the_middle_is_rejected_everywhere():
    sym = st.Symmetry("S_n", input=st.actions.create_action("fields", "nodes", "mask"), output="trivial")
    x = (torch.randn(1, 5, 2), MIDDLE)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        sym.check_input(x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.GroupAveraging(Flat(10, 1), sym, samples=4)(*x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.groups.SymmetricGroup().sample(1, context=st.groups.GroupContext(num_nodes=5, mask=MIDDLE))
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.create_symmetrizer("ps", Flat(10, 1), sym, example=x, samples=2)(*x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.FrameAveraging(Flat(10, 1), sym)(*x)


def test_prefix_masks_and_non_bool_masks():
    sym = st.Symmetry("S_n", input=st.actions.create_action("fields", "nodes", "mask"), output="trivial")
    ok = (torch.randn(1, 5, 2), torch.tensor([[True, True, True, False, False]]))
    sym.check_input(ok)
    with pytest.raises(st.ShapeError, match="bool mask"):
        sym.check_input((ok[0], ok[1].float()))


# --- non-finite values -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_named_before_linear_algebra(bad):
    sym = st.Symmetry("SO3", input="points", output="points")
    x = torch.randn(3, 6, 3)
    x[1, 2, 0] = bad
    base = nn.Identity()
    wrappers = (st.FrameAveraging(base, sym), st.Canonicalization(base, sym), st.GroupAveraging(base, sym, samples=2))
    for model in wrappers:
        with pytest.raises(NonFiniteError, match=r"not finite.*samples \[1\]"):
            model(x)
    with pytest.raises(NonFiniteError, match="not finite"):
        st.equivariance_error(base, sym, x, samples=2)
    with pytest.raises(NonFiniteError, match="not finite"):
        st.Augment(sym)(x)


def test_non_finite_value_in_a_field_names_the_field():
    sym = st.Symmetry("S_n x O3", input=st.actions.create_action("fields", pos="points", vel="vectors"))
    x = {"pos": torch.randn(2, 4, 3), "vel": torch.randn(2, 4, 3)}
    x["vel"][0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"\['vel'\].*NaN"):
        sym.check_input(x)


# --- counts -------------------------------------------------------------------------------------
def test_infinite_group_needs_training_samples_at_construction():
    sym = st.Symmetry("SO3", input="points", output="trivial")
    with pytest.raises(st.SymmetryError, match="infinite"):
        st.GroupAveraging(Flat(15, 1), sym, samples=None, eval_samples=4)


def test_numpy_integers_are_integers():
    sym = st.Symmetry("SO3", input="points", output="trivial")
    model = st.GroupAveraging(Flat(15, 1), sym, samples=np.int64(4), eval_samples=np.int32(2))
    assert model.samples == 4 and isinstance(model.samples, int)
    loss = st.EquivarianceLoss(sym, samples=np.int64(2))
    assert loss.samples == 2
    with pytest.raises(st.SymmetryError, match="positive integer"):
        st.GroupAveraging(Flat(15, 1), sym, samples=np.float64(4.0))
    with pytest.raises(st.SymmetryError, match="positive integer"):
        st.GroupAveraging(Flat(15, 1), sym, samples=True)


# --- tracing: value checks run in eager mode only --------------------------------------------
def test_frame_averaging_on_meta_and_under_vmap():
    sym = st.Symmetry("O3", input="points", output="points")
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    out = model.to("meta")(torch.randn(2, 5, 3, device="meta"))
    assert out.shape == (2, 5, 3) and out.device.type == "meta"
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    x = torch.randn(4, 2, 5, 3)
    batched = torch.func.vmap(model)(x)
    assert torch.allclose(batched[1], model(x[1]), atol=1e-5)


def test_frame_averaging_exports():
    sym = st.Symmetry("O3", input="points", output="points")
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    x = torch.randn(2, 5, 3)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


# --- symtrain lie --images: one line and exit code 2 -------------------------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "not_images", "corrupt"])
def test_lie_images_folder_errors(tmp_path, capsys, case):
    from symtrain.cli import main

    folder = tmp_path / "imgs"
    if case != "missing":
        folder.mkdir()
    if case == "not_images":
        (folder / "notes.txt").write_text("hello")
    if case == "corrupt":
        (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    code = main(["lie", "--model", "resnet10t", "--no-pretrained", "--images", str(folder),
                 "--image-size", "32", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("symtrain lie:")
    phrase = {"missing": "is not a folder", "empty": "no images", "not_images": "no images",
              "corrupt": "a.png is not a readable image"}[case]
    assert phrase in err[0]


# === training side ===========================================================================
# The runs below share one cheap recipe: a few steps of the n-body transformer, no Lie
# derivative at evaluation.
ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["train.progress=false", "train.steps=4", "train.checkpoint_every=2", "train.eval_every=4",
         "train.log_every=1", "symmetrization.lie_derivative=false"]


def cheap(*overrides: str, name: str = "nbody_plain"):
    return load_recipe(find_recipe(name), [*CHEAP, *overrides], "smoke")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, symtrain_cache):
    """A finished cheap run (outputs and checkpoints), copied by the tests that change it."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("finished")
    Trainer(cheap(), folder).fit()
    return folder


def copy_run(finished_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(finished_run, target)
    return target


# --- weights: a file that does not fit is an error listing the keys ---------------------------
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2, num_classes=5).state_dict()
    resnet = timm.create_model("resnet18", num_classes=0).state_dict()
    save_file(vit, str(folder / "vit.safetensors"))
    save_file({k: v.contiguous() for k, v in resnet.items()}, str(folder / "resnet18.safetensors"))
    save_file({k: v for k, v in vit.items() if not k.startswith("blocks.1.")}, str(folder / "partial.safetensors"))
    (folder / "corrupt.safetensors").write_bytes((folder / "vit.safetensors").read_bytes()[:4000])
    torch.save(vit, folder / "vit.pth")
    (folder / "corrupt.pth").write_bytes((folder / "vit.pth").read_bytes()[:4000])
    return folder


def graph_vit(checkpoint, vit: str = "vit_tiny_patch16_224"):
    from symtrain.models.graph_vit import create_graph_vit

    return create_graph_vit(vit, max_nodes=8, img_size=32, depth=2, checkpoint=checkpoint)


def test_matching_weights_load(weight_files):
    for name in ("vit.safetensors", "vit.pth"):
        graph_vit(weight_files / name)


def test_checkpoint_of_another_architecture_lists_missing_and_unexpected_keys(weight_files):
    with pytest.raises(WeightsMismatchError, match=r"resnet18\.safetensors.*0 of its .* tensors match.*"
                                                   r"missing keys .*cls_token.*unexpected keys .*layer1"):
        graph_vit(weight_files / "resnet18.safetensors")


def test_checkpoint_with_only_some_backbone_weights_is_an_error(weight_files):
    with pytest.raises(WeightsMismatchError, match=r"partial\.safetensors.*missing keys \d+ \['blocks\.1\."):
        graph_vit(weight_files / "partial.safetensors")


def test_checkpoint_of_the_wrong_size_names_file_and_tensor(weight_files):
    with pytest.raises(WeightsMismatchError, match=r"vit\.safetensors.*does not fit 'vit_small_patch16_224'.*"
                                                   r"wrong size.*cls_token"):
        graph_vit(weight_files / "vit.safetensors", vit="vit_small_patch16_224")


@pytest.mark.parametrize("name", ["corrupt.safetensors", "corrupt.pth"])
def test_corrupt_weights_file_is_named(weight_files, name):
    with pytest.raises(WeightsMismatchError, match=rf"{name}.*not a readable .*corrupt"):
        load_timm_model("vit_tiny_patch16_224", img_size=32, depth=2, checkpoint=weight_files / name)


def test_recipe_checkpoint_that_does_not_fit_names_the_key(weight_files, symtrain_cache):
    recipe = load_recipe(find_recipe("graph_vit_ps"),
                         ["train.progress=false", f"model.checkpoint={weight_files / 'resnet18.safetensors'}"], "smoke")
    with pytest.raises(ConfigError, match=r"model\.checkpoint: .*does not fit.*missing keys"):
        build(recipe)


def test_hub_unreachable_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # loopback: nothing listens
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="hub is unreachable"):
        load_timm_model("resnet18", pretrained=True)
    assert time.perf_counter() - start < 10
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        load_timm_model("resnet18", pretrained=True)


def test_corrupt_trainer_checkpoint_is_named_and_logged(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    latest = run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["dir"]
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"checkpoint .*step-00000004 cannot be restored"):
        Trainer(cheap("train.steps=6"), run, resume=True).fit()
    assert "training stopped: CheckpointError" in (run / "train.log").read_text()


# --- configs and resume: a changed recipe is refused before anything is written ------------------
def test_resume_with_changed_model_dim_is_refused_before_writing(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    before = snapshot(run)
    with pytest.raises(ConfigError, match=r"model\.dim: differs .*model\.dim: 16 -> 32.*--allow-changes model\.dim"):
        Trainer(cheap("model.dim=32"), run, resume=True).fit()
    assert snapshot(run) == before
    # allowed, the weights cannot fit: a named error, not a load_state_dict trace
    with pytest.raises(CheckpointError, match="cannot be restored.*size mismatch"):
        Trainer(cheap("model.dim=32"), run, resume=True, allow_changes=["model.dim"]).fit()


def test_resume_with_changed_lr_and_batch_size_is_refused_then_allowed(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    before = snapshot(run)
    changed = cheap("optim.lr=1e-3", "data.batch_size=8", "train.steps=6")
    with pytest.raises(ConfigError, match=r"differs .*data\.batch_size: 16 -> 8; optim\.lr: 0\.003 -> 0\.001"):
        Trainer(changed, run, resume=True).fit()
    with pytest.raises(ConfigError, match=r"data\.batch_size: differs"):
        Trainer(changed, run, resume=True, allow_changes=["optim.lr"]).fit()
    with pytest.raises(ConfigError, match="--allow-changes optim.rate: no such recipe key"):
        Trainer(changed, run, resume=True, allow_changes=["optim.rate", "data.batch_size"]).fit()
    assert snapshot(run) == before
    metrics = Trainer(changed, run, resume=True, allow_changes=["optim.lr", "data.batch_size"]).fit()
    assert metrics["steps"] == 6
    assert yaml_lr(run) == 1e-3
    log = (run / "train.log").read_text()
    assert "changed on resume (--allow-changes): data.batch_size: 16 -> 8; optim.lr: 0.003 -> 0.001" in log
    # the new rate's schedule from the restored step on, not the old one
    assert logged_rates(run)[4:] == pytest.approx(schedule(changed, 6)[4:], rel=1e-9)


def schedule(recipe, steps: int) -> list[float]:
    """The learning rate after each of ``steps`` steps of ``recipe``'s schedule."""
    from symtrain.train.optim import create_optimizer, create_scheduler

    optimizer = create_optimizer(nn.Linear(1, 1), recipe)
    scheduler = create_scheduler(optimizer, recipe)
    rates = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    return rates


def logged_rates(run: Path) -> list[float]:
    """``train/lr`` as the run logged it in ``metrics.csv``."""
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [float(r["train/lr"]) for r in csv.DictReader(f) if r.get("train/lr")]


def test_longer_run_on_resume_follows_the_new_schedule(finished_run, tmp_path):
    """train.steps may change on resume; the lr schedule is then the new length's (the
    restored one would keep the old cosine, which turns back up past its end)."""
    import yaml

    run = copy_run(finished_run, tmp_path)
    longer = cheap("train.steps=12")
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] != 12
    Trainer(longer, run, resume=True).fit()
    logged = logged_rates(run)
    assert len(logged) == 12 and logged[4:] == pytest.approx(schedule(longer, 12)[4:], rel=1e-9)
    assert "schedule rebuilt" in (run / "train.log").read_text()


def test_run_saved_before_a_key_existed_resumes(finished_run, tmp_path):
    """A config.yaml without a key this version added (its default applies) is no change."""
    import yaml

    run = copy_run(finished_run, tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["train"]["test_trials"], saved["train"]["select"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert Trainer(cheap("train.steps=6"), run, resume=True).fit()["steps"] == 6
    # a key the saved run set to a non-default value is still a change
    saved["optim"]["weight_decay"] = 0.123
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match=r"optim\.weight_decay: differs"):
        Trainer(cheap("train.steps=8"), run, resume=True).fit()


def yaml_lr(run: Path) -> float:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"]


def test_log_every_may_change_on_resume(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    metrics = Trainer(cheap("train.log_every=2", "train.steps=6"), run, resume=True).fit()
    assert metrics["steps"] == 6


# --- run folders: a previous run's outputs are never silently overwritten -------------------
@pytest.mark.parametrize("outputs", [("metrics.json", "model.safetensors"), ("metrics.csv",), ("checkpoints",),
                                     ("config.yaml",), ("train.log",)])
def test_folder_with_a_previous_run_is_refused(outputs, tmp_path, capsys, symtrain_cache):
    from symtrain.cli import main

    for name in outputs:
        (tmp_path / name).mkdir() if name == "checkpoints" else (tmp_path / name).write_text("old")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=rf"holds a previous run \({', '.join(outputs)}\).*--overwrite"):
        Trainer(cheap(), tmp_path).fit()
    code = main(["train", "nbody_plain", "--budget", "smoke", "--out", str(tmp_path), "--set", *CHEAP])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("symtrain train: error: train.out_dir:") and "--overwrite" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert snapshot(tmp_path) == before
    if "metrics.json" in outputs:  # nothing to resume from: --resume must not overwrite it either
        with pytest.raises(ConfigError, match="finished run .*no checkpoint to resume from"):
            Trainer(cheap(), tmp_path, resume=True).fit()
        assert snapshot(tmp_path) == before


def test_cli_flags_that_do_not_go_together(tmp_path, capsys, symtrain_cache):
    from symtrain.cli import main

    base = ["train", "nbody_plain", "--budget", "smoke", "--out", str(tmp_path / "run")]
    assert main([*base, "--allow-changes", "optim.lr", "--set", *CHEAP]) == 2
    assert "--allow-changes only applies with --resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--overwrite", "--set", *CHEAP]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_overwrite_replaces_the_previous_run(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    (run / "checkpoints" / "step-00000099").mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="exclude each other"):
        Trainer(cheap(), run, resume=True, overwrite=True).fit()
    Trainer(cheap(), run, overwrite=True).fit()
    assert json.loads((run / "metrics.json").read_text())["steps"] == 4
    assert not (run / "checkpoints" / "step-00000099").exists()


# --- processes: torchrun on CPU trains across the processes, never duplicates -------------------
def test_torchrun_without_flags_trains_on_cpu_across_processes(finished_run, tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "symtrain", "train", "nbody_plain", "--budget", "smoke", "--out", str(tmp_path / "two"),
           "--set", *CHEAP]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 steps, 2 processes" in (tmp_path / "two" / "train.log").read_text()
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    one = json.loads((finished_run / "metrics.json").read_text())  # 1 process, the same global batch
    for key in ("val/mse", "test/mse"):
        assert two[key] == pytest.approx(one[key], abs=1e-4), key
    assert losses(tmp_path / "two") == pytest.approx(losses(finished_run), abs=1e-4)


def losses(run: Path) -> list[float]:
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


# --- non-finite gradients: the parameters, or the overflowed norm, are named ---------------------
class _Scale(torch.autograd.Function):
    factor = 1e20

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * _Scale.factor


def test_gradient_norm_overflow_is_named_and_logged(tmp_path, symtrain_cache):
    from symtrain.models import NBodyTransformer, register_model

    class Huge(NBodyTransformer):
        def forward(self, pos, vel, charge):
            return _Scale.apply(super().forward(pos, vel, charge))

    register_model("huge_gradient_transformer", Huge)
    with pytest.raises(TrainingDiverged, match=r"non-finite gradient norm at step 1 .*overflowed to inf although "
                                               r"every gradient is finite \(largest entry .* in "):
        Trainer(cheap("model.name=huge_gradient_transformer", "optim.grad_clip=1.0"), tmp_path).fit()
    assert "training stopped: TrainingDiverged: non-finite gradient norm" in (tmp_path / "train.log").read_text()


# --- faults: SIGKILL anywhere, then --resume, gives the uninterrupted run's result ---------------
# Hooks count events (optimizer steps, at the gradient check before the update; checkpoint
# files written; renames); a child process SIGKILLs itself at event ``at``. A kill at a
# file write lands after that file and before the checkpoint's others: inside the
# checkpoint write.
KILL_HOOKS = """
import os, signal
import accelerate.checkpointing, safetensors.torch, torch
from symtrain.train import Trainer
from symtrain.train.guard import GradientGuard

def install(at, patch):
    kinds = []

    def wrap(original, kind):
        def hooked(*args, **kwargs):
            kinds.append(kind)
            if len(kinds) - 1 == at:
                if kind == "write":
                    original(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return hooked

    for owner, name, kind in ((GradientGuard, "check_gradients", "step"), (accelerate.checkpointing, "save", "write"),
                              (torch, "save", "write"), (safetensors.torch, "save_file", "write"),
                              (os, "replace", "rename")):
        patch(owner, name, wrap(getattr(owner, name), kind))
    return kinds
"""
# One process imports torch once (it never trains itself, so forking it is safe), then
# forks a child per kill point; it prints each child's exit status.
KILL_DRIVER = KILL_HOOKS + """
import json, sys
from symtrain.train import load_recipe
from symtrain.train.recipes import find_recipe

points, root, overrides = [int(a) for a in sys.argv[1].split(",")], sys.argv[2], sys.argv[3:]
recipe = load_recipe(find_recipe("nbody_plain"), overrides, "smoke")
torch.set_num_threads(1)
status = {}
for at in points:
    pid = os.fork()
    if pid == 0:
        try:
            install(at, setattr)
            Trainer(recipe, os.path.join(root, f"killed-{at}")).fit()
        finally:
            os._exit(3)  # not killed
    status[at] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(status))
"""


def test_sigkill_at_random_points_then_resume_gives_the_same_run(tmp_path, monkeypatch, symtrain_cache):
    import random
    import subprocess
    import sys

    overrides = [*CHEAP, "train.steps=5", "train.checkpoint_every=2", "train.keep_checkpoints=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    recipe = load_recipe(find_recipe("nbody_plain"), overrides, "smoke")
    hooks: dict = {}
    exec(KILL_HOOKS, hooks)
    with monkeypatch.context() as m:  # the uninterrupted run, counting the events
        kinds = hooks["install"](-1, m.setattr)
        full = Trainer(recipe, tmp_path / "full").fit()
    rng = random.Random(13)
    writes = [i for i, k in enumerate(kinds) if k == "write"]
    others = [i for i, k in enumerate(kinds) if k != "write"]
    points = sorted(rng.sample(writes, 3) + rng.sample(others, 2))  # 3 kills inside checkpoint writes
    done = subprocess.run([sys.executable, "-c", KILL_DRIVER, ",".join(map(str, points)), str(tmp_path),
                           *overrides], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == {str(at): -signal.SIGKILL for at in points}, ([kinds[at] for at in points], done.stderr[-2000:])
    for at in points:
        run = tmp_path / f"killed-{at}"
        resumed = Trainer(recipe, run, resume=True).fit()
        assert {k: v for k, v in resumed.items() if "seconds" not in k} == {
            k: v for k, v in full.items() if "seconds" not in k}, (at, kinds[at])
        assert (run / "metrics.csv").read_text() == (tmp_path / "full" / "metrics.csv").read_text()
        assert (run / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_finite_values_whose_sum_overflows_are_accepted(dtype):
    """The fast check sums the tensor; a sum that overflows must fall back to the exact
    check, not report finite data as non-finite (and real NaN/inf is still caught)."""
    from symtrain.checks import check_finite
    from symtrain.errors import NonFiniteError

    big = torch.finfo(dtype).max
    x = torch.full((4, 1000), big, dtype=dtype)
    check_finite(x, "big")
    x[2, 7] = float("inf")
    with pytest.raises(NonFiniteError, match=r"big is not finite: infinite values in samples \[2\]"):
        check_finite(x, "big")
    x[2, 7], x[3, 0] = 1.0, float("nan")
    with pytest.raises(NonFiniteError, match=r"NaN in samples \[3\]"):
        check_finite(x, "big")
