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

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..checks import can_read_values, check_finite_input, input_checked
from ..domains import OPTIONAL_COUNT, check_args, check_samples  # noqa: F401  (check_samples re-exported)
from ..errors import UnsupportedGroupError
from ..groups.base import Device, Element, Group, GroupContext, element_take
from ..symmetry import Symmetry, call_model  # noqa: F401  (re-exported)
from ..tree import reference_tensor, tree_map  # noqa: F401  (re-exported)


class FixedDraw(ABC):
    """One draw of a stochastic wrapper's randomness for a batch of ``B`` inputs, fixed:
    the wrapper as a deterministic function of its input, whose draw can move with the
    input. Made by :meth:`Symmetrizer.fixed_draw`; the exact equivariance check
    (:meth:`Probe.outputs <symtrain.symmetry.Probe.outputs>`) compares
    ``draw.moved(g, k, context)(g·x)`` with ``g·draw(x)``."""

    @abstractmethod
    def __call__(self, x: Any) -> Any:
        """The wrapper's output on ``x`` (a whole input; a tuple for positional fields)."""

    @abstractmethod
    def moved(self, g: Element, k: int, context: GroupContext) -> "FixedDraw":
        """The draw for the ``B·k`` inputs ``g·x`` (``g``: ``[B·k]``, b-major; ``context``:
        the ``B`` inputs'): each input's draw repeated ``k`` times and moved by its
        elements, so that an equivariant wrapper gives ``g·draw(x)``."""

    def moved_in(self, group: Group, g: Element, k: int, context: GroupContext) -> "FixedDraw":
        """:meth:`moved` for elements ``g`` of ``group``, a direct product that has the
        wrapper's group among its factors: the check of a model against more symmetry
        than its wrapper enforces (an E(3) wrapper of a permutation-equivariant backbone,
        checked against S_n × E(3)). ``context``: the ``B`` inputs' context under
        ``group``. Default: raises :class:`~symtrain.errors.UnsupportedGroupError`, and
        the check falls back to a Monte-Carlo estimate; a draw implements it only where
        the move is right for every factor (draws of elements: ``g``'s part in the
        wrapper's group, :meth:`Group.part <symtrain.groups.Group.part>`; a noise draw:
        the noise moved by the whole of ``g``)."""
        raise UnsupportedGroupError(f"{type(self).__name__} cannot move its draw with elements of {group}")


