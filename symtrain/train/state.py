"""Training progress and data order, both functions of the step so that a resumed run
replays exactly: :class:`TrainState` (checkpointed) and :class:`EpochSampler`."""

from __future__ import annotations

import time
from typing import Iterator

import torch

from ..data.task import collate_batch


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of ``range(n)`` that depends only on ``seed`` and the epoch set by
    :meth:`set_epoch`: the data order is a function of the step, so resuming from a
    checkpoint replays it exactly, with any number of processes."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


class TrainState:
    """The training loop's progress, checkpointed with the run (``register_for_checkpointing``).
    The skipped steps and the best validation step are the gradient guard's and the model
    selection's own state (:mod:`.guard`, :mod:`.selection`).

    Besides the counters it adds up what the whole run cost over its pieces (a resumed run
    continues the sums from its checkpoint): ``flops`` (training FLOPs of the steps done,
    :meth:`advance`) and the wall time (:meth:`times`, ``paused``: time spent evaluating,
    logging and checkpointing). Work after the last checkpoint of a piece that was
    stopped is done again on resume and counted once."""

    def __init__(self):
        self.step = 0          # optimizer steps done
        self.epoch = 0
        self.batches = 0       # micro-batches consumed in the current epoch
        self.flops: float | None = 0  # None: restored from a checkpoint that did not count them
        self.paused = 0.0      # seconds of this piece outside the training loop proper
        self._start, self._before = time.perf_counter(), (0.0, 0.0)

    def advance(self, step_flops: float) -> None:
        """One optimizer step done, costing ``step_flops`` FLOPs (a checkpoint without the
        sum counts its steps at this cost)."""
        self.flops = (self.step * step_flops if self.flops is None else self.flops) + step_flops
        self.step += 1

    def start_clock(self) -> None:
        """Time this piece of the run from now (after restoring a checkpoint)."""
        self._start, self.paused = time.perf_counter(), 0.0

    def times(self) -> tuple[float, float]:
        """``(seconds, train_loop_seconds)`` of the whole run so far: the pieces before the
        checkpoint this one resumed from, plus this one."""
        elapsed = time.perf_counter() - self._start
        return self._before[0] + elapsed, self._before[1] + elapsed - self.paused

    def state_dict(self) -> dict:
        seconds, loop_seconds = self.times()
        return {"step": self.step, "epoch": self.epoch, "batches": self.batches, "flops": self.flops,
                "seconds": seconds, "train_loop_seconds": loop_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batches = int(state["step"]), int(state["epoch"]), int(state["batches"])
        self.flops = state.get("flops")  # absent in checkpoints of older versions
        self._before = (float(state.get("seconds", 0.0)), float(state.get("train_loop_seconds", 0.0)))


def make_loader(data, batch: int, *, train: bool, seed: int, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Training loaders draw the order from :class:`EpochSampler` and drop the last
    partial batch; evaluation loaders keep the order."""
    # Its own generator: a DataLoader draws a base seed for its workers at every
    # iteration, which would otherwise move the global RNG (and break exact resume).
    kw = dict(batch_size=batch, collate_fn=collate_batch, num_workers=num_workers,
              generator=torch.Generator().manual_seed(seed))
    if train:
        return torch.utils.data.DataLoader(data, sampler=EpochSampler(len(data), seed), drop_last=True, **kw)
    return torch.utils.data.DataLoader(data, shuffle=False, **kw)


def make_loaders(task, recipe) -> list[torch.utils.data.DataLoader]:
    """The train, val and test loaders of ``task`` (a :class:`~symtrain.data.task.Task`) for
    ``recipe``: training micro-batches of ``data.batch_size // train.grad_accum``,
    evaluation batches of ``data.eval_batch_size`` (default ``data.batch_size``)."""
    d, t = recipe.data, recipe.train
    micro, eval_batch = d.batch_size // t.grad_accum, d.eval_batch_size or d.batch_size
    return [make_loader(data, micro if split == "train" else eval_batch, train=split == "train",
                        seed=t.seed, num_workers=d.num_workers)
            for split, data in (("train", task.train), ("val", task.val), ("test", task.test))]
