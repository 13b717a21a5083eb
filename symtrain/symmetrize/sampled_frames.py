"""Wrappers over frames that may be sampled: stochastic exactly where a frame was drawn.

A frame too large to enumerate (a minimal S_n frame past its ``max_elements``
automorphisms, :attr:`Frame.may_sample <symtrain.symmetrize.frames.Frame>`) draws some
inputs' elements at random; averaging over them is a Monte-Carlo estimate, equivariant in
distribution only. A wrapper over such frames (:class:`SampledFrames`, a mixin of
:class:`~symtrain.symmetrize.FrameAveraging` and
:class:`~symtrain.symmetrize.Canonicalization`) is then :attr:`stochastic`, and its exact
check uses a :class:`SampledFrameDraw`: the drawn inputs' elements fixed and moved with
the input, the enumerated inputs' frames recomputed on the moved input (so their frames
are still checked). Whether an input is drawn depends only on the order of its
automorphism group, an invariant: ``x`` and ``g·x`` are drawn alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..groups.base import Element, Group, GroupContext, element_repeat, element_take
from .base import FixedDraw, Symmetrizer, draw_rows


class SampledFrames:
    """Randomness of a :class:`Symmetrizer` whose elements come from ``self.frames``
    (a list of :class:`~symtrain.symmetrize.frames.Frame`, or ``None``)."""

    frames: list | None

    def _sampling_frames(self) -> list:
        return [f for f in (self.frames or ()) if f.may_sample]

    @property
    def stochastic(self) -> bool:
        """Whether the last call drew some input's frame at random (before any call: whether
        a frame may); an input's frame is drawn when its stabiliser is too large to list."""
        return any(f.sampled is None or bool(f.sampled.any()) for f in self._sampling_frames())

    def sampled_inputs(self, batch: int) -> Tensor | None:
        """Which of the last call's ``batch`` inputs had a frame drawn (``[B]`` bool), or
        ``None`` when no frame may be drawn. A frame computed on the ``K`` copies of
        each input (``after_others``) marks the input when any copy was drawn."""
        frames = self._sampling_frames()
        if not frames:
            return None
        marks = [f.sampled.reshape(batch, -1).any(1) for f in frames if f.sampled is not None]
        return torch.stack(marks).any(0) if marks else None

    def fixed_draw(self: Any, x: Any, context: GroupContext) -> "SampledFrameDraw | None":
        """The frame of ``x`` with its drawn elements fixed; ``None`` when no input of ``x``
        has a drawn frame (the wrapper is then deterministic on ``x`` and ``g·x``)."""
        if not self._sampling_frames():
            return None
        g, weights = self.weighted_elements(x, context)
        sampled = self.sampled_inputs(context.batch_size)
        if sampled is None or not bool(sampled.any()):
            return None
        return SampledFrameDraw(self, g, weights, sampled)


class SampledFrameDraw(FixedDraw):
    """A frame wrapper's elements ``[B·K]`` and weights ``[B, K]`` with the drawn inputs'
    (``sampled`` ``[B]``) fixed. Called on its own input it averages over them; moved by
    ``g`` (:meth:`moved`), the drawn inputs' elements become ``g h_k`` and the other
    inputs' frames are recomputed on ``g·x``, so the check ``draw.moved(g)(g·x) = g·draw(x)``
    still tests the enumerated frames' equivariance and only the drawn ones are fixed."""

    def __init__(self, wrapper: Symmetrizer, elements: Element, weights: Tensor, sampled: Tensor,
                 recompute: bool = False):
        self.wrapper, self.elements, self.weights, self.sampled = wrapper, elements, weights, sampled
        self.recompute = recompute

    def __call__(self, x: Any) -> Any:
        sym = self.wrapper.symmetry
        sym.check_input(x)
        context = sym.context(x)
        g, weights = self.elements, self.weights
        if self.recompute and not bool(self.sampled.all()):
            fresh, fresh_weights = self.wrapper.weighted_elements(x, context)
            k = max(weights.shape[1], fresh_weights.shape[1])
            g, weights = _widened(g, weights, k)
            fresh, fresh_weights = _widened(fresh, fresh_weights, k)
            rows = self.sampled.repeat_interleave(k)
            g = _where(rows, g, fresh)
            weights = torch.where(self.sampled[:, None], weights, fresh_weights)
        return self.wrapper.average(x, context, g, weights)

    def moved(self, g: Element, k: int, context: GroupContext) -> "SampledFrameDraw":
        batch, per_input = self.weights.shape
        own = element_take(self.elements, draw_rows(batch, k, per_input, self.weights.device))
        moved = self.wrapper.symmetry.group.compose(element_repeat(g, per_input), own)
        return SampledFrameDraw(self.wrapper, moved, self.weights.repeat_interleave(k, 0),
                                self.sampled.repeat_interleave(k), recompute=True)

    def moved_in(self, group: Group, g: Element, k: int, context: GroupContext) -> "SampledFrameDraw":
        """Moved by ``g``'s part in the wrapper's group (see :meth:`SampledElements.moved_in
        <symtrain.symmetrize.averaging.SampledElements.moved_in>`); the other inputs'
        frames are recomputed on ``g·x`` as in :meth:`moved`."""
        return self.moved(group.part(g, self.wrapper.symmetry.group), k, context)


def _widened(g: Element, weights: Tensor, k: int) -> tuple[Element, Tensor]:
    """Elements ``[B·K]`` and weights ``[B, K]`` padded to ``k`` per input (each input's
    first element repeated, with weight 0)."""
    b, have = weights.shape
    if have == k:
        return g, weights
    cols = torch.arange(k, device=weights.device)
    cols = torch.where(cols < have, cols, torch.zeros_like(cols))
    rows = (torch.arange(b, device=weights.device)[:, None] * have + cols[None]).reshape(-1)
    return element_take(g, rows), torch.cat([weights, weights.new_zeros(b, k - have)], 1)


def _where(rows: Tensor, a: Element, b: Element) -> Element:
    """Per row of an element batch: ``a`` where ``rows`` (``[N]`` bool), else ``b``."""
    if isinstance(a, tuple):
        return tuple(_where(rows, x, y) for x, y in zip(a, b, strict=True))
    return torch.where(rows.reshape(-1, *([1] * (a.dim() - 1))), a, b)


__all__ = ["SampledFrames", "SampledFrameDraw"]
