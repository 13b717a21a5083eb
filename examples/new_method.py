"""A new symmetrization method in one file, trained from a recipe with ``symtrain train``.

``antithetic_averaging``: Monte-Carlo group averaging with antithetic pairs. It draws
``K`` Haar-random elements ``g_k`` per input and averages ``g·f(g⁻¹·x)`` over both
``g_k`` and ``g_k⁻¹`` (the Haar measure is invariant under inversion, so each half is
an unbiased estimate of the group average, and the pair often cancels part of the
Monte-Carlo noise). Registering the class is all it takes: its constructor's keyword
arguments are the options a recipe may set under ``symmetrization``.

    symtrain train nbody_ga --import examples/new_method.py --budget smoke \\
        --set symmetrization.method=antithetic_averaging

or ``python examples/new_method.py`` (the same run, at the smoke budget).
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from symtrain import Symmetry
from symtrain.symmetrize import Symmetrizer, register_symmetrizer
from symtrain.symmetrize.base import check_samples, uniform_weights
from symtrain.symmetry import reference_tensor
from symtrain.tree import tree_map


@register_symmetrizer("antithetic_averaging")
class AntitheticAveraging(Symmetrizer):
    """``½ Σ_k w_k [g_k·f(g_k⁻¹·x) + g_k⁻¹·f(g_k·x)]`` over ``K`` Haar-random ``g_k``.

    Args:
        samples: ``K`` pairs per input in training (the base model runs on ``2·B·K``
            inputs); eval_samples: ``K`` in eval mode (default ``samples``).
        generator: optional ``torch.Generator`` for the draws.
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry, samples: int = 2,
                 eval_samples: int | None = None, generator: torch.Generator | None = None):
        super().__init__(base, symmetry)
        self.samples = check_samples("samples", samples, optional=False)
        self.eval_samples = check_samples("eval_samples", eval_samples)
        self.generator = generator

    def weighted_elements(self, x, context):
        ref = reference_tensor(x)
        k = self.eval_samples if not self.training and self.eval_samples is not None else self.samples
        g = self.symmetry.sample(context, k, self.generator, device=ref.device, dtype=ref.dtype)
        return g, uniform_weights(context.batch_size, k, ref)

    def forward(self, *inputs):
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        self.symmetry.check_input(x)
        context = self.symmetry.context(x)
        g, weights = self.weighted_elements(x, context)
        first = self.average(x, context, g, weights)
        second = self.average(x, context, self.symmetry.group.inverse(g), weights)
        return tree_map(lambda a, b: (a + b) / 2, first, second)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, samples={self.samples}, eval_samples={self.eval_samples}"


def main(argv: list[str] | None = None) -> int:
    """``symtrain train nbody_ga --import <this file> --set symmetrization.method=antithetic_averaging``."""
    from symtrain.cli import main as symtrain

    return symtrain(["train", "nbody_ga", "--import", __file__, "--budget", "smoke",
                     "--set", "symmetrization.method=antithetic_averaging", *(argv or [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
