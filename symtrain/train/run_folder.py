"""The run folder of one training run: what may be written there, and what is.

``config.yaml`` (the resolved recipe), ``train.log``, ``metrics.csv`` (written by the CSV
tracker, :mod:`.tracking`), ``checkpoints/`` (:mod:`.checkpoints`), ``metrics.json`` and
the exported weights ``model.safetensors`` / ``best.safetensors``, written atomically.

A folder holding any of :data:`RUN_OUTPUTS` is a previous run's: it is refused unless the
run resumes it or overwrites it; ``--resume`` of a folder that holds no run is refused
too (it would silently start a fresh one). A path that is a file, or under a file, or
where nothing can be written is refused (:func:`symtrain.paths.output_folder`). One
process at a time works in the folder (:class:`symtrain.lock.FolderLock`, taken by
:meth:`RunFolder.prepare`; a second one gets :class:`~symtrain.lock.FolderInUseError`).

Resume. A resume whose recipe changes what is trained is refused unless the change is
allowed (``--allow-changes``); :func:`recorded_recipe` is the recipe a run recorded
(``config.yaml``), which ``symtrain train --resume`` continues with. Records describe the
whole run: ``metrics.json``'s wall time and FLOPs add up the pieces
(:class:`~.state.TrainState`) and ``metrics.csv`` is cut back to the checkpoint, so no row
appears twice. Resuming a finished run with the same recipe changes nothing (not one
byte) and logs so (:meth:`RunFolder.finished`).

A changed ``train.steps`` (extending a finished run, or shortening one), or an allowed
change of the learning rates or schedule, rebuilds the schedule: the rates from the
restored step on are those of a run of the new recipe, as if it had been asked for from
the start (for a cosine extended from 1000 to 2000 steps, the rate at step 1000 goes from
its floor back up to the middle of the longer cosine and decays to the floor at 2000; it
does not restart a warm-up). ``train.log`` says so, with the rate before and after.
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

from ..errors import SymmetryError
from ..lock import FolderLock
from ..paths import output_folder
from ..records import json_text, read_metrics
from .checkpoints import CheckpointError, Checkpoints, recipe_changes, split_changes
from .config import ConfigError, Recipe, resolve_recorded, with_defaults
from .optim import create_scheduler
from .state import TrainState
from .tracking import flat_config

logger = logging.getLogger("symtrain.train")

# What a run leaves in its folder: a folder holding any of these is a previous run's.
RUN_OUTPUTS = ("metrics.json", "model.safetensors", "metrics.csv", "checkpoints", "config.yaml", "train.log")
# Keys whose change on resume (allowed by --allow-changes) calls for the new lr schedule.
SCHEDULE_KEYS = ("optim.lr", "optim.warmup_steps", "optim.schedule", "optim.min_lr_ratio", "optim.param_groups")
# Keys that change nothing a finished run recorded: resuming it with only these changed is a no-op.
NO_EFFECT_KEYS = ("train.progress", "train.out_dir", "train.threads", "data.num_workers", "data.cache_dir",
                  "train.budget")


def holds_run(path: str | Path) -> bool:
    """Whether the folder ``path`` holds a run (any of :data:`RUN_OUTPUTS`)."""
    return any((Path(path) / name).exists() for name in RUN_OUTPUTS)


def run_dir(recipe: Recipe, out_dir: str | Path | None = None) -> Path:
    """The run folder of ``recipe``: ``out_dir``, else ``train.out_dir``, else ``runs/<name>``."""
    return Path(out_dir or recipe.train.out_dir or Path("runs") / recipe.name)


def recorded_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                    budget: str | None = None) -> Recipe | None:
    """The recipe the run in ``path`` recorded (its ``config.yaml``, presets already
    applied) with ``overrides`` (``key=value``) on top, which a resume continues with, so
    a run started with ``--budget smoke`` (or ``--set``) resumes as it was started. None
    when ``path`` holds no ``config.yaml``, or when ``budget`` (or a ``train.budget``
    override) names another preset than the recorded one: the recipe file is then resolved
    with that preset, and the resume refuses what it changes unless allowed."""
    saved = Path(path) / "config.yaml"
    if not saved.is_file():
        return None
    data = yaml.safe_load(saved.read_text()) or {}
    asked = [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].strip() == "train.budget"]
    asked += [budget] if budget is not None else []
    if any(b != data.get("train", {}).get("budget") for b in asked):
        return None
    recipe = resolve_recorded(data, list(overrides))
    logger.info("resuming with the recipe recorded in %s%s", saved,
                f" and --set {' '.join(overrides)}" if overrides else "")
    return recipe


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
        self.lock = FolderLock(self.path, "run folder")
        self.allowed: list[str] = []  # the allowed changes found by check()
        self.steps_changed = False
        self.effective: list[str] = []  # keys that differ from config.yaml and change the outputs

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
        try:
            output_folder(self.path, "train.out_dir")
        except SymmetryError as err:
            raise ConfigError(str(err)) from None
        found = [name for name in RUN_OUTPUTS if (self.path / name).exists()]
        if self.resume and not found:
            raise ConfigError(f"--resume: {self.path} holds no run to resume (none of {', '.join(RUN_OUTPUTS)}); "
                              "check --out, or drop --resume to start a new run there")
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
        self.effective = [k for k in dict.fromkeys([*flat_config(old), *flat_config(new)])
                          if flat_config(old).get(k) != flat_config(new).get(k) and k not in NO_EFFECT_KEYS]
        refused, self.allowed = split_changes(recipe_changes(old, new), self.allow_changes, old, new)
        if refused:
            keys = [c.split(":")[0] for c in refused]
            raise ConfigError(f"{keys[0]}: differs from the recipe the checkpoints in {self.path} were trained "
                              f"with ({'; '.join(refused)}); resume with that recipe, pass --allow-changes "
                              f"{' '.join(keys)} to continue with the new values, or choose another --out")

    def finished(self) -> dict | None:
        """When resuming a run that reached ``train.steps`` with the same recipe (keys of
        :data:`NO_EFFECT_KEYS` aside): its recorded ``metrics.json``, after logging that
        there is nothing to do; the folder is left as it is, byte for byte. Otherwise None.
        Checks the folder first (:meth:`check`)."""
        self.check()
        pointer, metrics = self.checkpoints.pointer, self.path / "metrics.json"
        if not (self.resume and pointer.is_file() and metrics.is_file()) or self.effective:
            return None
        step = json.loads(pointer.read_text()).get("step")
        if step != self.recipe.train.steps:
            return None
        logger.info("%s holds a finished run (step %d of %d, same recipe): nothing to do; its records are "
                    "unchanged. To train longer, resume with --set train.steps=N", self.path, step, step)
        return read_metrics(metrics)

    def prepare(self, shared) -> None:
        """Take the folder's lock, check the folder again under it (another process may
        have written there since :meth:`check`), remove a previous run's outputs when
        overwriting (the main process, once every process has checked the folder) and
        create the folder. ``shared``: Accelerate's ``PartialState``. The lock is released
        when :meth:`opened` ends (or by ``self.lock.release()``)."""
        shared.wait_for_everyone()  # every process checked the folder before any writes
        error = None
        if shared.is_main_process:
            try:
                self.lock.acquire()
                self.check()
            except SymmetryError as err:
                self.lock.release()
                error = err
        if shared.num_processes > 1:  # every process stops, not only the main one
            from accelerate.utils import broadcast_object_list

            error = broadcast_object_list([error])[0]
        if error is not None:
            raise error
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
    def opened(self, main: bool) -> Iterator[None]:
        """The run in progress: ``train.log`` for the main process (other processes log
        warnings only; an error that leaves the block is written there before it
        propagates), and the folder's lock, released when the block ends."""
        if not main:
            logger.setLevel(logging.WARNING)  # one process reports progress
            try:
                yield
            finally:
                self.lock.release()
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
            self.lock.release()

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
                detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line),
                              str(err).splitlines()[0][:300] if str(err) else type(err).__name__)
                raise CheckpointError(f"checkpoint {latest} cannot be restored into this run "
                                      f"({type(err).__name__}: {detail})") from None
            logger.info("resumed from %s at step %d", latest, state.step)
            if self.allowed:
                logger.info("changed on resume (--allow-changes): %s", "; ".join(self.allowed))
            if self.steps_changed or any(c.startswith(SCHEDULE_KEYS) for c in self.allowed):
                # the schedule's length is train.steps: the restored one would keep the old length
                before = scheduler.get_last_lr()[0]
                self.reschedule(optimizer, scheduler, rates, state.step)
                logger.info("learning-rate schedule rebuilt for the new recipe (%s, %d steps) at step %d: the rate "
                            "goes from %.4g to %.4g, as in a run of the new recipe from the start",
                            r.optim.schedule, r.train.steps, state.step, before, scheduler.get_last_lr()[0])
        elif self.resume:
            logger.info("no complete checkpoint in %s: the run starts again from step 0", self.checkpoints.folder)
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
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
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
        (self.path / "metrics.json").write_text(json_text(metrics, indent=2))
        logger.info("final: %s", json_text(metrics))
        write_weights(model, self.path / "model.safetensors")
