"""The gradient guard: no optimizer step is taken on a NaN/inf loss or gradient.

A non-finite loss stops training; non-finite gradients skip the step while the
``optim.skip_nonfinite`` budget lasts, then stop it. The message names the step, the
parameters (or the overflowed norm) and the last good checkpoint. The gradients are
clipped to ``optim.grad_clip`` with the norm computed once for the check and the clip.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import SymmetryError
from .config import Recipe

if TYPE_CHECKING:
    from .checkpoints import Checkpoints
    from .state import TrainState

logger = logging.getLogger("symtrain.train")


class TrainingDiverged(SymmetryError):
    """The loss or the gradients became NaN or infinite."""


class GradientGuard:
    """Finite checks and clipping for the optimizer steps of ``recipe``; the number of
    steps skipped so far is its state (``state_dict``, checkpointed with the run).

    Args:
        recipe: reads ``optim.grad_clip``, ``optim.skip_nonfinite`` and ``train.mixed_precision``.
        checkpoints: the run's checkpoints, named in the messages as the last good one.
    """

    def __init__(self, recipe: Recipe, checkpoints: Checkpoints):
        self.clip = recipe.optim.grad_clip
        self.budget = recipe.optim.skip_nonfinite
        self.fp16 = recipe.train.mixed_precision == "fp16"
        self.checkpoints = checkpoints
        self.skipped = 0  # steps skipped for non-finite gradients

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.skipped = int(state["skipped"])

    def _last_good(self) -> str:
        latest = self.checkpoints.latest()
        return f"no update was applied. Last good checkpoint: {latest if latest is not None else 'none yet'}"

    def check_loss(self, acc, loss: Tensor, state: TrainState) -> Tensor:
        """The loss of this micro-batch, averaged over processes (a float scalar); raises
        :class:`TrainingDiverged` when it is not finite, before its backward pass."""
        global_loss = acc.reduce(loss.detach().float(), reduction="mean")
        if not torch.isfinite(global_loss):
            raise TrainingDiverged(
                f"the loss is {float(global_loss)} at step {state.step + 1} (epoch {state.epoch}, "
                f"batch {state.batches}); {self._last_good()}. Lower optim.lr, set optim.grad_clip, or check the data")
        return global_loss

    def check_gradients(self, acc, model: nn.Module, state: TrainState) -> None:
        """Before the optimizer step (gradients synchronised): stop, or skip the step within
        the budget by dropping the gradients, on NaN/inf gradients; else clip them."""
        from accelerate.utils import DistributedType

        plain = acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
        if self.fp16 or not plain:
            # fp16 overflows are the grad scaler's business (it skips those steps); FSDP and
            # DeepSpeed shard the gradients: Accelerate clips them
            if self.clip:
                acc.clip_grad_norm_(model.parameters(), self.clip)
            return
        params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if torch.isfinite(norm):
            if self.clip:
                torch.nn.utils.clip_grads_with_norm_(params, self.clip, norm)
            return
        message = f"{self._where(acc, model, state, norm)}; {self._last_good()}"
        if self.skipped >= self.budget:
            raise TrainingDiverged(f"{message} ({self.skipped} such steps skipped before; optim.skip_nonfinite)")
        self.skipped += 1
        logger.warning("skipped: %s", message)
        for p in params:
            p.grad = None  # the optimizer step then leaves the weights alone

    @staticmethod
    def _where(acc, model: nn.Module, state: TrainState, norm: Tensor) -> str:
        """The non-finite gradients' parameters, or the largest entry when only the norm overflowed."""
        named = [(n, p.grad) for n, p in acc.unwrap_model(model).named_parameters() if p.grad is not None]
        names = [n for n, g in named if not bool(torch.isfinite(g).all())]
        at = f"at step {state.step + 1} (epoch {state.epoch}, batch {state.batches})"
        if names:
            return f"non-finite gradients {at} in {len(names)} parameters: {', '.join(names[:5])}" + (
                ", ..." if len(names) > 5 else "")
        largest = max(named, key=lambda ng: float(ng[1].abs().max()))  # every gradient is finite: overflow
        return (f"non-finite gradient norm {at}: the norm overflowed to {float(norm)} although every "
                f"gradient is finite (largest entry {float(largest[1].abs().max()):.3g} in {largest[0]})")
