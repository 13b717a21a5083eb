"""Training compute, counted on the real training step.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of matrix products,
convolutions and attention kernels (``2·m·n·k`` for an ``[m, k] @ [k, n]`` product) as
they run, forward and backward; element-wise operations, reductions and optimiser
updates count 0. Counting a real step therefore includes whatever a method does inside
its loss: the K copies an averaging method runs, an interface network, extra loss terms.

For a linear layer ``[B, in] → [B, out]`` a step counts ``2·B·in·out`` forward, and in
backward ``2·B·in·out`` for the weight gradient plus ``2·B·in·out`` for the input gradient
when the input needs one (not for the data fed to the first layer): ``4·B·in·out`` for a
single layer on data, ``6·B·in·out`` for a layer deeper in a network.

Training compute of a run: ``C = flops_per_step × steps`` (:func:`training_compute`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step: ``forward`` (model and loss), ``backward``, their
    ``total``, and ``by_op`` (aten operator name → FLOPs, forward and backward)."""

    forward: int
    backward: int
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.forward + self.backward


def _by_op(counter: FlopCounterMode) -> dict[str, int]:
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs counted while ``fn()`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_step_flops(model: nn.Module, batch: Any, loss_fn: Callable[[nn.Module, Any], Tensor]) -> StepFlops:
    """FLOPs of one training step: ``loss_fn(model, batch)`` (a scalar) and its backward.

    ``loss_fn`` is the run's real loss, so the count covers everything the method does
    per step (e.g. the K forward copies of frame averaging). The parameters' ``.grad``
    are restored afterwards, so counting does not disturb a training run; the optimiser
    update is not run (its element-wise FLOPs would count 0 anyway).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with FlopCounterMode(display=False) as fwd:
            loss = loss_fn(model, batch)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar loss, got shape {tuple(loss.shape)}")
        with FlopCounterMode(display=False) as bwd:
            loss.backward()
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    ops = _by_op(fwd)
    for op, n in _by_op(bwd).items():
        ops[op] = ops.get(op, 0) + n
    return StepFlops(forward=int(fwd.get_total_flops()), backward=int(bwd.get_total_flops()), by_op=ops)


def training_compute(flops_per_step: int | StepFlops, steps: int) -> int:
    """Training compute ``C = FLOPs per step × steps`` (FLOPs)."""
    per_step = flops_per_step.total if isinstance(flops_per_step, StepFlops) else int(flops_per_step)
    return per_step * int(steps)
