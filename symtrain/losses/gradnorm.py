"""GradNorm (Chen et al., ICML 2018): adaptive weights for a sum of task losses.

The weights ``w_i`` are tuned so that every task's gradient on a chosen shared layer
``W`` has a norm proportional to how far behind the task is:

    G_i = ‖∇_W (w_i L_i)‖,   r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0)),
    L_grad = Σ_i | G_i − mean_j(G_j) · r_i^α |        (the target is held constant)

``w`` takes one optimiser step on ``L_grad`` per training step and is then renormalised
to ``Σ w_i = T`` (the number of tasks). Tasks whose gradients dominate the shared layer,
or that train faster than the others, are down-weighted.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from ..domains import POSITIVE, Count, check_args


def _shared_tensors(shared: nn.Module | Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(shared, nn.Module):
        params = [p for p in shared.parameters() if p.requires_grad]
    elif isinstance(shared, Tensor):
        params = [shared]
    else:
        params = list(shared)
    if not params or not all(isinstance(p, Tensor) and p.requires_grad for p in params):
        raise ValueError("GradNorm needs the shared layer's trainable parameters: pass a module "
                         "(e.g. model.encoder[-1]), a parameter, or a list of parameters")
    return params


class GradNorm(nn.Module):
    """Adaptive loss weights by gradient normalisation.

    Args:
        shared: the shared layer ``W`` whose gradient norms are balanced: a module, a
            parameter or a list of parameters (usually the last layer before the
            outputs of the different tasks part ways).
        num_tasks: number of losses ``T``.
        alpha: asymmetry ``α``: 0 equalises gradient norms; larger values pull harder on
            tasks that lag behind (the paper uses 0.12–3; 1.5 by default).
        lr: learning rate of the weights' own Adam optimiser.
        weights: initial weights ``[T]`` (default all ones); renormalised to sum to ``T``.

    Call ``gradnorm(losses)`` with the stacked losses ``[T]`` (each depending on
    ``shared``) and backpropagate the returned ``Σ w_i L_i``. In training mode with
    gradients enabled the call also updates the weights (read them from ``.weights``)
    with its own optimiser: do not hand ``.weights`` to the model's optimiser.

    >>> import torch
    >>> from symtrain.losses import GradNorm
    >>> layer = torch.nn.Linear(3, 3)
    >>> gradnorm = GradNorm(layer)
    >>> h = layer(torch.randn(8, 3))
    >>> total = gradnorm(torch.stack([h.pow(2).mean(), 10 * h.abs().mean()]))
    >>> total.backward()
    >>> round(float(gradnorm.weights.detach().sum()), 4)
    2.0
    """

    @check_args(num_tasks=Count(2, what="losses to balance"), alpha=POSITIVE, lr=POSITIVE)
    def __init__(self, shared: nn.Module | Tensor | Iterable[Tensor], num_tasks: int = 2,
                 alpha: float = 1.5, lr: float = 0.025, weights: Tensor | None = None):
        super().__init__()
        if num_tasks < 2:
            raise ValueError(f"GradNorm balances two or more losses, got num_tasks={num_tasks}")
        self._shared = _shared_tensors(shared)  # a plain list: not registered as our own
        self.num_tasks = num_tasks
        self.alpha = alpha
        self.lr = lr
        init = torch.ones(num_tasks) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if init.shape != (num_tasks,) or bool((init <= 0).any()):
            raise ValueError(f"weights must be {num_tasks} positive numbers, got {init.tolist()}")
        device = self._shared[0].device
        self.weights = nn.Parameter((init * num_tasks / init.sum()).to(device))
        self.register_buffer("initial_losses", torch.zeros(num_tasks, device=device))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool, device=device))
        self.optimizer: torch.optim.Optimizer | None = None  # built at the first update

    def forward(self, losses: Tensor) -> Tensor:
        """``Σ_i w_i L_i`` with the current weights (constants for backpropagation)."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"GradNorm expects {self.num_tasks} stacked losses, got shape {tuple(losses.shape)}")
        weights = self.weights.detach().clone().to(losses.dtype)
        total = (weights * losses).sum()
        if self.training and torch.is_grad_enabled():
            self.update(losses)
        return total

    def gradient_norms(self, losses: Tensor) -> Tensor:
        """``[T]`` norms ``‖∇_W L_i‖`` of each (unweighted) loss on the shared layer."""
        norms = []
        for loss in losses:
            grads = torch.autograd.grad(loss, self._shared, retain_graph=True, allow_unused=True)
            squares = [g.pow(2).sum() for g in grads if g is not None]
            norms.append(torch.stack(squares).sum().sqrt() if squares else losses.new_zeros(()))
        return torch.stack(norms).detach()

    def update(self, losses: Tensor) -> None:
        """One GradNorm step on the weights for the current losses ``[T]``."""
        losses_now = losses.detach().to(self.weights.dtype)
        if not bool(self.started):
            self.initial_losses.copy_(losses_now.clamp_min(1e-12))
            self.started.fill_(True)
        norms = self.gradient_norms(losses).to(self.weights.dtype)
        ratio = losses_now / self.initial_losses
        rate = ratio / ratio.mean().clamp_min(1e-12)
        g = self.weights * norms
        target = (g.mean() * rate.pow(self.alpha)).detach()
        grad_loss = (g - target).abs().sum()
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam([self.weights], lr=self.lr)
        self.optimizer.zero_grad(set_to_none=True)
        (grad,) = torch.autograd.grad(grad_loss, [self.weights])
        self.weights.grad = grad
        self.optimizer.step()
        with torch.no_grad():
            self.weights.clamp_min_(1e-4)
            self.weights.mul_(self.num_tasks / self.weights.sum())

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, alpha={self.alpha}, lr={self.lr}"
