"""Relaxed equivariance through a multitask loss (REMUL; Elhag et al., arXiv 2410.17878).

Instead of building the symmetry into the model, penalise its violation:

    L = α · task_loss(f(x), y) + β · ℓ(f(g·x), target),   one random g per example,

with ``target = g·y`` (REMUL, needs labels) or ``target = g·f(x)`` (self-consistency,
for unlabeled data), and ``ℓ`` the L1 or L2 distance. ``α, β`` are constants or adapted
by :class:`~symtrain.losses.GradNorm`.

The paper's equivariance metrics, for ``M`` elements ``g_1..g_M`` per input:

    E  = mean_x ‖(1/M) Σ_i g_i·f(x) − (1/M) Σ_i f(g_i·x)‖
    E′ = mean_x (1/M) Σ_i ‖f(g_i·x) − g_i·f(x)‖

(norms over all output entries of one input; absolute, not relative). ``E ≤ E′``; with
``M = 1`` they coincide.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..domains import NON_NEGATIVE, POSITIVE_INT, check_args, check_samples
from ..registry import Registry
from ..symmetry import Probe, Symmetry, call_model
from ..tree import detach, flatten
from .gradnorm import GradNorm

DISTANCES: Registry[Tensor] = Registry("distance", hint="or pass a callable (pred, target) -> loss")
DISTANCES.register("l1", F.l1_loss)
DISTANCES.register("l2", F.mse_loss)


def structured_loss(fn: Callable[[Tensor, Tensor], Tensor], pred: Any, target: Any) -> Tensor:
    """``fn(pred, target)`` on tensors, summed over the fields of tuple/dict outputs
    (``target`` has the structure of ``pred``)."""
    if isinstance(pred, Tensor):
        return fn(pred, target)
    flat, spec = flatten(pred)
    for p in flat:
        if not isinstance(p, Tensor):
            raise TypeError(f"cannot compute a loss on outputs of type {type(p).__name__}")
    if not flat:
        raise TypeError(f"cannot compute a loss on outputs of type {type(pred).__name__}")
    return sum(fn(p, t) for p, t in zip(flat, spec.flatten_up_to(target)))


def remul_metrics(probe: Probe, f_gx: Any, g_fx: Any) -> dict[str, Tensor]:
    """REMUL's ``E`` and ``E′`` from the outputs ``f(g_i·x)`` and ``g_i·f(x)`` of the
    ``B·k`` transformed copies of a :class:`~symtrain.symmetry.Probe` (b-major)."""
    k = probe.k
    a = rearrange(probe.rows(f_gx).detach(), "(b k) d -> b k d", k=k)
    b = rearrange(probe.rows(g_fx).detach(), "(b k) d -> b k d", k=k)
    return {"E": (b.mean(1) - a.mean(1)).norm(dim=-1).mean(),
            "E_prime": (a - b).norm(dim=-1).mean()}


@torch.no_grad()
@check_args(samples=POSITIVE_INT)
def equivariance_metrics(model: nn.Module, symmetry: Symmetry, x: Any, *, samples: int = 8,
                         generator: torch.Generator | None = None) -> dict[str, float]:
    """REMUL's ``E`` and ``E′`` of ``model`` on a batch ``x`` with ``samples`` random
    elements per input (for validation logging; a stochastic wrapper is run with a fixed
    draw, see :meth:`Probe.outputs <symtrain.symmetry.Probe.outputs>`).

    Returns ``{"E": float, "E_prime": float}``.
    """
    probe = symmetry.probe(x, samples, generator, random_translations=True)
    f_gx, g_fx, _ = probe.outputs(model)
    return {k: float(v) for k, v in remul_metrics(probe, f_gx, g_fx).items()}


class EquivarianceLoss(nn.Module):
    """REMUL loss: a task loss plus a penalty on the model's equivariance violation.

    Args:
        symmetry: the group and its actions on the model's input and output (any
            foundation group, products such as S_n × E(3) and PyG graphs included).
        target: ``"label"`` compares ``f(g·x)`` with the transformed label ``g·y``
            (REMUL); ``"self"`` with the model's own ``g·f(x)`` (self-consistency; labels
            optional, used only for the task term).
        distance: ``"l2"`` (mean squared error), ``"l1"``, or a callable
            ``(pred, target) -> scalar`` for the equivariance term.
        task_loss: callable ``(pred, y) -> scalar`` (default: ``distance``), e.g.
            ``torch.nn.functional.cross_entropy`` for classification.
        alpha, beta: constant weights of the task and equivariance terms.
        weighting: a :class:`GradNorm` over ``[task, equivariance]`` replaces the
            constants (it needs labels: the task term must exist).
        samples: random elements per example (REMUL draws one); with more, the
            penalty is their mean and ``E`` differs from ``E′``.
        detach_target: with ``target="self"``, treat ``g·f(x)`` as a constant.
        generator: ``torch.Generator`` for the draws.

    ``loss, metrics = criterion(model, x, y)`` returns the scalar loss and a dict of
    detached scalars: ``loss``, ``task_loss``, ``equivariance_loss``, ``alpha``,
    ``beta``, and the paper's metrics ``E`` and ``E_prime`` (see the module docstring;
    computed from the same forward passes). Pass ``output=model(x)`` if you already
    have it, to save a forward pass.

    >>> import torch, symtrain as st
    >>> from symtrain.losses import EquivarianceLoss
    >>> sym = st.Symmetry("S_n", input=st.actions.Nodes(), output=st.actions.Nodes())
    >>> criterion = EquivarianceLoss(sym, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(4, 6, 2)
    >>> loss, logs = criterion(torch.nn.Linear(2, 2), x, 2 * x)  # per-node: equivariant
    >>> float(logs["E_prime"]) < 1e-6
    True
    """

    @check_args(alpha=NON_NEGATIVE, beta=NON_NEGATIVE, samples=POSITIVE_INT)
    def __init__(self, symmetry: Symmetry, *, target: str = "label",
                 distance: str | Callable[[Tensor, Tensor], Tensor] = "l2",
                 task_loss: Callable[[Any, Any], Tensor] | None = None, alpha: float = 1.0,
                 beta: float = 1.0, weighting: GradNorm | None = None, samples: int = 1,
                 detach_target: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(symmetry, Symmetry):
            raise TypeError(f"symmetry must be a symtrain.Symmetry, got {type(symmetry).__name__}")
        if target not in ("label", "self"):
            raise ValueError(f"target must be 'label' (g·y, REMUL) or 'self' (g·f(x), "
                             f"self-consistency), got {target!r}")
        if isinstance(distance, str):
            distance = DISTANCES.get(distance)
        samples = check_samples("samples", samples, optional=False)
        if weighting is not None and not isinstance(weighting, GradNorm):
            raise TypeError(f"weighting must be None (constant alpha, beta) or a GradNorm, "
                            f"got {type(weighting).__name__}")
        if weighting is not None and weighting.num_tasks != 2:
            raise ValueError("the GradNorm of an EquivarianceLoss weighs two losses: build it "
                             "with num_tasks=2")
        self.symmetry = symmetry
        self.target = target
        self.distance = distance
        self.task_loss = task_loss if task_loss is not None else distance
        self.alpha, self.beta = float(alpha), float(beta)
        self.weighting = weighting
        self.samples = samples
        self.detach_target = detach_target
        self.generator = generator

    def forward(self, model: nn.Module, x: Any, y: Any = None, *,
                output: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and metrics for one batch.

        Args:
            model: the model being trained (called on ``x`` and on ``B·samples``
                transformed copies of it, in one batch).
            x: inputs (whatever ``symmetry.input`` acts on).
            y: labels (whatever ``symmetry.output`` acts on); required for
                ``target="label"``.
            output: ``model(x)``, if already computed.
        """
        sym, k = self.symmetry, self.samples
        if y is None and self.target == "label":
            raise ValueError("target='label' (REMUL) needs labels y; for unlabeled data use "
                             "EquivarianceLoss(..., target='self')")
        if y is None and self.weighting is not None:
            raise ValueError("GradNorm weighs the task loss against the equivariance loss, "
                             "so it needs labels y")
        probe = sym.probe(x, k, self.generator, random_translations=True)
        fx = output if output is not None else call_model(model, x)
        f_gx, g_fx, _ = probe.outputs(model, fx, exact=False)  # the training path: plain calls
        if self.target == "label":
            target = probe.act_output(y)
        else:
            target = detach(g_fx) if self.detach_target else g_fx
        equiv = structured_loss(self.distance, f_gx, target)
        task = structured_loss(self.task_loss, fx, y) if y is not None else None

        if task is None:
            alpha, beta = 0.0, self.beta
            loss = beta * equiv
        elif self.weighting is not None:
            alpha, beta = (float(w) for w in self.weighting.weights.detach())  # before the update
            loss = self.weighting(torch.stack([task, equiv.to(task.dtype)]))
        else:
            alpha, beta = self.alpha, self.beta
            loss = alpha * task + beta * equiv
        metrics = {"loss": loss.detach(), "equivariance_loss": equiv.detach(),
                   "alpha": loss.new_tensor(alpha).detach(), "beta": loss.new_tensor(beta).detach()}
        if task is not None:
            metrics["task_loss"] = task.detach()
        metrics.update(remul_metrics(probe, f_gx, g_fx))
        return loss, metrics

    def extra_repr(self) -> str:
        weights = "gradnorm" if self.weighting is not None else f"alpha={self.alpha}, beta={self.beta}"
        return (f"symmetry={self.symmetry}, target={self.target!r}, {weights}, "
                f"samples={self.samples}")
