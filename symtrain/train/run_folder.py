"""The run folder of one training run: what may be written there, and what is.

``config.yaml`` (the resolved recipe), ``train.log``, ``metrics.csv`` (written by the CSV
tracker, :mod:`.tracking`), ``checkpoints/`` (:mod:`.checkpoints`), ``metrics.json`` and
the exported weights ``model.safetensors`` / ``best.safetensors``, written atomically.

A folder holding any of :data:`RUN_OUTPUTS` is a previous run's: it is refused unless the
run resumes it or overwrites it. A resume whose recipe changes what is trained is refused
unless the change is allowed (``--allow-changes``); an allowed change of the learning
rates or schedule, or a changed ``train.steps``, rebuilds the schedule at the restored step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml
from torch import nn

from .checkpoints import CheckpointError, Checkpoints, recipe_changes, split_changes
from .config import ConfigError, Recipe, with_defaults
from .optim import create_scheduler
from .state import TrainState
from .tracking import flat_config

logger = logging.getLogger("symtrain.train")

# What a run leaves in its folder: a folder holding any of these is a previous run's.
RUN_OUTPUTS = ("metrics.json", "model.safetensors", "metrics.csv", "checkpoints", "config.yaml", "train.log")
# Keys whose change on resume (allowed by --allow-changes) calls for the new lr schedule.
SCHEDULE_KEYS = ("optim.lr", "optim.warmup_steps", "optim.schedule", "optim.min_lr_ratio", "optim.param_groups")


def write_weights(model: nn.Module, path: Path) -> None:
    """``model``'s ``state_dict`` as a safetensors file, written to a temporary name and
    renamed (a kill never leaves a partial file under ``path``)."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    os.replace(tmp, path)


