"""The loss of one training step: augmentation, the task loss (or the method's criterion,
e.g. REMUL's) and the auxiliary losses the model exposes (``aux_loss()``: the LPS entropy
penalty)."""

from __future__ import annotations

from torch import Tensor, nn

from ..data.task import Task
from ..symmetry import call_model
from .methods import Built


def aux_modules(model: nn.Module) -> list[nn.Module]:
    """Modules exposing an auxiliary loss of their last forward (``aux_loss()``)."""
    return [m for m in model.modules() if callable(getattr(m, "aux_loss", None))]


class TrainingLoss:
    """``loss(model, x, y) -> (loss, logs)`` for the method ``built`` on ``task``: the
    scalar to back-propagate, and its parts (``task_loss``, ``equivariance_loss``,
    ``aux_loss``; detached scalars) to log. ``model`` is ``built.model`` or its prepared
    (wrapped) version."""

    def __init__(self, built: Built, task: Task):
        self.augment, self.criterion, self.task = built.augment, built.criterion, task
        self.aux = aux_modules(built.model)

    def __call__(self, model: nn.Module, x, y) -> tuple[Tensor, dict[str, Tensor]]:
        if self.augment is not None:
            x, y = self.augment(x, y)
        if self.criterion is not None:
            loss, logs = self.criterion(model, x, y)
            logs = {k: v for k, v in logs.items() if k in ("task_loss", "equivariance_loss")}
        else:
            loss = self.task.loss(call_model(model, x), y)
            logs = {"task_loss": loss.detach()}
        for m in self.aux:
            extra = m.aux_loss().to(loss.device, loss.dtype)
            loss = loss + extra
            logs["aux_loss"] = logs.get("aux_loss", 0.0) + extra.detach()
        return loss, logs
