"""Evaluation of a (wrapped) model on a split: the task's metrics, its equivariance
error against the data's symmetry and, for continuous groups, its Lie derivatives."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from ..data.task import take_examples
from ..symmetry import Symmetry, call_model
from .config import Recipe

logger = logging.getLogger("symtrain.train")


class Evaluator:
    """Evaluates with the settings of ``recipe`` (``train.eval_batches``, ``train.seed``,
    ``symmetrization.equivariance_*`` and ``lie_derivative``)."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self._lie_failed = False
        self._lie_skipped = False

    @torch.no_grad()
    def __call__(self, acc, model: nn.Module, task, loader, symmetry: Symmetry, split: str,
                 samples: int | None = None, trial: int = 0, equivariance: bool = True) -> dict[str, float]:
        """``{"<split>/<metric>": value}``; ``samples`` sets the model's ``eval_samples``
        for this evaluation. Runs under its own seed (``torch.random.fork_rng``), so the
        training RNG does not move; ``trial`` picks another seed (another draw of the
        model's randomness). ``equivariance``: also measure the equivariance error. With
        ``train.monitor: loss``, ``<split>/loss`` is the task's loss (no auxiliary losses)
        averaged over the batches (as LPS's ``loss_main_epoch``)."""
        t = self.recipe.train
        raw = acc.unwrap_model(model)
        saved = getattr(raw, "eval_samples", None)
        if samples is not None:
            raw.eval_samples = samples
        model.eval()
        sums: dict[str, list[Tensor]] = {}
        stateful = task.split_metrics() if getattr(task, "split_metrics", None) is not None else {}
        first = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(t.seed + 12_345 + 7_919 * trial)
            for i, (x, y) in enumerate(loader):
                if t.eval_batches is not None and i >= t.eval_batches:
                    break
                if first is None:
                    first = x
                pred = call_model(model, x)
                if t.monitor == "loss":
                    loss = acc.reduce(task.loss(pred, y).detach().float(), reduction="mean")
                    sums.setdefault("loss", []).append(torch.stack([loss, torch.ones_like(loss)]))
                for name, (num, den) in task.metrics(pred, y).items():
                    num, den = acc.gather_for_metrics((num.float(), den.float()))
                    sums.setdefault(name, []).append(torch.stack([num.sum(), den.sum()]))
                if stateful:
                    every = acc.gather_for_metrics((pred, y))
                    for metric in stateful.values():
                        metric.update(*every)
            out = {f"{split}/{k}": float(sum(v)[0] / sum(v)[1].clamp_min(1e-12)) for k, v in sums.items()}
            out.update({f"{split}/{k}": float(m.compute()) for k, m in stateful.items()})
            if first is not None and equivariance:
                out.update(self.equivariance(raw, symmetry, first, split))
        if samples is not None:
            raw.eval_samples = saved
        model.train()
        return out

    def equivariance(self, model: nn.Module, symmetry: Symmetry, x: Any, split: str) -> dict[str, float]:
        """Equivariance error (mean and max) on the first ``equivariance_inputs`` inputs of
        ``x``, and Lie derivatives for continuous groups. A stochastic wrapper is checked
        with a fixed draw of its randomness when it offers one for this symmetry (a wrapper
        for E(3) measured against S_n × E(3) too, its draw moved with the whole group:
        :meth:`FixedDraw.moved_in <symtrain.symmetrize.FixedDraw.moved_in>`); when it
        does not, the error is a Monte-Carlo estimate. ``{split}/equivariance_error_exact`` says which: 1 for an
        exact measurement, 0 for a Monte-Carlo estimate."""
        from ..metrics import equivariance_error

        s = self.recipe.symmetrization
        x = take_examples(x, slice(0, s.equivariance_inputs))
        err = equivariance_error(model, symmetry, x, samples=s.equivariance_samples)
        out = {f"{split}/equivariance_error": err.mean, f"{split}/equivariance_error_max": err.max,
               f"{split}/equivariance_error_exact": float(err.exact)}
        if s.lie_derivative and not symmetry.group.is_finite:
            if getattr(model, "stochastic", False):
                # A stochastic wrapper's Lie derivative would be taken with its draw held
                # fixed while the input moves: not the wrapper's equivariance (which the
                # exact, fixed-draw error above measures), and misleadingly large.
                if not self._lie_skipped:
                    logger.info("no Lie derivative for a stochastic wrapper (its random draw would stay fixed "
                                "while the input moves); %s/equivariance_error is its exact check", split)
                    self._lie_skipped = True
            else:
                out.update(self.lie(model, symmetry, x, split))
        return out

    def lie(self, model: nn.Module, symmetry: Symmetry, x: Any, split: str) -> dict[str, float]:
        """Squared Lie derivative along each generator, keyed by its name
        (``{split}/lie/E3/rotate_xy``, ``{split}/lie/E3/translate_x``, … see
        :func:`~symtrain.lie.generators.generator_name`) and their mean
        (``{split}/lie_derivative``); nothing when forward-mode AD fails."""
        from ..lie import lie_derivatives

        continuous = [f for f in symmetry.group.factors if not f.is_finite]
        if len(continuous) == 1 and len(symmetry.group.factors) > 1:
            # Generators live in the continuous factor; act with it alone.
            symmetry = type(symmetry)(continuous[0], input=symmetry.input, output=symmetry.output)
        try:
            with torch.enable_grad():
                derivs = lie_derivatives(model, x, "all", symmetry=symmetry, norm="squared", share_primal=False)
        except Exception as err:  # noqa: BLE001 - a metric must not stop training
            if not self._lie_failed:
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                logger.info("no Lie derivative for this model (forward-mode AD failed: %s)", reason)
                self._lie_failed = True
            return {}
        out = {f"{split}/lie/{name}": float(v.float().mean()) for name, v in derivs.items()}
        if derivs:
            out[f"{split}/lie_derivative"] = sum(out.values()) / len(derivs)
        return out