class RunFolder:
    """The folder ``path`` of a run of ``recipe``.

    Args:
        path: the run directory.
        recipe: the resolved recipe of this run.
        resume: continue the run whose checkpoints are here.
        overwrite: replace a previous run's outputs.
        allow_changes: dotted recipe keys (or sections) that may differ from the recipe
            the checkpoints were trained with.
    """

    def __init__(self, path: str | Path, recipe: Recipe, *, resume: bool = False, overwrite: bool = False,
                 allow_changes: tuple[str, ...] | list[str] = ()):
        self.path, self.recipe = Path(path), recipe
        self.resume, self.overwrite, self.allow_changes = resume, overwrite, tuple(allow_changes)
        self.checkpoints = Checkpoints(self.path / "checkpoints", recipe.train.keep_checkpoints)
        self.allowed: list[str] = []  # the allowed changes found by check()
        self.steps_changed = False

    @property
    def best_weights(self) -> Path:
        return self.path / "best.safetensors"

    def check(self) -> None:
        """Refuse a folder holding a previous run (unless resuming or overwriting) and a
        resume whose recipe changes what is trained (unless allowed). Writes nothing."""
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: continue the run in "
                              f"{self.path}, or replace it")
        if self.allow_changes and not self.resume:
            raise ConfigError("--allow-changes only applies with --resume")
        found = [name for name in RUN_OUTPUTS if (self.path / name).exists()]
        if found and not (self.resume or self.overwrite):
            raise ConfigError(f"train.out_dir: {self.path} holds a previous run ({', '.join(found)}); pass "
                              "--resume to continue it, --overwrite to replace it, or choose another --out")
        finished = [name for name in ("metrics.json", "model.safetensors") if name in found]
        if self.resume and finished and not self.checkpoints.exists():
            raise ConfigError(f"train.out_dir: {self.path} holds a finished run ({', '.join(finished)}) but no "
                              "checkpoint to resume from; pass --overwrite to replace it or choose another --out")
        saved = self.path / "config.yaml"
        if not (self.resume and self.checkpoints.exists() and saved.is_file()):
            return
        old, new = with_defaults(yaml.safe_load(saved.read_text()) or {}), self.recipe.to_dict()
        self.steps_changed = old.get("train", {}).get("steps") != self.recipe.train.steps
        refused, self.allowed = split_changes(recipe_changes(old, new), self.allow_changes, old, new)
        if refused:
            keys = [c.split(":")[0] for c in refused]
            raise ConfigError(f"{keys[0]}: differs from the recipe the checkpoints in {self.path} were trained "
                              f"with ({'; '.join(refused)}); resume with that recipe, pass --allow-changes "
                              f"{' '.join(keys)} to continue with the new values, or choose another --out")

    def prepare(self, shared) -> None:
        """Remove a previous run's outputs when overwriting (the main process, once every
        process has checked the folder) and create the folder. ``shared``: Accelerate's
        ``PartialState``."""
        shared.wait_for_everyone()  # every process checked the folder before any writes
        if shared.is_main_process and self.overwrite:
            for name in RUN_OUTPUTS:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        shared.wait_for_everyone()
        self.path.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def log_file(self, main: bool) -> Iterator[None]:
        """``train.log`` for the main process (other processes log warnings only); an error
        that leaves the block is written there before it propagates."""
        if not main:
            logger.setLevel(logging.WARNING)  # one process reports progress
            yield
            return
        handler = logging.FileHandler(self.path / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        except (Exception, KeyboardInterrupt) as err:
            logger.error("training stopped: %s: %s", type(err).__name__, err)
            raise
        finally:
            logger.removeHandler(handler)
            handler.close()

    def restore(self, acc, optimizer, scheduler, state: TrainState, *parts) -> None:
        """Register ``state`` and the other stateful ``parts`` (``state_dict`` /
        ``load_state_dict``) for checkpointing, write ``config.yaml`` and start the
        trackers; when resuming, load the last checkpoint (model, optimizer, scheduler, RNG
        states and the parts), rebuild the schedule if the recipe asks for it, and cut
        ``metrics.csv`` back to the restored step. A checkpoint that does not fit this run
        (another model, another set of parts) raises :class:`CheckpointError`."""
        r = self.recipe
        for part in (state, *parts):  # a checkpoint holds them in this order
            acc.register_for_checkpointing(part)
        if acc.is_main_process:
            (self.path / "config.yaml").write_text(yaml.safe_dump(r.to_dict(), sort_keys=False))
        acc.init_trackers(r.name, config=flat_config(r.to_dict()))
        tracker = acc.get_tracker("csv", unwrap=True)
        latest = self.checkpoints.latest() if self.resume else None
        if latest is not None:
            rates = [g["initial_lr"] for g in optimizer.param_groups]  # this recipe's, before loading
            self._check_parts(latest, (state, *parts))
            try:
                acc.load_state(str(latest))
            except Exception as err:  # torch, safetensors and pickle errors: name the checkpoint
                detail = next((l.strip() for l in str(err).splitlines() if "size mismatch" in l),
                              str(err).splitlines()[0][:300] if str(err) else type(err).__name__)
                raise CheckpointError(f"checkpoint {latest} cannot be restored into this run "
                                      f"({type(err).__name__}: {detail})") from None
            logger.info("resumed from %s at step %d", latest, state.step)
            if self.allowed:
                logger.info("changed on resume (--allow-changes): %s", "; ".join(self.allowed))
            if self.steps_changed or any(c.startswith(SCHEDULE_KEYS) for c in self.allowed):
                # the schedule's length is train.steps: the restored one would keep the old length
                logger.info("learning-rate schedule rebuilt for the new recipe at step %d", state.step)
                self.reschedule(optimizer, scheduler, rates, state.step)
        if acc.is_main_process and (latest is not None or getattr(tracker, "rows", None)):
            tracker.truncate(state.step)

    @staticmethod
    def _check_parts(checkpoint: Path, parts: tuple) -> None:
        """Refuse a checkpoint holding another number of state objects than ``parts`` (one
        written before the guard and the selection kept their own state held one)."""
        found = len(list(checkpoint.glob("custom_checkpoint_*.pkl")))
        if found != len(parts):
            names = ", ".join(type(p).__name__ for p in parts)
            raise CheckpointError(f"checkpoint {checkpoint} cannot be restored into this run (it holds {found} "
                                  f"training-state objects, this run saves {len(parts)}: {names}); it was written "
                                  "by another version of symtrain: resume it with that version, or pass "
                                  "--overwrite to start again")

    def reschedule(self, optimizer, scheduler, rates: list[float], step: int) -> None:
        """The recipe's learning rates ``rates`` (one per parameter group) and schedule at
        ``step`` (the checkpoint holds the old ones): a fresh schedule on the same
        optimizer, stepped ``step`` times."""
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = group["initial_lr"] = rate
        fresh = create_scheduler(getattr(optimizer, "optimizer", optimizer), self.recipe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(step):
                fresh.step()
        scheduler.scheduler.load_state_dict(fresh.state_dict())

    def write_results(self, metrics: dict, model: nn.Module) -> None:
        """``metrics.json`` and ``model.safetensors`` (the weights keyed like ``model``'s
        ``state_dict``: a plain timm model's file loads with timm's
        ``pretrained_cfg_overlay=dict(file=...)``, e.g. to fine-tune it elsewhere)."""
        (self.path / "metrics.json").write_text(json.dumps(metrics, indent=2))
        logger.info("final: %s", json.dumps(metrics))
        write_weights(model, self.path / "model.safetensors")
