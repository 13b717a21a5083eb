"""The training loop, on Hugging Face Accelerate.

One loop for every symmetrization method: the model (plain or wrapped) is prepared by
Accelerate (one CPU, one GPU, ``accelerate launch`` / ``torchrun`` processes; bf16/fp16
autocast; gradient accumulation), the loss is the task loss (or REMUL's), plus any
auxiliary loss the model exposes through ``aux_loss()`` (the LPS entropy penalty).

Exact resume: the data order of epoch ``e`` is a permutation drawn from ``seed + e``
alone (:mod:`.state`); the step counter, epoch and position in the epoch are a
registered checkpoint object; ``accelerator.save_state`` stores model, optimizer,
scheduler and every process's RNG states (:mod:`.checkpoints`). Evaluation
(:mod:`.evaluation`) runs under its own seed, so it never moves the training RNG.

Run directory: ``config.yaml`` (resolved recipe), ``train.log``, ``metrics.csv`` (every
logged value, through an Accelerate tracker, :mod:`.tracking`; TensorBoard too when it
is installed), ``checkpoints/``, ``metrics.json`` (final metrics, with the trained
parameters ``params`` / ``base_params`` and the training compute ``flops_per_step`` and
``train_flops`` = FLOPs per step × steps, :meth:`Trainer.step_flops`), ``model.safetensors``
(the selected weights), and with ``train.select: best_val`` ``best.safetensors`` (the
weights of the best validation evaluation so far; its step is in the checkpointed state).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from ..data.task import Task
from ..errors import SymmetryError
from ..symmetry import call_model
from .build import build, build_task
from .checkpoints import Checkpoints, recipe_changes
from .config import ConfigError, Recipe
from .evaluation import Evaluator
from .methods import Built
from .optim import create_optimizer, create_scheduler
from .state import TrainState, make_loader
from .tracking import csv_tracker, flat_config

logger = logging.getLogger("symtrain.train")

# Main metrics that are better when higher (model selection); any other is a loss.
HIGHER_IS_BETTER = frozenset({"accuracy"})


class TrainingDiverged(SymmetryError):
    """The loss became NaN or infinite."""


def _aux_modules(model: nn.Module) -> list[nn.Module]:
    """Modules exposing an auxiliary loss of their last forward (``aux_loss()``)."""
    return [m for m in model.modules() if callable(getattr(m, "aux_loss", None))]


def _count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Trainer:
    """Train one recipe. ``Trainer(recipe, out_dir).fit()`` returns the final metrics.

    Args:
        recipe: a resolved :class:`~symtrain.train.config.Recipe`.
        out_dir: the run directory (default ``train.out_dir`` or ``runs/<name>``).
        resume: continue from the last complete checkpoint in ``out_dir`` (a fresh start
            if there is none).
        task: a prebuilt task (the data), to share it between runs.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False,
                 task: Task | None = None):
        self.recipe = recipe
        self.out = Path(out_dir or recipe.train.out_dir or Path("runs") / recipe.name)
        self.resume = resume
        self._task = task
        self.checkpoints = Checkpoints(self.out / "checkpoints", recipe.train.keep_checkpoints)
        self.evaluate = Evaluator(recipe)

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoints.folder

    def latest_checkpoint(self) -> Path | None:
        """The last complete checkpoint of this run, if any."""
        return self.checkpoints.latest()

    def _save(self, acc, state: TrainState) -> None:
        self.checkpoints.save(acc, state.step)

    def fit(self) -> dict:
        r, t = self.recipe, self.recipe.train
        task, built = self._build()
        self.task = task
        flops = self.step_flops(built, task)
        params = {"params": _count_parameters(built.model),
                  "base_params": _count_parameters(getattr(built.model, "base", built.model))}
        acc = self._start()
        model, criterion = built.model, built.criterion
        optimizer = create_optimizer(model if criterion is None else nn.ModuleList([model, criterion]), r)
        scheduler = create_scheduler(optimizer, r)
        micro, eval_batch = r.data.batch_size // t.grad_accum, r.data.eval_batch_size or r.data.batch_size
        loaders = [make_loader(data, micro if split == "train" else eval_batch, train=split == "train",
                               seed=t.seed, num_workers=r.data.num_workers)
                   for split, data in (("train", task.train), ("val", task.val), ("test", task.test))]
        model, optimizer, scheduler, *loaders = acc.prepare(model, optimizer, scheduler, *loaders)
        built = Built(model, built.augment, criterion.to(acc.device) if criterion is not None else None)
        state = self._restore(acc)
        self._params = [p for p in model.parameters() if p.requires_grad]
        aux = _aux_modules(acc.unwrap_model(model))
        logger.info("training %s: %s, %d steps, %d processes, device %s", r.name, r.symmetrization.method,
                    t.steps, acc.num_processes, acc.device)
        from tqdm.auto import tqdm

        bar = tqdm(total=t.steps, initial=state.step, disable=not (t.progress and acc.is_local_main_process),
                   desc=r.name, dynamic_ncols=True)
        model.train()
        window: dict[str, list[Tensor]] = {}
        self._last_eval: dict = {}
        start, paused = time.perf_counter(), 0.0
        while state.step < t.steps:
            loader = acc.skip_first_batches(loaders[0], state.batches) if state.batches else loaders[0]
            # Accelerate's loaders pass their own epoch counter to the sampler when iterated:
            # set it (a loader made by skip_first_batches starts from 0).
            loader.set_epoch(state.epoch)
            for x, y in loader:
                self._micro_step(acc, built, task, x, y, aux, optimizer, scheduler, state, window)
                if not acc.sync_gradients:
                    continue
                state.step += 1
                bar.update(1)
                pause = time.perf_counter()
                self._after_step(acc, model, task, loaders[1], scheduler, state, window, bar)
                paused += time.perf_counter() - pause
                if state.step >= t.steps:
                    break
            else:
                state.epoch, state.batches = state.epoch + 1, 0
        bar.close()
        elapsed = time.perf_counter() - start
        return self._finish(acc, model, task, loaders, state,
                            {"steps": state.step, "skipped_steps": state.skipped, "seconds": elapsed,
                             "train_loop_seconds": elapsed - paused, **params,
                             "flops_per_step": flops, "train_flops": flops * state.step})

    def step_flops(self, built: Built, task: Task) -> int:
        """FLOPs of one optimizer step (forward and backward of the real loss: augmentation,
        the K copies of averaging methods, REMUL's second forward, auxiliary losses), counted
        once on the first training examples (one global micro-batch, × ``grad_accum``) with
        :func:`~symtrain.scaling.flops.count_step_flops`. Runs under its own RNG state and
        restores the gradients, so training is unchanged. Training compute ``C`` is this
        × steps (``train_flops`` in ``metrics.json``)."""
        from ..scaling.flops import count_step_flops

        r = self.recipe
        micro = r.data.batch_size // r.train.grad_accum
        batch = task.train.__getitems__(list(range(min(micro, len(task.train)))))
        aux = _aux_modules(built.model)
        with torch.random.fork_rng(devices=[]):
            counted = count_step_flops(built.model, batch,
                                       lambda model, b: self._loss(model, built, task, *b, aux)[0])
        return counted.total * r.train.grad_accum

    # --- set-up ----------------------------------------------------------------------------
    def _build(self) -> tuple[Task, Built]:
        """Data, then (seeded) the model, once. Every recipe error is raised here, before
        anything is written."""
        from accelerate import PartialState
        from accelerate.utils import set_seed

        r, t = self.recipe, self.recipe.train
        task = self._task if self._task is not None else build_task(r)
        if self.checkpoints.exists() and not self.resume:
            raise ConfigError(f"train.out_dir: {self.out} already holds checkpoints; pass --resume to "
                              "continue that run or choose another --out")
        saved = self.out / "config.yaml"
        if self.resume and self.checkpoints.exists() and saved.is_file():
            changes = recipe_changes(yaml.safe_load(saved.read_text()) or {}, r.to_dict())
            if changes:
                raise ConfigError(f"{changes[0].split(':')[0]}: differs from the recipe the checkpoints in "
                                  f"{self.out} were trained with ({'; '.join(changes)}); resume with that "
                                  "recipe or choose another --out")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if r.data.batch_size // t.grad_accum % world:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} / grad_accum {t.grad_accum} is "
                              f"not divisible by the {world} processes")
        if len(task.train) < r.data.batch_size // t.grad_accum:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} is larger than the training set "
                              f"({len(task.train)} examples)")
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        # Initial weights depend on the seed (and the process) only.
        set_seed(t.seed + PartialState(cpu=t.cpu).process_index)
        task, _, built = build(r, task)
        return task, built

    def _start(self):
        """Run folder, Accelerator (with the CSV tracker) and the log file."""
        from accelerate import Accelerator, PartialState
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, is_tensorboard_available

        t = self.recipe.train
        if t.mixed_precision == "fp16" and not (torch.cuda.is_available() and not t.cpu):
            raise ConfigError("train.mixed_precision: fp16 needs a CUDA device; use bf16 or no")
        self.out.mkdir(parents=True, exist_ok=True)
        main = PartialState(cpu=t.cpu).is_main_process  # one process writes metrics.csv
        trackers = ([csv_tracker(self.out)] if main else []) + (["tensorboard"] if is_tensorboard_available() else [])
        acc = Accelerator(
            cpu=t.cpu, mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum,
            log_with=trackers, project_config=ProjectConfiguration(project_dir=str(self.out),
                                                                   logging_dir=str(self.out)),
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            step_scheduler_with_optimizer=True)
        if not acc.is_main_process:
            logger.setLevel(logging.WARNING)  # one process reports progress
        else:
            self._handler = logging.FileHandler(self.out / "train.log")
            self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(self._handler)
            logger.setLevel(logging.INFO)
        return acc

    def _restore(self, acc) -> TrainState:
        """The training state, from the last checkpoint when resuming; the resolved recipe
        and trackers are written, and ``metrics.csv`` cut back to the restored step."""
        r = self.recipe
        state = TrainState()
        acc.register_for_checkpointing(state)
        if acc.is_main_process:
            (self.out / "config.yaml").write_text(yaml.safe_dump(r.to_dict(), sort_keys=False))
        acc.init_trackers(r.name, config=flat_config(r.to_dict()))
        tracker = acc.get_tracker("csv", unwrap=True)
        latest = self.latest_checkpoint() if self.resume else None
        if latest is not None:
            acc.load_state(str(latest))
            logger.info("resumed from %s at step %d", latest, state.step)
        if acc.is_main_process and (latest is not None or getattr(tracker, "rows", None)):
            tracker.truncate(state.step)
        return state

    # --- one step --------------------------------------------------------------------------
    def _loss(self, model, built: Built, task: Task, x, y, aux: list[nn.Module]) -> tuple[Tensor, dict]:
        if built.augment is not None:
            x, y = built.augment(x, y)
        if built.criterion is not None:
            loss, logs = built.criterion(model, x, y)
            logs = {k: v for k, v in logs.items() if k in ("task_loss", "equivariance_loss")}
        else:
            loss = task.loss(call_model(model, x), y)
            logs = {"task_loss": loss.detach()}
        for m in aux:
            extra = m.aux_loss().to(loss.device, loss.dtype)
            loss = loss + extra
            logs["aux_loss"] = logs.get("aux_loss", 0.0) + extra.detach()
        return loss, logs

    def _micro_step(self, acc, built: Built, task: Task, x, y, aux, optimizer, scheduler,
                    state: TrainState, window: dict) -> None:
        """Forward and backward of one micro-batch; the optimizer steps when Accelerate
        has accumulated a full batch."""
        model = built.model
        with acc.accumulate(model):
            loss, logs = self._loss(model, built, task, x, y, aux)
            global_loss = acc.reduce(loss.detach().float(), reduction="mean")
            if not torch.isfinite(global_loss):
                latest = self.latest_checkpoint()
                raise TrainingDiverged(
                    f"the loss is {float(global_loss)} at step {state.step + 1} (epoch {state.epoch}, "
                    f"batch {state.batches}); no update was applied. Last good checkpoint: "
                    f"{latest if latest is not None else 'none yet'}. Lower optim.lr, set "
                    "optim.grad_clip, or check the data")
            acc.backward(loss)
            if acc.sync_gradients:
                self._check_and_clip(acc, model, state)
            optimizer.step()  # no-op for a skipped step: the gradients are gone
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        state.batches += 1
        window.setdefault("loss", []).append(global_loss)
        for k, v in logs.items():  # reduced over processes when logged
            window.setdefault(k, []).append(torch.as_tensor(v, device=acc.device).float())

    def _check_and_clip(self, acc, model, state: TrainState) -> None:
        """Stop (or skip the step, within ``optim.skip_nonfinite``) on NaN/inf gradients,
        then clip them to ``optim.grad_clip``. The norm is computed once for both."""
        from accelerate.utils import DistributedType

        r = self.recipe
        plain = acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
        if r.train.mixed_precision == "fp16" or not plain:
            # fp16 overflows are the grad scaler's business (it skips those steps); FSDP and
            # DeepSpeed shard the gradients: Accelerate clips them
            if r.optim.grad_clip:
                acc.clip_grad_norm_(model.parameters(), r.optim.grad_clip)
            return
        params = [p for p in self._params if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not torch.isfinite(norm):
            names = [n for n, p in acc.unwrap_model(model).named_parameters()
                     if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
            latest = self.latest_checkpoint()
            message = (f"non-finite gradients at step {state.step + 1} (epoch {state.epoch}, batch "
                       f"{state.batches}) in {len(names)} parameters, first {names[:3]}; no update was "
                       f"applied. Last good checkpoint: {latest if latest is not None else 'none yet'}")
            if state.skipped >= r.optim.skip_nonfinite:
                raise TrainingDiverged(f"{message} ({state.skipped} such steps skipped before; "
                                       "optim.skip_nonfinite)")
            state.skipped += 1
            logger.warning("skipped: %s", message)
            for p in params:
                p.grad = None  # the optimizer step then leaves the weights alone
        elif r.optim.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(params, r.optim.grad_clip, norm)

    def _after_step(self, acc, model, task: Task, val_loader, scheduler, state: TrainState,
                    window: dict, bar) -> None:
        """Log the window of losses, evaluate and checkpoint when their step comes."""
        t = self.recipe.train
        last = state.step == t.steps
        if state.step % t.log_every == 0 or last:
            values = {f"train/{k}": float(acc.reduce(torch.stack(v).mean(), "mean")) for k, v in window.items()}
            values["train/lr"] = scheduler.get_last_lr()[0]
            acc.log(values, step=state.step)
            bar.set_postfix(loss=f"{values['train/loss']:.4g}", **{
                k.split("/", 1)[1]: f"{v:.3g}" for k, v in self._last_eval.items()
                if k.endswith(task.main_metric) or k.endswith("equivariance_error")})
            window.clear()
        if state.step % t.eval_every == 0 or last:
            self._last_eval = self.evaluate(acc, model, task, val_loader, task.symmetry, "val")
            acc.log(self._last_eval, step=state.step)
            logger.info("step %d: %s", state.step, ", ".join(f"{k}={v:.4g}" for k, v in self._last_eval.items()))
            if t.select == "best_val":
                self._track_best(acc, model, task, state)
        if state.step % t.checkpoint_every == 0 or last:
            self._save(acc, state)

    # --- model selection -------------------------------------------------------------------
    @property
    def best_weights(self) -> Path:
        return self.out / "best.safetensors"

    def _track_best(self, acc, model, task: Task, state: TrainState) -> None:
        """After an evaluation: if the validation main metric is the best so far, record
        the step and write the weights to ``best.safetensors`` (atomically)."""
        value = self._last_eval[f"val/{task.main_metric}"]
        higher = task.main_metric in HIGHER_IS_BETTER
        best = state.best_value
        if best is not None and not (value > best if higher else value < best):
            return
        state.best_step, state.best_value = state.step, float(value)
        if acc.is_main_process:
            self._write_weights(acc.unwrap_model(model), self.best_weights)
        acc.wait_for_everyone()

    def _select(self, acc, model, state: TrainState) -> dict:
        """Load the selected weights (``train.select``); ``metrics.json`` entries saying which."""
        t = self.recipe.train
        if t.select == "last":
            return {"select": "last", "selected_step": state.step}
        from safetensors.torch import load_file

        acc.wait_for_everyone()
        if not self.best_weights.is_file():
            raise FileNotFoundError(f"train.select=best_val: {self.best_weights} (the weights of step "
                                    f"{state.best_step}) is missing from the run folder")
        acc.unwrap_model(model).load_state_dict(load_file(str(self.best_weights), device=str(acc.device)))
        logger.info("selected the weights of step %d (val %s)", state.best_step, state.best_value)
        return {"select": "best_val", "selected_step": state.best_step, "selected_val": state.best_value}

    def _test(self, acc, model, task: Task, loader) -> dict:
        """Test metrics averaged over ``train.test_trials`` draws (the equivariance error
        and Lie derivatives from the first); ``test/<metric>_std`` over the draws."""
        trials = self.recipe.train.test_trials
        samples = self.recipe.symmetrization.test_samples
        runs = [self.evaluate(acc, model, task, loader, task.symmetry, "test", samples, trial=i,
                              equivariance=i == 0) for i in range(trials)]
        out = dict(runs[0])
        for key in runs[-1]:
            values = torch.tensor([run[key] for run in runs], dtype=torch.float64)
            out[key] = float(values.mean())
            if trials > 1:
                out[f"{key}_std"] = float(values.std(unbiased=False))
        out["test_trials"] = trials
        return out

    # --- the end ---------------------------------------------------------------------------
    def _finish(self, acc, model, task: Task, loaders, state: TrainState, final: dict) -> dict:
        """Final validation and test metrics (test with ``symmetrization.test_samples``,
        averaged over ``train.test_trials`` draws) of the weights ``train.select`` picks,
        ``metrics.json`` and ``model.safetensors``. The symmetry measured is the data's,
        whatever the wrapper's group."""
        final.update(self._select(acc, model, state))
        final.update(self.evaluate(acc, model, task, loaders[1], task.symmetry, "val"))
        final.update(self._test(acc, model, task, loaders[2]))
        acc.log({k: v for k, v in final.items() if k.startswith("test/")}, step=state.step)
        if acc.is_main_process:
            (self.out / "metrics.json").write_text(json.dumps(final, indent=2))
            logger.info("final: %s", json.dumps(final))
            self._export_weights(acc.unwrap_model(model))
        acc.end_training()
        if acc.is_main_process and hasattr(self, "_handler"):
            logger.removeHandler(self._handler)
            self._handler.close()
        self.model = acc.unwrap_model(model)
        return final

    def _export_weights(self, model: nn.Module) -> None:
        """The trained model's weights as ``model.safetensors`` in the run folder, keyed like
        the model's ``state_dict`` (a plain timm model's file loads with timm's
        ``pretrained_cfg_overlay=dict(file=...)``, e.g. to fine-tune it elsewhere).
        Written to a temporary name and renamed."""
        self._write_weights(model, self.out / "model.safetensors")

    @staticmethod
    def _write_weights(model: nn.Module, path: Path) -> None:
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.tmp")
        state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp))
        os.replace(tmp, path)


def train(recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False) -> dict:
    """Train ``recipe`` and return its final metrics (see :class:`Trainer`)."""
    return Trainer(recipe, out_dir, resume).fit()
