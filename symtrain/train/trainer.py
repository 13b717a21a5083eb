"""The training loop, on Hugging Face Accelerate.

One loop for every symmetrization method: the model (plain or wrapped) is prepared by
Accelerate (one CPU, one GPU, ``accelerate launch`` / ``torchrun`` processes; bf16/fp16
autocast; gradient accumulation), the loss is the task loss (or REMUL's), plus any
auxiliary loss the model exposes through ``aux_loss()`` (:mod:`.loss`). :meth:`Trainer.fit`
reads like Accelerate's examples; the policies are components, each in its module:
the run folder (:mod:`.run_folder`: checks, overwrite, resume diff, log file, exported
weights), the gradient guard (:mod:`.guard`: finite checks, skip budget, clipping), model
selection (:mod:`.selection`), test trials (:mod:`.trials`) and the cost (:mod:`.cost`).

Exact resume: the data order of epoch ``e`` is a permutation drawn from ``seed + e``
alone (:mod:`.state`); the loop's counter (:class:`~.state.TrainState`: step, epoch and
position in the epoch), the guard and the selection are registered checkpoint objects;
``accelerator.save_state`` stores them with model, optimizer, scheduler and every
process's RNG states (:mod:`.checkpoints`). Evaluation (:mod:`.evaluation`) runs under
its own seed, so it never moves the training RNG.

Run directory: ``config.yaml`` (resolved recipe), ``train.log``, ``metrics.csv`` (every
logged value, through an Accelerate tracker, :mod:`.tracking`; TensorBoard too when it
is installed), ``checkpoints/``, ``metrics.json`` (final metrics, with the trained
parameters ``params`` / ``base_params`` and the training compute ``flops_per_step`` and
``train_flops`` = FLOPs per step × steps, :func:`~.cost.step_flops`), ``model.safetensors``
(the selected weights), and with ``train.select: best_val`` ``best.safetensors`` (the
weights of the best validation evaluation so far; its step is in the checkpointed state).
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..data.task import Task
from .build import build, build_task
from .config import ConfigError, Recipe
from .cost import model_size, step_flops
from .evaluation import Evaluator
from .guard import GradientGuard, TrainingDiverged
from .loss import TrainingLoss
from .methods import Built
from .optim import create_optimizer, create_scheduler
from .run_folder import RunFolder, run_dir
from .selection import ModelSelection
from .state import TrainState, make_loaders
from .tracking import csv_tracker
from .trials import average_trials

__all__ = ["Trainer", "TrainingDiverged", "train"]

logger = logging.getLogger("symtrain.train")


class Trainer:
    """Train one recipe. ``Trainer(recipe, out_dir).fit()`` returns the final metrics.

    Args:
        recipe: a resolved :class:`~symtrain.train.config.Recipe`.
        out_dir: the run directory (default ``train.out_dir`` or ``runs/<name>``).
        resume: continue from the last complete checkpoint in ``out_dir`` (from step 0 if
            the run there stopped before its first one; a folder holding no run is an
            error). Resuming a finished run with the same recipe changes nothing and
            returns its recorded metrics; ``model`` and ``task`` are then not set.
        task: a prebuilt task (the data), to share it between runs.
        overwrite: replace a previous run's outputs in ``out_dir`` (otherwise a folder that
            holds any of :data:`~.run_folder.RUN_OUTPUTS` is refused, unless resuming).
        allow_changes: dotted recipe keys (or sections, e.g. ``optim``) that may differ from
            the recipe the checkpoints were trained with when resuming; any other change of
            what is trained is refused. Allowed changes are logged in ``train.log``.

    After :meth:`fit`, ``task`` is the data and ``model`` the trained (unwrapped) model.

    Processes: under ``torchrun`` (``WORLD_SIZE`` > 1) without a GPU the processes train
    on CPU together (gloo), as with ``train.cpu=true``; they never run copies of the job.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False,
                 task: Task | None = None, *, overwrite: bool = False, allow_changes: tuple[str, ...] | list[str] = ()):
        self.recipe, self.task = recipe, task
        self.out = run_dir(recipe, out_dir)
        self.run = RunFolder(self.out, recipe, resume=resume, overwrite=overwrite, allow_changes=allow_changes)
        self.checkpoints = self.run.checkpoints
        self.evaluate = Evaluator(recipe)

    def fit(self) -> dict:
        """Train and return the final metrics; an error that stops the run once it has
        started is also written to ``train.log``."""
        if (recorded := self.run.finished()) is not None:
            return recorded  # a resumed run that is already finished: nothing changes
        r, t = self.recipe, self.recipe.train
        task, built = self._build()
        self.task, loss_fn = task, TrainingLoss(built, task)
        cost = {**model_size(built.model), "flops_per_step": step_flops(loss_fn, built.model, task.train, r)}
        acc = self._accelerator()
        with self.run.opened(acc.is_main_process):
            model, criterion = built.model, built.criterion
            optimizer = create_optimizer(model if criterion is None else nn.ModuleList([model, criterion]), r)
            scheduler = create_scheduler(optimizer, r)
            model, optimizer, scheduler, train_loader, val_loader, test_loader = acc.prepare(
                model, optimizer, scheduler, *make_loaders(task, r))
            if criterion is not None:
                criterion.to(acc.device)
            state, guard = TrainState(), GradientGuard(r, self.checkpoints)
            selection = ModelSelection(t.select, t.monitor or task.main_metric, self.run.best_weights, t.early_stop)
            # registers them for checkpointing; config.yaml, trackers, the last checkpoint when resuming
            self.run.restore(acc, optimizer, scheduler, state, guard, selection)
            logger.info("training %s: %s, %d steps, %d processes, device %s", r.name, r.symmetrization.method,
                        t.steps, acc.num_processes, acc.device)
            bar = _progress_bar(r, state.step, acc.is_local_main_process)
            window, last_eval = {}, {}
            state.start_clock()
            model.train()
            while state.step < t.steps:
                loader = acc.skip_first_batches(train_loader, state.batches) if state.batches else train_loader
                loader.set_epoch(state.epoch)  # Accelerate hands it to the sampler (a skipping loader starts at 0)
                for x, y in loader:
                    with acc.accumulate(model):
                        loss, logs = loss_fn(model, x, y)
                        logs = {"loss": guard.check_loss(acc, loss, state), **logs}
                        acc.backward(loss)
                        if acc.sync_gradients:
                            guard.check_gradients(acc, model, state)
                        optimizer.step()  # no-op for a skipped step: the gradients are gone
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    state.batches += 1
                    for k, v in logs.items():  # reduced over processes when logged
                        window.setdefault(k, []).append(torch.as_tensor(v, device=acc.device).float())
                    if not acc.sync_gradients:
                        continue
                    state.advance(cost["flops_per_step"])
                    bar.update(1)
                    pause, last = time.perf_counter(), state.step == t.steps
                    stop = False
                    if state.step % t.log_every == 0 or last:
                        logged = {f"train/{k}": float(acc.reduce(torch.stack(v).mean(), "mean"))
                                  for k, v in window.items()}
                        acc.log({**logged, "train/lr": scheduler.get_last_lr()[0]}, step=state.step)
                        bar.set_postfix(_postfix(logged, last_eval, task.main_metric))
                        window.clear()
                    if state.step % t.eval_every == 0 or last:
                        last_eval = self.evaluate(acc, model, task, val_loader, task.symmetry, "val")
                        acc.log(last_eval, step=state.step)
                        logger.info("step %d: %s", state.step, ", ".join(f"{k}={v:.4g}" for k, v in last_eval.items()))
                        selection.update(acc, model, last_eval, state.step)
                        stop = selection.should_stop and not last
                        if stop:
                            logger.info("early stopping at step %d: val %s has not improved for %d evaluations "
                                        "(best %.6g at step %d)", state.step, selection.metric,
                                        selection.since_best, selection.best_value, selection.best_step)
                    if state.step % t.checkpoint_every == 0 or last or stop:
                        self.checkpoints.save(acc, state.step)
                    state.paused += time.perf_counter() - pause
                    if last or stop:
                        break
                else:
                    state.epoch, state.batches = state.epoch + 1, 0
                    continue
                break  # the last step, or early stopping
            bar.close()
            seconds, loop_seconds = state.times()  # of the whole run, over its resumed pieces
            stopped = {"stopped_step": state.step} if state.step < t.steps else {}  # early stopping
            final = {**stopped, "steps": state.step, "skipped_steps": guard.skipped, "seconds": seconds,
                     "train_loop_seconds": loop_seconds, **cost, "train_flops": state.flops}
            # the weights train.select picks, measured against the data's symmetry (whatever the wrapper's group)
            final.update(selection.load(acc, model, state.step))
            final.update(self.evaluate(acc, model, task, val_loader, task.symmetry, "val"))
            final.update(average_trials(partial(self.evaluate, acc, model, task, test_loader, task.symmetry, "test",
                                                r.symmetrization.test_samples), t.test_trials))
            acc.log({k: v for k, v in final.items() if k.startswith("test/")}, step=state.step)
            if acc.is_main_process:
                self.run.write_results(final, acc.unwrap_model(model))  # metrics.json, model.safetensors
            acc.end_training()
        self.model = acc.unwrap_model(model)
        return final

    # --- set-up ----------------------------------------------------------------------------
    def _build(self) -> tuple[Task, Built]:
        """Data, then (seeded) the model, once. Every recipe error is raised here, before
        anything is written."""
        from accelerate import PartialState
        from accelerate.utils import set_seed

        r, t = self.recipe, self.recipe.train
        task = self.task if self.task is not None else build_task(r)
        self.run.check()
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

    def _accelerator(self):
        """The run folder (overwritten if asked) and the Accelerator, with the CSV tracker."""
        from accelerate import Accelerator, PartialState
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, is_tensorboard_available

        t = self.recipe.train
        if t.mixed_precision == "fp16" and not (torch.cuda.is_available() and not self.cpu):
            raise ConfigError("train.mixed_precision: fp16 needs a CUDA device; use bf16 or no")
        shared = PartialState(cpu=self.cpu)
        self.run.prepare(shared)  # takes the folder's lock, released when fit's run.opened() block ends
        try:
            trackers = ([csv_tracker(self.out)] if shared.is_main_process else []) + (
                ["tensorboard"] if is_tensorboard_available() else [])  # one process writes metrics.csv
            return Accelerator(
                cpu=self.cpu, mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum,
                log_with=trackers, project_config=ProjectConfiguration(project_dir=str(self.out),
                                                                       logging_dir=str(self.out)),
                dataloader_config=DataLoaderConfiguration(split_batches=True),
                step_scheduler_with_optimizer=True)
        except BaseException:
            self.run.lock.release()
            raise


def _progress_bar(recipe: Recipe, initial: int, shown: bool):
    from tqdm.auto import tqdm

    return tqdm(total=recipe.train.steps, initial=initial, disable=not (recipe.train.progress and shown),
                desc=recipe.name, dynamic_ncols=True)


def _postfix(logged: dict[str, float], last_eval: dict[str, float], main_metric: str) -> dict[str, str]:
    """The progress bar's numbers: the training loss, the last validation main metric and
    equivariance error."""
    return {"loss": f"{logged['train/loss']:.4g}", **{
        k.split("/", 1)[1]: f"{v:.3g}" for k, v in last_eval.items()
        if k.endswith(main_metric) or k.endswith("equivariance_error")}}


def train(recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False) -> dict:
    """Train ``recipe`` and return its final metrics (see :class:`Trainer`)."""
    return Trainer(recipe, out_dir, resume).fit()