class Symmetrizer(nn.Module):
    """Base class: ``base`` made equivariant for ``symmetry``.

    ``forward(*inputs)``: one input is acted on as a whole (a tensor, a dict for a
    keyword :class:`~symtrain.actions.Fields`, a PyG batch); several positional inputs
    form the tuple of a positional ``Fields``. Tuples are passed to ``base`` unpacked:
    ``base(pos, vel, charge)``.

    Attributes ``symmetry`` (what the module is equivariant to) and ``base`` are public,
    so checkers and metrics can read them.

    ``chunk_size``: the ``K`` copies of each input go through ``base`` at most
    ``chunk_size`` at a time (peak memory of ``B·chunk_size`` inputs instead of
    ``B·K``); the result equals the unchunked one up to float rounding.
    """

    @check_args(chunk_size=OPTIONAL_COUNT)
    def __init__(self, base: nn.Module, symmetry: Symmetry, chunk_size: int | None = None):
        super().__init__()
        if not isinstance(symmetry, Symmetry):
            raise TypeError(f"symmetry must be a symtrain.Symmetry, got {type(symmetry).__name__}")
        self.base = base
        self.symmetry = symmetry
        self.chunk_size = check_samples("chunk_size", chunk_size)
        self._chunk: Tensor | None = None  # rows of the B·K copies in the current chunk

    @classmethod
    def supports(cls, group: Group, **options: Any) -> str | None:
        """``None`` if this method can make a model equivariant to ``group`` when built
        with ``options`` (its constructor's keyword arguments), else the reason it
        cannot. Default: every group."""
        return None

    @abstractmethod
    def weighted_elements(self, x: Any, context: GroupContext) -> tuple[Element, Tensor]:
        """Group elements ``[B·K]`` (b-major) and weights ``[B, K]`` for input ``x``: a
        weighted sample of the wrapper's element distribution (not to be confused with
        :meth:`Group.elements <symtrain.groups.Group.elements>`, all elements of a finite
        group)."""

    def forward(self, *inputs: Any) -> Any:
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        self.symmetry.check_input(x)
        if self.symmetry.input.batch_size(x) == 0:
            return self.empty_batch_output(x)
        context = self.symmetry.context(x)
        with input_checked():  # the frames need not check x's values again
            g, weights = self.weighted_elements(x, context)
        return self.average(x, context, g, weights)

    def empty_batch_output(self, x: Any) -> Any:
        """The output for an empty batch ``x`` (no inputs): the base model's own empty
        output, exact (there is nothing to average), checked like every output."""
        return self.check_output(call_model(self.base, x))

    @staticmethod
    def check_output(ys: Any) -> Any:
        """The base model's output, checked: NaN/inf is a
        :class:`~symtrain.errors.NonFiniteError` naming the copies (eager mode only)."""
        check_finite_input(ys, "the base model's output (rows: the B·K transformed copies, "
                               "copy k of input b at b·K + k)")
        return ys

    # --- randomness --------------------------------------------------------------------
    @property
    def stochastic(self) -> bool:
        """Whether a call draws random elements or noise (two calls on one input differ).
        Stochastic wrappers implement :meth:`fixed_draw`."""
        return False

    def fixed_draw(self, x: Any, context: GroupContext) -> FixedDraw | None:
        """One draw of this wrapper's randomness for inputs ``x``, fixed (see
        :class:`FixedDraw`). ``None`` (the default): no draw to fix, because the wrapper
        is deterministic or, when it is :attr:`stochastic`, because it does not say how
        its randomness moves with the input (its equivariance error is then a
        Monte-Carlo estimate)."""
        return None

    def average(self, x: Any, context: GroupContext, g: Element, weights: Tensor,
                repeated: bool = False) -> Any:
        """``Σ_k w_k g_k·f(g_k⁻¹·x)`` for given elements and weights. ``repeated``: ``x``
        already holds the ``K`` copies of each input (b-major; ``context`` is still the
        un-repeated input's), e.g. because an interface network has seen them."""
        sym = self.symmetry
        k = weights.shape[1]
        if not repeated and self.chunk_size is not None and self.chunk_size < k:
            return self._chunked(k, lambda rows, cols: self.average(
                x, context, element_take(g, rows), weights[:, cols]), context.batch(), weights.device)
        context_k = context.repeat(k)
        xs = self.transform_input(g, x, context_k) if repeated else self.transform_input_repeated(g, x, k, context)
        ys = self.call_base(xs, weights, context_k)
        if type(self).transform_output is not Symmetrizer.transform_output:  # a subclass's own path
            return sym.output.mean(self.transform_output(g, ys, context_k), weights, context)
        # moved back and averaged in one step (the output action's act_mean, checked)
        return sym.output.act_mean(sym.group, g, ys, weights, context_k, context)

    def call_base(self, xs: Any, weights: Tensor, context_k: GroupContext) -> Any:
        """The base model's checked output on the ``B·K`` copies ``xs`` (``context_k``
        their context), skipping the copies of weight 0: inputs whose frame is smaller
        than the batch's largest are padded with such copies (a batch with one symmetric
        molecule would otherwise run every molecule as many times as its stabiliser has
        elements). Their output rows are 0, which the weighted mean multiplies by 0.
        Under tracing, ``torch.func`` or ``torch.compile`` every copy runs (no
        data-dependent shapes)."""
        flat = weights.reshape(-1)
        if flat.numel() > 1 and can_read_values(flat):
            keep = flat != 0
            kept = int(keep.sum())
            if 0 < kept < flat.numel():
                rows = keep.nonzero().flatten()
                ys = self.check_output(call_model(self.base, self.symmetry.input.take(xs, rows, context_k)))
                return self.symmetry.output.put(ys, rows, context_k)
        return self.check_output(call_model(self.base, xs))

    def _chunked(self, k: int, part: Callable[[Tensor, Tensor], Any], batch: int, device: Device) -> Any:
        """The sum of ``part(rows, cols)`` over chunks of the ``K`` copies: ``cols`` the
        copies' indices, ``rows`` their rows among the ``B·K`` (b-major)."""
        out = None
        size = self.chunk_size or k
        for start in range(0, k, size):
            cols = torch.arange(start, min(k, start + size), device=device)
            rows = (torch.arange(batch, device=device)[:, None] * k + cols[None]).reshape(-1)
            self._chunk = rows
            try:
                y = part(rows, cols)
            finally:
                self._chunk = None
            out = y if out is None else tree_map(torch.add, out, y)
        return out

    def average_shared(self, x: Any, context: GroupContext, elements: Element, weights: Tensor) -> Any:
        """:meth:`average` when every input uses the same ``K`` elements (``elements``:
        ``[K]``, e.g. a whole finite group): the copies are made by the actions' batched
        :meth:`~symtrain.actions.Action.orbit` path."""
        sym, group = self.symmetry, self.symmetry.group
        k = weights.shape[1]
        if self.chunk_size is not None and self.chunk_size < k:
            return self._chunked(k, lambda rows, cols: self.average_shared(
                x, context, element_take(elements, cols), weights[:, cols]), context.batch(),
                weights.device)
        context_k = context.repeat(k)
        xs = sym.input.orbit(group, group.inverse(elements), x, context)
        ys = self.check_output(call_model(self.base, xs))
        sym.output.check(ys, group)
        ys = sym.output.apply_tiled(group, elements, ys, context_k)
        return sym.output.mean(ys, weights, context)

    def transform_input(self, g: Element, xs: Any, context: GroupContext) -> Any:
        """``g⁻¹·xs`` on the repeated inputs. Subclasses may add a differentiable path
        (e.g. a straight-through soft permutation) without changing the values."""
        return self.symmetry.act_input(self.symmetry.group.inverse(g), xs, context, check=False)

    def transform_input_repeated(self, g: Element, x: Any, k: int, context: GroupContext) -> Any:
        """:meth:`transform_input` on ``x`` repeated ``k`` times (``context``: the
        un-repeated input's), by the action's :meth:`~symtrain.actions.Action.apply_repeated`,
        which need not copy ``x`` first. A subclass that overrides :meth:`transform_input`
        keeps its own path here (the input repeated, then its ``transform_input``)."""
        if type(self).transform_input is not Symmetrizer.transform_input:
            return self.transform_input(g, self.symmetry.input.repeat(x, k, context), context.repeat(k))
        group = self.symmetry.group
        return self.symmetry.input.apply_repeated(group, group.inverse(g), x, k, context)

    def transform_output(self, g: Element, ys: Any, context: GroupContext) -> Any:
        """``g·ys`` on the base model's outputs (see :meth:`transform_input`); the outputs
        are checked against the output action."""
        return self.symmetry.act_output(g, ys, context)

    def extra_repr(self) -> str:
        return f"symmetry={self.symmetry}"


def draw_rows(batch: int, k: int, per_input: int, device: Device = None) -> Tensor:
    """Row indices that repeat each input's ``per_input`` draws (rows ``b·per_input + m``)
    for ``k`` copies of it: ``[B·k·per_input]``, ordered (input, copy, draw)."""
    rows = torch.arange(batch, device=device)[:, None, None] * per_input \
        + torch.arange(per_input, device=device)[None, None, :]
    return rows.expand(batch, k, per_input).reshape(-1)


def uniform_weights(batch: int, k: int, like: Tensor) -> Tensor:
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.full((batch, k), 1.0 / k, device=like.device, dtype=dtype)
