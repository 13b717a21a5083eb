"""Checkpoint bookkeeping: atomic saves, a ``latest.json`` pointer, the last few kept.

A checkpoint is ``accelerator.save_state`` written to ``.tmp-step-N`` and renamed to
``step-N``; then ``latest.json`` (replaced atomically) names it, with the history of
kept ones. A kill at any point leaves the last complete checkpoint named by the
pointer; the step is read from the saved training state, never from folder names.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import SymmetryError

logger = logging.getLogger("symtrain.train")


class Checkpoints:
    """The ``checkpoints/`` folder of a run, keeping the last ``keep`` checkpoints."""

    def __init__(self, folder: str | Path, keep: int):
        self.folder, self.keep = Path(folder), keep

    @property
    def pointer(self) -> Path:
        return self.folder / "latest.json"

    def exists(self) -> bool:
        """Whether any checkpoint was completed here."""
        return self.pointer.is_file()

    def latest(self) -> Path | None:
        """The last complete checkpoint, from the ``latest.json`` pointer."""
        if not self.pointer.is_file():
            return None
        path = self.folder / json.loads(self.pointer.read_text())["dir"]
        return path if path.is_dir() else None

    def save(self, acc, step: int) -> Path:
        """``acc.save_state`` as the checkpoint of ``step`` (collective: every process calls it)."""
        name = f"step-{step:08d}"  # a label for people; the step is read from the state
        final, tmp = self.folder / name, self.folder / f".tmp-{name}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self._point_to(name, step)
            logger.info("checkpoint %s (step %d)", final, step)
        acc.wait_for_everyone()
        return final

    def _point_to(self, name: str, step: int) -> None:
        history = json.loads(self.pointer.read_text())["history"] if self.pointer.is_file() else []
        history = [h for h in history if h != name] + [name]
        for old in history[:-self.keep]:
            shutil.rmtree(self.folder / old, ignore_errors=True)
        tmp = self.pointer.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"dir": name, "step": step, "history": history[-self.keep:]}))
        os.replace(tmp, self.pointer)


# What a resumed run may change: how long it runs and what it reports, not what it trains.
RESUMABLE = ("name", "description", "budgets", "train.budget", "train.steps", "train.log_every",
             "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints", "train.progress",
             "train.out_dir", "train.eval_batches", "train.threads", "train.test_trials", "data.num_workers",
             "data.eval_batch_size", "data.cache_dir", "data.path", "symmetrization.test_samples",
             "symmetrization.equivariance_samples", "symmetrization.equivariance_inputs",
             "symmetrization.lie_derivative")


def recipe_changes(saved: dict, now: dict) -> list[str]:
    """``key: old -> new`` for every setting (dotted key) that differs between the recipe a
    run was started with and the one resuming it, except :data:`RESUMABLE` ones."""
    from .tracking import flat_config

    old, new = flat_config(saved), flat_config(now)
    keys = [k for k in dict.fromkeys([*old, *new])
            if not any(k == r or k.startswith(r + ".") for r in RESUMABLE)]
    return [f"{k}: {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}" for k in keys if old.get(k) != new.get(k)]


class CheckpointError(SymmetryError):
    """A checkpoint of this run cannot be restored (unreadable, or made for another model)."""


def split_changes(changes: list[str], allowed: tuple[str, ...] | list[str], saved: dict,
                  now: dict) -> tuple[list[str], list[str]]:
    """``(refused, allowed)``: the changes (``key: old -> new``) not covered by ``allowed``
    (dotted keys or sections) and those covered. An allowed key that is no recipe key is
    a :class:`~.config.ConfigError`."""
    from .config import ConfigError
    from .tracking import flat_config

    keys = {*flat_config(saved), *flat_config(now)}
    for key in allowed:
        if not any(k == key or k.startswith(key + ".") for k in keys):
            raise ConfigError(f"--allow-changes {key}: no such recipe key")

    def covered(change: str) -> bool:
        key = change.split(":")[0]
        return any(key == a or key.startswith(a + ".") for a in allowed)

    return [c for c in changes if not covered(c)], [c for c in changes if covered(c)]
