"""The training loop's components, one at a time: the loop fits on one screen, the
gradient guard, model selection, test trials, the run folder and the loop's counter."""

import inspect
import json
import math

import pytest
import torch
import yaml
from torch import nn

from symtrain.data.task import TensorData
from symtrain.metrics.flops import count_step_flops
from symtrain.train import ConfigError, TrainingDiverged, load_recipe
from symtrain.train.checkpoints import CheckpointError, Checkpoints
from symtrain.train.cost import model_size, step_flops
from symtrain.train.guard import GradientGuard
from symtrain.train.loss import TrainingLoss
from symtrain.train.methods import Built
from symtrain.train.recipes import find_recipe
from symtrain.train.run_folder import RUN_OUTPUTS, RunFolder, write_weights
from symtrain.train.selection import ModelSelection
from symtrain.train.state import TrainState
from symtrain.train.trainer import Trainer
from symtrain.train.trials import average_trials


class OneProcess:
    """The part of ``accelerate.Accelerator`` the components use, for one CPU process."""

    device = torch.device("cpu")
    is_main_process = True

    def __init__(self):
        from accelerate.utils import DistributedType

        self.distributed_type = DistributedType.NO

    def reduce(self, tensor, reduction="mean"):
        return tensor

    def unwrap_model(self, model):
        return model

    def wait_for_everyone(self):
        pass


def recipe(*overrides: str):
    return load_recipe(find_recipe("nbody_plain"), ["train.progress=false", *overrides], "smoke")


def test_fit_is_one_function_on_one_screen():
    lines = inspect.getsource(Trainer.fit).splitlines()
    assert len(lines) < 100, len(lines)
    source = "\n".join(lines)
    for call in ("acc.prepare(", "acc.accumulate(", "acc.backward(", "optimizer.step()", "acc.log(",
                 "self.evaluate(", ".save(acc"):
        assert call in source, call


# --- gradient guard ---------------------------------------------------------------------------
def guarded(tmp_path, *overrides):
    model = nn.Linear(3, 2)
    guard = GradientGuard(recipe(*overrides), Checkpoints(tmp_path / "checkpoints", 2))
    return model, guard


def set_grads(model, value):
    for p in model.parameters():
        p.grad = torch.full_like(p, value)


def test_guard_skips_non_finite_gradients_within_the_budget_then_stops(tmp_path):
    model, guard = guarded(tmp_path, "optim.skip_nonfinite=2")
    state = TrainState()
    for skipped in (1, 2):
        set_grads(model, float("nan"))
        guard.check_gradients(OneProcess(), model, state)
        assert guard.skipped == skipped and all(p.grad is None for p in model.parameters())
    set_grads(model, float("inf"))
    state.step, state.epoch, state.batches = 4, 1, 3
    with pytest.raises(TrainingDiverged, match=r"non-finite gradients at step 5 \(epoch 1, batch 3\) in 2 "
                                               r"parameters: weight, bias; no update was applied\. Last good "
                                               r"checkpoint: none yet \(2 such steps skipped before"):
        guard.check_gradients(OneProcess(), model, state)


def test_guard_without_budget_stops_at_the_first_non_finite_gradient(tmp_path):
    model, guard = guarded(tmp_path)
    set_grads(model, 1.0)
    model.bias.grad[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"in 1 parameters: bias;"):
        guard.check_gradients(OneProcess(), model, TrainState())


def test_guard_clips_to_the_norm_and_leaves_small_gradients(tmp_path):
    model, guard = guarded(tmp_path, "optim.grad_clip=1.0")
    set_grads(model, 10.0)
    guard.check_gradients(OneProcess(), model, TrainState())
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert float(norm) == pytest.approx(1.0, rel=1e-5) and guard.skipped == 0
    set_grads(model, 1e-3)
    guard.check_gradients(OneProcess(), model, TrainState())
    assert all(torch.equal(p.grad, torch.full_like(p, 1e-3)) for p in model.parameters())


def test_guard_stops_on_a_non_finite_loss_and_names_the_last_checkpoint(tmp_path):
    _, guard = guarded(tmp_path)
    folder = tmp_path / "checkpoints" / "step-00000006"
    folder.mkdir(parents=True)
    (tmp_path / "checkpoints" / "latest.json").write_text(json.dumps({"dir": folder.name, "step": 6, "history": []}))
    assert float(guard.check_loss(OneProcess(), torch.tensor(2.5), TrainState())) == 2.5
    with pytest.raises(TrainingDiverged, match=r"the loss is nan at step 1 .*Last good checkpoint: .*step-00000006"):
        guard.check_loss(OneProcess(), torch.tensor(float("nan")), TrainState())


def test_guard_state_round_trips(tmp_path):
    model, guard = guarded(tmp_path, "optim.skip_nonfinite=5")
    set_grads(model, float("nan"))
    guard.check_gradients(OneProcess(), model, TrainState())
    restored = guarded(tmp_path, "optim.skip_nonfinite=5")[1]
    restored.load_state_dict(guard.state_dict())
    assert restored.skipped == 1 and restored.state_dict() == {"skipped": 1}


