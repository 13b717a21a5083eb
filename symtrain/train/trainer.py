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
import shutil
import time
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from ..data.task import Task
from ..errors import SymmetryError
from ..symmetry import call_model
from .build import build, build_task
from .checkpoints import CheckpointError, Checkpoints, recipe_changes, split_changes
from .config import ConfigError, Recipe, with_defaults
from .evaluation import Evaluator
from .methods import Built
from .optim import create_optimizer, create_scheduler
from .state import TrainState, make_loader
from .tracking import csv_tracker, flat_config

logger = logging.getLogger("symtrain.train")

# Main metrics that are better when higher (model selection); any other is a loss.
HIGHER_IS_BETTER = frozenset({"accuracy"})


class TrainingDiverged(SymmetryError):
    """The loss or the gradients became NaN or infinite."""


# What a run leaves in its folder: a folder holding any of these is a previous run's.
RUN_OUTPUTS = ("metrics.json", "model.safetensors", "metrics.csv", "checkpoints", "config.yaml", "train.log")
# Keys whose change on resume (allowed by --allow-changes) calls for the new lr schedule.
SCHEDULE_KEYS = ("optim.lr", "optim.warmup_steps", "optim.schedule", "optim.min_lr_ratio", "optim.param_groups")


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
        overwrite: replace a previous run's outputs in ``out_dir`` (otherwise a folder that
            holds any of :data:`RUN_OUTPUTS` is refused, unless resuming).
        allow_changes: dotted recipe keys (or sections, e.g. ``optim``) that may differ from
            the recipe the checkpoints were trained with when resuming; any other change of
            what is trained is refused. Allowed changes are logged in ``train.log``.

    Processes: under ``torchrun`` (``WORLD_SIZE`` > 1) without a GPU the processes train
    on CPU together (gloo), as with ``train.cpu=true``; they never run copies of the job.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False,
                 task: Task | None = None, *, overwrite: bool = False, allow_changes: tuple[str, ...] | list[str] = ()):
        self.recipe = recipe
        self.out = Path(out_dir or recipe.train.out_dir or Path("runs") / recipe.name)
        self.resume = resume
        self.overwrite = overwrite
        self.allow_changes = tuple(allow_changes)
        self._allowed: list[str] = []
        self._steps_changed = False
        self._task = task
        self._handler: logging.Handler | None = None
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
        """Train; an error that stops the run once it has started is also written to
        ``train.log``."""
        task, built = self._build()
        try:
            return self._fit(task, built)
        except (Exception, KeyboardInterrupt) as err:
            if self._handler is not None:
                logger.error("training stopped: %s: %s", type(err).__name__, err)
            raise
        finally:
            if self._handler is not None:
                logger.removeHandler(self._handler)
                self._handler.close()
                self._handler = None

    def _fit(self, task: Task, built: Built) -> dict:
        r, t = self.recipe, self.recipe.train
        self.task = task
        flops = self.step_flops(built, task)
        params = {"params": _count_parameters(built.model),
                  "base_params": _count_parameters(getattr(built.model, "base", built.model))}
        acc = self._start()
        model, criterion = built.model, built.criterion
        optimizer = create_optimizer(model if criterion is None else nn.ModuleList([model, criterion]), r)
        self._rates = [g["lr"] for g in optimizer.param_groups]  # before the schedule scales them
        scheduler = create_scheduler(optimizer, r)
        micro, eval_batch = r.data.batch_size // t.grad_accum, r.data.eval_batch_size or r.data.batch_size
        loaders = [make_loader(data, micro if split == "train" else eval_batch, train=split == "train",
                               seed=t.seed, num_workers=r.data.num_workers)
                   for split, data in (("train", task.train), ("val", task.val), ("test", task.test))]
        model, optimizer, scheduler, *loaders = acc.prepare(model, optimizer, scheduler, *loaders)
        built = Built(model, built.augment, criterion.to(acc.device) if criterion is not None else None)
        state = self._restore(acc, optimizer, scheduler)
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
        :func:`~symtrain.metrics.flops.count_step_flops`. Runs under its own RNG state and
        restores the gradients, so training is unchanged. Training compute ``C`` is this
        × steps (``train_flops`` in ``metrics.json``)."""
        from ..metrics.flops import count_step_flops

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
        self._check_run_folder()
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if r.data.batch_size // t.grad_accum % world:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} / grad_accum {t.grad_accum} is "
                              f"not divisible by the {world} processes")
        if len(task.train) < r.data.batch_size // t.grad_accum:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} is larger than the training set "
                              f"({len(task.train)} examples)")
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        self.cpu = t.cpu or (world > 1 and not torch.cuda.is_available())
        processes = PartialState(cpu=self.cpu).num_processes
        if processes != world:
            raise ConfigError(f"train.cpu: {world} processes were started (WORLD_SIZE) but Accelerate "
                              f"set up {processes}; each would run the whole job. Start them with "
                              "torchrun or accelerate launch, or run one process")
        # Initial weights depend on the seed (and the process) only.
        set_seed(t.seed + PartialState(cpu=self.cpu).process_index)
        task, _, built = build(r, task)
        return task, built

    def _check_run_folder(self) -> None:
        """Refuse a folder holding a previous run (unless resuming or overwriting) and a
        resume whose recipe changes what is trained (unless allowed). Writes nothing."""
        r = self.recipe
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: continue the run in "
                              f"{self.out}, or replace it")
        if self.allow_changes and not self.resume:
            raise ConfigError("--allow-changes only applies with --resume")
        found = [name for name in RUN_OUTPUTS if (self.out / name).exists()]
        if found and not (self.resume or self.overwrite):
            raise ConfigError(f"train.out_dir: {self.out} holds a previous run ({', '.join(found)}); pass "
                              "--resume to continue it, --overwrite to replace it, or choose another --out")
        finished = [name for name in ("metrics.json", "model.safetensors") if name in found]
        if self.resume and finished and not self.checkpoints.exists():
            raise ConfigError(f"train.out_dir: {self.out} holds a finished run ({', '.join(finished)}) but no "
                              "checkpoint to resume from; pass --overwrite to replace it or choose another --out")
        saved = self.out / "config.yaml"
        if not (self.resume and self.checkpoints.exists() and saved.is_file()):
            return
        old = with_defaults(yaml.safe_load(saved.read_text()) or {})
        self._steps_changed = old.get("train", {}).get("steps") != r.train.steps
        refused, self._allowed = split_changes(recipe_changes(old, r.to_dict()), self.allow_changes, old, r.to_dict())
        if refused:
            keys = [c.split(":")[0] for c in refused]
            raise ConfigError(f"{keys[0]}: differs from the recipe the checkpoints in {self.out} were trained "
                              f"with ({'; '.join(refused)}); resume with that recipe, pass --allow-changes "
                              f"{' '.join(keys)} to continue with the new values, or choose another --out")

    def _start(self):
        """Run folder, Accelerator (with the CSV tracker) and the log file."""
        from accelerate import Accelerator, PartialState
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, is_tensorboard_available

        t = self.recipe.train
        if t.mixed_precision == "fp16" and not (torch.cuda.is_available() and not self.cpu):
            raise ConfigError("train.mixed_precision: fp16 needs a CUDA device; use bf16 or no")
        shared = PartialState(cpu=self.cpu)
        shared.wait_for_everyone()  # every process checked the folder before any writes
        main = shared.is_main_process  # one process writes metrics.csv
        if main and self.overwrite:
            for name in RUN_OUTPUTS:
                target = self.out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        shared.wait_for_everyone()
        self.out.mkdir(parents=True, exist_ok=True)
        trackers = ([csv_tracker(self.out)] if main else []) + (["tensorboard"] if is_tensorboard_available() else [])
        acc = Accelerator(
            cpu=self.cpu, mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum,
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

    def _restore(self, acc, optimizer, scheduler) -> TrainState:
        """The training state, from the last checkpoint when resuming; the resolved recipe
        and trackers are written, and ``metrics.csv`` cut back to the restored step. A
        checkpoint that does not fit this run raises :class:`CheckpointError`."""
        r = self.recipe
        state = TrainState()
        acc.register_for_checkpointing(state)
        if acc.is_main_process:
            (self.out / "config.yaml").write_text(yaml.safe_dump(r.to_dict(), sort_keys=False))
        acc.init_trackers(r.name, config=flat_config(r.to_dict()))
        tracker = acc.get_tracker("csv", unwrap=True)
        latest = self.latest_checkpoint() if self.resume else None
        if latest is not None:
            try:
                acc.load_state(str(latest))
            except Exception as err:  # torch, safetensors and pickle errors: name the checkpoint
                detail = next((l.strip() for l in str(err).splitlines() if "size mismatch" in l),
                              str(err).splitlines()[0][:300] if str(err) else type(err).__name__)
                raise CheckpointError(f"checkpoint {latest} cannot be restored into this run "
                                      f"({type(err).__name__}: {detail})") from None
            logger.info("resumed from %s at step %d", latest, state.step)
            if self._allowed:
                logger.info("changed on resume (--allow-changes): %s", "; ".join(self._allowed))
            if self._steps_changed or any(c.startswith(SCHEDULE_KEYS) for c in self._allowed):
                # the schedule's length is train.steps: the restored one would keep the old length
                logger.info("learning-rate schedule rebuilt for the new recipe at step %d", state.step)
                self._reschedule(optimizer, scheduler, state.step)
        if acc.is_main_process and (latest is not None or getattr(tracker, "rows", None)):
            tracker.truncate(state.step)
        return state

    def _reschedule(self, optimizer, scheduler, step: int) -> None:
        """The new recipe's learning rates and schedule at ``step`` (the checkpoint holds
        the old ones): a fresh schedule on the same optimizer, stepped ``step`` times."""
        import warnings

        for group, rate in zip(optimizer.param_groups, self._rates):
            group["lr"] = group["initial_lr"] = rate
        fresh = create_scheduler(getattr(optimizer, "optimizer", optimizer), self.recipe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(step):
                fresh.step()
        scheduler.scheduler.load_state_dict(fresh.state_dict())

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
            named = [(n, p.grad) for n, p in acc.unwrap_model(model).named_parameters() if p.grad is not None]
            names = [n for n, g in named if not bool(torch.isfinite(g).all())]
            at = f"at step {state.step + 1} (epoch {state.epoch}, batch {state.batches})"
            if names:
                where = f"non-finite gradients {at} in {len(names)} parameters: {', '.join(names[:5])}" + (
                    ", ..." if len(names) > 5 else "")
            else:  # every gradient is finite, their norm is not: it overflowed
                largest = max(named, key=lambda ng: float(ng[1].abs().max()))
                where = (f"non-finite gradient norm {at}: the norm overflowed to {float(norm)} although every "
                         f"gradient is finite (largest entry {float(largest[1].abs().max()):.3g} in {largest[0]})")
            latest = self.latest_checkpoint()
            message = (f"{where}; no update was applied. Last good checkpoint: "
                       f"{latest if latest is not None else 'none yet'}")
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
