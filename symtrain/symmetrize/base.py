"""One symmetrization pipeline; the wrappers differ only in the distribution of group
elements they draw for each input.

For an input ``x`` a wrapper draws ``K`` elements ``g_1..g_K`` with weights ``w``
(from the Haar measure, a frame, a canonicalizer or a learned ``q(g|x)``) and returns

    Σ_k w_k · g_k · f(g_k⁻¹ · x)

with the ``K`` copies folded into the batch dimension, so the base model runs once on
a batch of ``B·K`` inputs. The result is equivariant whenever the element distribution
is: ``q(g | h·x) = q(h⁻¹ g | x)``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from ..groups.base import Element, GroupContext
from ..checks import check_samples  # noqa: F401  (re-exported)
from ..symmetry import Symmetry, call_model, reference_tensor  # noqa: F401  (re-exported)


class Symmetrizer(nn.Module):
    """Base class: ``base`` made equivariant for ``symmetry``.

    ``forward(*inputs)``: one input is acted on as a whole (a tensor, a dict for a
    keyword :class:`~symtrain.actions.Fields`, a PyG batch); several positional inputs
    form the tuple of a positional ``Fields``. Tuples are passed to ``base`` unpacked:
    ``base(pos, vel, charge)``.

    Attributes ``symmetry`` (what the module is equivariant to) and ``base`` are public,
    so checkers and metrics can read them.
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry):
        super().__init__()
        if not isinstance(symmetry, Symmetry):
            raise TypeError(f"symmetry must be a symtrain.Symmetry, got {type(symmetry).__name__}")
        self.base = base
        self.symmetry = symmetry

    @abstractmethod
    def elements(self, x: Any, context: GroupContext) -> tuple[Element, Tensor]:
        """Group elements ``[B·K]`` (b-major) and weights ``[B, K]`` for input ``x``."""

    def forward(self, *inputs: Any) -> Any:
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        self.symmetry.check_input(x)
        context = self.symmetry.context(x)
        g, weights = self.elements(x, context)
        return self.average(x, context, g, weights)

    def average(self, x: Any, context: GroupContext, g: Element, weights: Tensor,
                repeated: bool = False) -> Any:
        """``Σ_k w_k g_k·f(g_k⁻¹·x)`` for given elements and weights. ``repeated``: ``x``
        already holds the ``K`` copies of each input (b-major; ``context`` is still the
        un-repeated input's), e.g. because an interface network has seen them."""
        sym = self.symmetry
        k = weights.shape[1]
        context_k = context.repeat(k)
        xs = x if repeated else sym.input.repeat(x, k, context)
        xs = self.transform_input(g, xs, context_k)
        ys = call_model(self.base, xs)
        ys = self.transform_output(g, ys, context_k)
        return sym.output.mean(ys, weights, context)

    def transform_input(self, g: Element, xs: Any, context: GroupContext) -> Any:
        """``g⁻¹·xs`` on the repeated inputs. Subclasses may add a differentiable path
        (e.g. a straight-through soft permutation) without changing the values."""
        return self.symmetry.act_input(self.symmetry.group.inverse(g), xs, context, check=False)

    def transform_output(self, g: Element, ys: Any, context: GroupContext) -> Any:
        """``g·ys`` on the base model's outputs (see :meth:`transform_input`); the outputs
        are checked against the output action."""
        return self.symmetry.act_output(g, ys, context)

    def extra_repr(self) -> str:
        return f"symmetry={self.symmetry}"


def uniform_weights(batch: int, k: int, like: Tensor) -> Tensor:
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.full((batch, k), 1.0 / k, device=like.device, dtype=dtype)