# --- model selection -----------------------------------------------------------------------------
@pytest.mark.parametrize("metric, values, best", [("mse", [3.0, 1.0, 2.0, 1.0], (2, 1.0)),
                                                 ("accuracy", [0.5, 0.9, 0.7, 0.9], (2, 0.9))])
def test_selection_keeps_the_best_by_the_metrics_direction(tmp_path, metric, values, best):
    selection = ModelSelection("best_val", metric, tmp_path / "best.safetensors")
    for step, value in enumerate(values, start=1):
        selection.observe(value, step)
    assert (selection.best_step, selection.best_value) == best  # a tie keeps the earlier step
    restored = ModelSelection("best_val", metric, tmp_path / "best.safetensors")
    restored.load_state_dict(selection.state_dict())
    assert (restored.best_step, restored.best_value) == best
    assert not restored.observe(values[1], 9)


def test_selection_writes_the_best_weights_and_loads_them_back(tmp_path):
    acc, model = OneProcess(), nn.Linear(3, 2)
    selection = ModelSelection("best_val", "mse", tmp_path / "best.safetensors")
    with torch.no_grad():
        model.weight.fill_(1.0)
    selection.update(acc, model, {"val/mse": 0.5}, 3)
    with torch.no_grad():
        model.weight.fill_(2.0)
    selection.update(acc, model, {"val/mse": 0.7}, 6)  # worse: not written
    assert selection.load(acc, model, 6) == {"select": "best_val", "selected_step": 3, "selected_val": 0.5}
    assert torch.equal(model.weight, torch.ones(2, 3))
    assert not list(tmp_path.glob(".*.tmp"))


def test_selection_of_the_last_weights_writes_nothing(tmp_path):
    acc, model = OneProcess(), nn.Linear(3, 2)
    selection = ModelSelection("last", "mse", tmp_path / "best.safetensors")
    selection.update(acc, model, {"val/mse": 0.5}, 3)
    assert selection.load(acc, model, 8) == {"select": "last", "selected_step": 8}
    assert not (tmp_path / "best.safetensors").exists() and selection.best_step == 0


def test_selection_with_missing_best_weights_names_the_file(tmp_path):
    selection = ModelSelection("best_val", "mse", tmp_path / "best.safetensors")
    selection.observe(0.5, 4)
    with pytest.raises(FileNotFoundError, match=r"best\.safetensors \(the weights of step 4\) is missing"):
        selection.load(OneProcess(), nn.Linear(3, 2), 8)


