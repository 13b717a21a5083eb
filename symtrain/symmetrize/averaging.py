from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..domains import OPTIONAL_COUNT, check_args
from ..errors import UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, element_batch_size, element_repeat, element_take
from ..symmetry import Symmetry
from ..tree import reference_tensor
from .base import FixedDraw, Symmetrizer, check_samples, draw_rows, uniform_weights
from .registry import register_symmetrizer


@register_symmetrizer("group_averaging", "ga")
class GroupAveraging(Symmetrizer):
    """Average ``g·f(g⁻¹·x)`` over the group.

    - Finite group, ``samples=None``: exact average over all ``|G|`` elements.
    - ``samples=K``: Monte-Carlo average over ``K`` Haar-random elements per input
      (required for infinite groups). Equivariant in distribution; the error falls
      like ``1/√K``. ``eval_samples`` (default: ``samples``) is used in eval mode.
    - E(d)/SE(d): the translation is fixed by centring (see :mod:`symtrain.groups.euclidean`),
      the rotation part is averaged.

    Args:
        base: any module; called on a batch of ``B·K`` transformed inputs.
        symmetry: the group and its actions on the input and output of ``base``.
        generator: optional ``torch.Generator`` for the Monte-Carlo draws.
        chunk_size: at most this many of the ``K`` copies per input through ``base`` at
            once (bounded memory for large ``K``; same result).
    """

    @check_args(samples=OPTIONAL_COUNT, eval_samples=OPTIONAL_COUNT, chunk_size=OPTIONAL_COUNT)
    def __init__(self, base: nn.Module, symmetry: Symmetry, samples: int | None = None,
                 eval_samples: int | None = None, generator=None, chunk_size: int | None = None):
        super().__init__(base, symmetry, chunk_size)
        self.samples = check_samples("samples", samples)
        self.eval_samples = check_samples("eval_samples", eval_samples)
        self.generator = generator
        reason = self.supports(symmetry.group, samples=samples)
        if reason is not None:
            raise UnsupportedGroupError(reason)

    @classmethod
    def supports(cls, group: Group, samples: int | None = None, **options) -> str | None:
        """Exact averaging (``samples=None``) needs a finite group."""
        if samples is None and not group.is_finite:
            return (f"{group} is infinite: exact averaging is impossible; pass samples=K for a "
                    "Monte-Carlo average (eval_samples alone leaves training mode without a sample count)")
        return None

    @property
    def num_samples(self) -> int | None:
        if not self.training and self.eval_samples is not None:
            return self.eval_samples
        return self.samples

    def forward(self, *inputs):
        if self.num_samples is not None:
            return super().forward(*inputs)
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        sym = self.symmetry
        sym.check_input(x)
        if sym.input.batch_size(x) == 0:
            return self.empty_batch_output(x)
        context = sym.context(x)
        ref = reference_tensor(x)
        elems = sym.group.elements(context=context, device=ref.device, dtype=ref.dtype)
        k = element_batch_size(elems)
        return self.average_shared(x, context, elems, uniform_weights(context.batch_size, k, ref))

    @property
    def stochastic(self) -> bool:
        """Monte-Carlo averaging (``samples`` set) draws new elements at every call."""
        return self.num_samples is not None

    def fixed_draw(self, x: Any, context: GroupContext) -> "SampledElements | None":
        """The ``K`` sampled elements of each input, fixed (``None`` for exact averaging)."""
        if not self.stochastic:
            return None
        return SampledElements(self, *self.weighted_elements(x, context))

    def weighted_elements(self, x, context):
        ref = reference_tensor(x)
        k = self.num_samples
        if k is None:
            g = self.symmetry.all_elements(context, device=ref.device, dtype=ref.dtype)
            k = element_batch_size(g) // context.batch_size
        else:
            g = self.symmetry.sample(context, k, self.generator, device=ref.device, dtype=ref.dtype)
        return g, uniform_weights(context.batch_size, k, ref)

    def extra_repr(self):
        return f"{super().extra_repr()}, samples={self.samples}, eval_samples={self.eval_samples}"


class SampledElements(FixedDraw):
    """A wrapper that averages ``Σ_k w_k h_k·f(h_k⁻¹·x)`` over sampled elements
    (Monte-Carlo group averaging, or any :class:`Symmetrizer` doing so) with its elements
    ``[B·K]`` and weights ``[B, K]`` fixed. Moved by ``g``, the draws for ``g·x`` are
    ``g h_k``, and the average over them at ``g·x`` is exactly ``g`` times the average over
    ``h_k`` at ``x``, whatever the elements are."""

    def __init__(self, wrapper: Symmetrizer, elements: Element, weights: Tensor):
        self.wrapper, self.elements, self.weights = wrapper, elements, weights

    def __call__(self, x: Any) -> Any:
        sym = self.wrapper.symmetry
        sym.check_input(x)
        return self.wrapper.average(x, sym.context(x), self.elements, self.weights)

    def moved(self, g: Element, k: int, context: GroupContext) -> "SampledElements":
        batch, per_input = self.weights.shape
        own = element_take(self.elements, draw_rows(batch, k, per_input, self.weights.device))
        moved = self.wrapper.symmetry.group.compose(element_repeat(g, per_input), own)
        return SampledElements(self.wrapper, moved, self.weights.repeat_interleave(k, 0))

    def moved_in(self, group: Group, g: Element, k: int, context: GroupContext) -> "SampledElements":
        """Moved by ``g``'s part in the wrapper's group: at ``g·x`` the elements ``g' h_k``
        (``g'`` that part) give exactly ``g`` times the average at ``x`` when the backbone
        is equivariant to the other factors, which commute with the wrapper's."""
        return self.moved(group.part(g, self.wrapper.symmetry.group), k, context)
