"""What training a recipe costs: trainable parameters and FLOPs per optimizer step
(``metrics.json``: ``params``, ``base_params``, ``flops_per_step``; ``train_flops`` is
FLOPs per step × steps, the training compute ``C``)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..data.task import TensorData
from ..metrics.flops import count_step_flops
from .config import Recipe


def model_size(model: nn.Module) -> dict[str, int]:
    """``params``: trainable parameters of ``model``; ``base_params``: those of the model it
    wraps (its ``base``), or of ``model`` itself when it wraps none."""
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    return {"params": count(model), "base_params": count(getattr(model, "base", model))}


def step_flops(loss: Callable[[nn.Module, object, object], tuple[Tensor, dict]], model: nn.Module,
               data: TensorData, recipe: Recipe) -> int:
    """FLOPs of one optimizer step of ``recipe`` (forward and backward of the real loss:
    augmentation, the K copies of averaging methods, REMUL's second forward, auxiliary
    losses), counted once on the first examples of ``data`` (one global micro-batch,
    × ``train.grad_accum``) with :func:`~symtrain.metrics.flops.count_step_flops`.
    ``loss(model, x, y) -> (loss, logs)`` (a :class:`~.loss.TrainingLoss`). Runs under its
    own RNG state and restores the gradients, so training is unchanged."""
    micro = recipe.data.batch_size // recipe.train.grad_accum
    batch = data.__getitems__(list(range(min(micro, len(data)))))
    with torch.random.fork_rng(devices=[]):
        counted = count_step_flops(model, batch, lambda m, b: loss(m, *b)[0])
    return counted.total * recipe.train.grad_accum