def test_selection_refuses_an_unknown_policy(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.select: 'first'"):
        ModelSelection("first", "mse", tmp_path / "best.safetensors")


# --- test trials ---------------------------------------------------------------------------------
def test_trials_average_with_their_spread_and_measure_equivariance_once():
    calls = []

    def evaluate(trial, equivariance):
        calls.append((trial, equivariance))
        out = {"test/mse": [1.0, 2.0, 6.0][trial]}
        if equivariance:
            out["test/equivariance_error"] = 0.25
        return out

    out = average_trials(evaluate, 3)
    assert calls == [(0, True), (1, False), (2, False)]
    assert out["test/mse"] == pytest.approx(3.0) and out["test/mse_std"] == pytest.approx(math.sqrt(14 / 3))
    assert out["test/equivariance_error"] == 0.25 and "test/equivariance_error_std" not in out
    assert out["test_trials"] == 3
    assert average_trials(evaluate, 1) == {"test/mse": 1.0, "test/equivariance_error": 0.25, "test_trials": 1}


# --- run folder ----------------------------------------------------------------------------------
def test_run_folder_refuses_a_previous_run_and_writes_nothing(tmp_path):
    (tmp_path / "metrics.csv").write_text("old")
    with pytest.raises(ConfigError, match=r"holds a previous run \(metrics\.csv\).*--overwrite"):
        RunFolder(tmp_path, recipe()).check()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
    RunFolder(tmp_path, recipe(), overwrite=True).check()
    RunFolder(tmp_path, recipe(), resume=True).check()


def test_run_folder_resume_diff_refuses_or_allows_and_notes_the_schedule(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(recipe().to_dict()))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text(json.dumps({"dir": "step-1", "step": 1, "history": []}))
    with pytest.raises(ConfigError, match=r"optim\.lr: differs from the recipe .*--allow-changes optim\.lr"):
        RunFolder(tmp_path, recipe("optim.lr=0.5"), resume=True).check()
    folder = RunFolder(tmp_path, recipe("optim.lr=0.5", "train.steps=99"), resume=True, allow_changes=["optim"])
    folder.check()
    assert [c.split(":")[0] for c in folder.allowed] == ["optim.lr"] and folder.steps_changed


def test_overwrite_removes_only_run_outputs(tmp_path):
    from accelerate import PartialState

    for name in RUN_OUTPUTS:
        (tmp_path / name).mkdir() if name == "checkpoints" else (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    folder = RunFolder(tmp_path, recipe(), overwrite=True)
    folder.prepare(PartialState(cpu=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".symtrain.lock", "notes.txt"]  # held while training
    folder.lock.release()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_exported_weights_are_written_atomically_and_load(tmp_path):
    from safetensors.torch import load_file

    model = nn.Linear(3, 2)
    write_weights(model, tmp_path / "model.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    loaded = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


# --- the training loss and the cost ---------------------------------------------------------------
class Penalised(nn.Module):
    """A linear model whose last forward leaves an auxiliary loss (as the LPS wrappers do)."""

    def __init__(self):
        super().__init__()
        self.base = nn.Linear(3, 2)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        self.last = self.base(x) * self.scale
        return self.last

    def aux_loss(self):
        return 0.1 * self.last.pow(2).mean()


class Task:
    @staticmethod
    def loss(out, y):
        return nn.functional.mse_loss(out, y)


def test_training_loss_adds_the_auxiliary_loss_and_logs_its_parts():
    model, x, y = Penalised(), torch.randn(4, 3), torch.randn(4, 2)
    loss, logs = TrainingLoss(Built(model), Task())(model, x, y)
    task_loss = nn.functional.mse_loss(model(x), y)
    assert torch.allclose(loss, task_loss + 0.1 * model.last.pow(2).mean())
    assert sorted(logs) == ["aux_loss", "task_loss"] and torch.allclose(logs["task_loss"], task_loss)
    assert not logs["task_loss"].requires_grad and not logs["aux_loss"].requires_grad


def test_training_loss_augments_first_and_keeps_only_the_criterions_parts():
    seen = []

    def augment(x, y):
        seen.append(x)
        return -x, -y

    class Criterion(nn.Module):
        def forward(self, model, x, y):
            seen.append(x)
            return model(x).sum(), {"task_loss": torch.tensor(1.0), "equivariance_loss": torch.tensor(2.0),
                                    "internal": torch.tensor(3.0)}

    model, x = nn.Linear(3, 2), torch.randn(4, 3)
    loss, logs = TrainingLoss(Built(model, augment, Criterion()), Task())(model, x, torch.randn(4, 2))
    assert torch.equal(seen[1], -x) and torch.allclose(loss, model(-x).sum())
    assert sorted(logs) == ["equivariance_loss", "task_loss"]


def test_model_size_counts_the_wrapper_and_its_base():
    assert model_size(Penalised()) == {"params": 3 * 2 + 2 + 1, "base_params": 3 * 2 + 2}
    assert model_size(nn.Linear(3, 2)) == {"params": 8, "base_params": 8}


def test_step_flops_counts_one_global_batch_and_leaves_training_alone():
    r = recipe("data.batch_size=8", "train.grad_accum=2")
    model, data = nn.Linear(3, 2), TensorData(torch.randn(20, 3), torch.randn(20, 2))
    loss = TrainingLoss(Built(model), Task())
    expected = count_step_flops(model, data.__getitems__(list(range(4))), lambda m, b: loss(m, *b)[0]).total
    rng = torch.random.get_rng_state()
    assert step_flops(loss, model, data, r) == 2 * expected > 0  # one micro-batch of 4, × grad_accum
    assert torch.equal(torch.random.get_rng_state(), rng) and all(p.grad is None for p in model.parameters())


# --- the loop's counter --------------------------------------------------------------------------
def test_train_state_round_trips():
    state = TrainState()
    state.step, state.epoch, state.batches = 7, 2, 3
    state.flops = 70
    restored, snapshot = TrainState(), state.state_dict()
    restored.load_state_dict(snapshot)
    saved = restored.state_dict()
    assert {k: saved[k] for k in ("step", "epoch", "batches", "flops")} == {"step": 7, "epoch": 2, "batches": 3,
                                                                         "flops": 70}
    assert saved["seconds"] >= snapshot["seconds"] > 0  # the clock continues from the checkpoint
    restored.advance(10)
    assert (restored.step, restored.flops) == (8, 80)
    old = TrainState()  # a checkpoint written before the FLOPs were counted: its steps at this cost
    old.load_state_dict({"step": 7, "epoch": 2, "batches": 3})
    old.advance(10)
    assert (old.step, old.flops) == (8, 80)


def test_checkpoint_with_another_set_of_state_objects_is_refused(tmp_path, symtrain_cache):
    """A checkpoint from before the guard and the selection kept their own state holds one
    state object: resuming it is a CheckpointError naming the objects, logged in train.log."""
    cheap = ["train.steps=2", "train.checkpoint_every=2", "train.eval_every=2",
             "symmetrization.lie_derivative=false"]
    Trainer(recipe(*cheap), tmp_path).fit()
    latest = tmp_path / "checkpoints" / json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["dir"]
    for extra in ("custom_checkpoint_1.pkl", "custom_checkpoint_2.pkl"):
        (latest / extra).unlink()
    with pytest.raises(CheckpointError, match=r"step-00000002 cannot be restored into this run \(it holds 1 "
                                              r"training-state objects, this run saves 3: TrainState, "
                                              r"GradientGuard, ModelSelection\).*--overwrite"):
        Trainer(recipe(*cheap[1:], "train.steps=4"), tmp_path, resume=True).fit()
    assert "training stopped: CheckpointError" in (tmp_path / "train.log").read_text()
