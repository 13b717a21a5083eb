"""Training progress and data order, both functions of the step so that a resumed run
replays exactly: :class:`TrainState` (checkpointed) and :class:`EpochSampler`."""

from __future__ import annotations

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
    """Progress, checkpointed with the run (``register_for_checkpointing``)."""

    def __init__(self):
        self.step = 0          # optimizer steps done
        self.epoch = 0
        self.batches = 0       # micro-batches consumed in the current epoch
        self.skipped = 0       # steps skipped for non-finite gradients
        self.best_step = 0     # step of the best validation metric so far (0: none yet)
        self.best_value: float | None = None

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches": self.batches, "skipped": self.skipped,
                "best_step": self.best_step, "best_value": self.best_value}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batches = int(state["step"]), int(state["epoch"]), int(state["batches"])
        self.skipped = int(state.get("skipped", 0))
        self.best_step, self.best_value = int(state.get("best_step", 0)), state.get("best_value")


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
