"""Learned probabilistic symmetrization (Kim et al., NeurIPS 2023).

For an input ``x`` the wrapper draws ``k`` noise samples ``ε_1..ε_k``; an equivariant
:class:`~symtrain.symmetrize.interfaces.Interface` maps ``(x, ε_i)`` to a group
element ``g_i`` (``interface(h·x, h·ε) = h·interface(x, ε)``); the base model sees
``g_i⁻¹·x`` and its output is mapped back by ``g_i``; the output is the mean over the
``k`` samples. The element distribution ``q(g | x)`` is equivariant, so the wrapper is
equivariant in distribution, and exactly equivariant for a fixed noise draw that is
transformed with the input.

Gradients reach the interface: continuous elements (rotations) are differentiable;
for discrete factors the forward values use the hard element (exact index
operations) and a straight-through term adds the gradient of the paper's soft form,
linearised at the hard element, with ``P_st = P_hard + P_soft − stopgrad(P_soft)``:

- node-permuting factors (S_n): inputs ``g⁻¹·x ↦ P_stᵀ x`` (``P_stᵀ A P_st`` on
  adjacency), outputs ``g·ŷ ↦ P_st ŷ`` (``P_st Ŷ P_stᵀ``), through each action's
  :meth:`~symtrain.actions.Action.soft_permute`; an action that does not declare it
  raises, so the interface never trains without its gradient;
- finite factors (C_n, D_n) with probabilities ``π`` over their elements ``e_j``:
  inputs ``Σ_j π_j e_j⁻¹·x``, outputs ``Σ_j π_j e_j·ŷ``.

In a product group the soft term of one factor acts on the data moved by the other
factors (the factors of a direct product commute).

The soft terms are only computed in training mode with gradients enabled, so
evaluation runs on hard indices alone.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..domains import NON_NEGATIVE, OPTIONAL_COUNT, POSITIVE_INT, check_args
from ..errors import SymmetryError, UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, element_repeat, element_tile, iter_factors
from ..symmetry import Symmetry
from ..tree import detach, reference_tensor, tree_map
from .base import FixedDraw, Symmetrizer, check_samples, draw_rows, uniform_weights
from .interfaces.base import Interface, RelaxedElement, cast_floats
from .registry import register_symmetrizer


def _add_zero_leaf(hard: Any, soft: Any) -> Any:
    if not (isinstance(hard, Tensor) and hard.is_floating_point()
            and isinstance(soft, Tensor) and soft.requires_grad):
        return hard
    return hard + (soft - soft.detach())


def add_zero(hard: Any, soft: Any) -> Any:
    """``hard`` in the forward pass, plus the gradient of ``soft`` in the backward pass:
    ``hard + (soft − stopgrad(soft))`` on every float tensor of two trees of one structure."""
    return tree_map(_add_zero_leaf, hard, soft)


def straight_through_matrix(hard: Tensor, soft: Tensor) -> Tensor:
    """``P_st = P_hard + P_soft − stopgrad(P_soft)``: the hard matrix's values with the
    soft matrix's gradient (Kim et al. 2023)."""
    return hard.to(soft.dtype) + (soft - soft.detach())


@register_symmetrizer("ps", "lps")
class ProbabilisticSymmetrization(Symmetrizer):
    """Make ``base`` equivariant by averaging over elements from a learned equivariant
    distribution ``q(g | x)`` (learned probabilistic symmetrization, LPS).

    Args:
        base: any module, called on ``B·k`` transformed inputs (tuples unpacked).
        symmetry: the group and its actions on input and output.
        interface: an :class:`~symtrain.symmetrize.interfaces.Interface` producing
            elements of ``symmetry.group`` (it is attached to the symmetry here).
        samples: ``k`` in training mode; eval_samples: ``k`` in eval mode (default:
            ``samples``). ``samples_train``/``samples_eval`` are deprecated aliases.
        noise_scale: scale of the interface noise (0 with ``samples=1`` is a learned
            canonicalization; see :meth:`canonicalization`).
        loss_on: ``"mean"`` (outputs averaged over the ``k`` samples, the paper's choice)
            or ``"per_sample"``: in training mode the forward returns the ``B·k``
            un-averaged outputs (b-major); compare them with :meth:`repeat_target`.
        generator: optional ``torch.Generator`` for the noise.
        example: an input batch to read the interface's widths off when ``interface`` is
            a name, a dict of options or ``None`` (the group's default interface).
        chunk_size: at most this many of the ``k`` copies per input through ``base`` at
            once (the interface still sees all ``k``); same result, bounded memory.

    ``forward(*inputs, noise=None)``: ``noise`` is an explicit noise draw for the
    ``B·k`` replicated inputs (b-major), as made by ``interface.sample_noise`` and acted
    on by ``interface.noise_action``; with it the output is a deterministic function of
    ``(x, noise)``. :meth:`aux_loss` gives the interface's auxiliary loss (entropy
    penalty) of the last forward, to add to the training loss.

    >>> import torch, symtrain as st
    >>> from symtrain.symmetrize.interfaces import PermutationInterface
    >>> sym = st.Symmetry("S_n", input=st.actions.Nodes(), output=st.actions.Trivial())
    >>> model = ProbabilisticSymmetrization(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1)),
    ...     sym, PermutationInterface(in_features=2, hidden=16), samples=4)
    >>> model(torch.randn(3, 4, 2)).shape
    torch.Size([3, 1])
    """

    @check_args(samples=POSITIVE_INT, eval_samples=OPTIONAL_COUNT, noise_scale=NON_NEGATIVE,
                chunk_size=OPTIONAL_COUNT, samples_train=OPTIONAL_COUNT, samples_eval=OPTIONAL_COUNT)
    def __init__(self, base: nn.Module, symmetry: Symmetry, interface: Interface | str | dict | None = None,
                 samples: int = 10, eval_samples: int | None = None,
                 noise_scale: float = 1.0, loss_on: str = "mean",
                 generator: torch.Generator | None = None, example: Any = None,
                 chunk_size: int | None = None,
                 samples_train: int | None = None, samples_eval: int | None = None):
        super().__init__(base, symmetry, chunk_size)
        samples, eval_samples = _deprecated_sample_names(samples, eval_samples, samples_train, samples_eval)
        if not isinstance(interface, Interface):
            from .interfaces.registry import create_interface

            interface = create_interface(interface, symmetry, example=example)
        if loss_on not in ("mean", "per_sample"):
            raise SymmetryError(f"loss_on must be 'mean' or 'per_sample', got {loss_on!r}")
        if not noise_scale >= 0:
            raise SymmetryError(f"noise_scale must be >= 0, got {noise_scale!r}")
        self.interface = interface.attach(symmetry)
        self.samples = check_samples("samples", samples, optional=False)
        self.eval_samples = check_samples("eval_samples", eval_samples)
        self.noise_scale = float(noise_scale)
        self.loss_on = loss_on
        self.generator = generator
        self._relaxed: RelaxedElement | None = None
        self._aux: Tensor | None = None

    @classmethod
    def supports(cls, group: Group, interface: Interface | str | dict | None = None,
                 **options) -> str | None:
        """The interface (given, or the group's default) must produce elements of ``group``."""
        from .interfaces.registry import interface_supports

        return interface_supports(interface, group)

    @classmethod
    def canonicalization(cls, base: nn.Module, symmetry: Symmetry,
                         interface: Interface) -> "ProbabilisticSymmetrization":
        """Learned canonicalization (Kaba et al. 2023): no noise, one sample."""
        return cls(base, symmetry, interface, samples=1, eval_samples=1, noise_scale=0.0)

    @property
    def samples_train(self) -> int:
        """Deprecated name of :attr:`samples`."""
        warnings.warn("samples_train is deprecated; use samples", DeprecationWarning, stacklevel=2)
        return self.samples

    @property
    def samples_eval(self) -> int | None:
        """Deprecated name of :attr:`eval_samples`."""
        warnings.warn("samples_eval is deprecated; use eval_samples", DeprecationWarning, stacklevel=2)
        return self.eval_samples

    def aux_loss(self) -> Tensor:
        """Auxiliary loss of the last forward (0 when there is none)."""
        return self._aux if self._aux is not None else torch.zeros(())

    @property
    def num_samples(self) -> int:
        if not self.training and self.eval_samples is not None:
            return self.eval_samples
        return self.samples

    def repeat_target(self, y: Any, x: Any | None = None) -> Any:
        """Targets repeated ``k`` times (b-major), to match ``loss_on="per_sample"`` outputs."""
        context = self.symmetry.context(x) if x is not None else None
        return self.symmetry.output.repeat(y, self.num_samples, context)

    def forward(self, *inputs: Any, noise: Any = None) -> Any:
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        sym = self.symmetry
        sym.check_input(x)
        if sym.input.batch_size(x) == 0:
            return self.empty_batch_output(x)
        context = sym.context(x)
        k = self.num_samples
        # Repeat once: the interface and the base model both see the B·k copies.
        xs = sym.input.repeat(x, k, context)
        context_k = context.repeat(k)
        soft = self.training and torch.is_grad_enabled()
        ref = reference_tensor(x)
        try:
            g = self._sample(xs, context_k, noise, soft)
            if self.loss_on == "per_sample" and self.training:  # each copy is its own input
                return self.average(xs, context_k, g, uniform_weights(context_k.batch_size, 1, ref),
                                    repeated=True)
            weights = uniform_weights(context.batch_size, k, ref)
            if self.chunk_size is not None and self.chunk_size < k:  # copies made per chunk
                return self.average(x, context, g, weights)
            return self.average(xs, context, g, weights, repeated=True)
        finally:
            self._relaxed = None

    @property
    def stochastic(self) -> bool:
        """Always: every call draws the interface's noise (scaled by ``noise_scale``, plus
        the tie-breaking noise that is drawn even when ``noise_scale == 0``)."""
        return True

    def fixed_draw(self, x: Any, context: GroupContext) -> "FixedNoise":
        """One noise draw for the ``B·k`` replicated inputs, fixed (see :class:`FixedNoise`)."""
        k = self.num_samples
        noise = self.interface.sample_noise(self.symmetry.input.repeat(x, k, context), context.repeat(k),
                                            self.noise_scale, self.generator)
        return FixedNoise(self, noise)

    def weighted_elements(self, x: Any, context: GroupContext, noise: Any = None) -> tuple[Element, Tensor]:
        """Elements ``[B·k]`` (b-major) from the interface, and uniform weights ``[B, k]``.

        ``noise``: an explicit draw for the ``B·k`` replicated inputs, or ``None`` to
        sample one with ``noise_scale``."""
        k = self.num_samples
        g = self._sample(self.symmetry.input.repeat(x, k, context), context.repeat(k), noise, False)
        return g, uniform_weights(context.batch_size, k, reference_tensor(x))

    def _sample(self, xs: Any, context_k: GroupContext, noise: Any, soft: bool) -> Element:
        ref = reference_tensor(xs)
        xi = self.interface.match(xs)  # the interface's dtype (half data runs it in float32)
        if noise is None:
            noise = self.interface.sample_noise(xi, context_k, self.noise_scale, self.generator)
        elif xi is not xs:
            noise = cast_floats(noise, reference_tensor(xi).dtype)
        relaxed = self.interface.relaxed(xi, noise, context_k, soft=soft)
        self._relaxed = relaxed if soft else None
        self._aux = relaxed.aux_loss
        return relaxed.element if xi is xs else cast_floats(relaxed.element, ref.dtype)

    # --- straight-through paths ---------------------------------------------------------
    def transform_input(self, g, xs, context):
        out = super().transform_input(g, xs, context)
        return self._straight_through(self.symmetry.input, g, xs, out, context, inverse=True)

    def transform_output(self, g, ys, context):
        out = super().transform_output(g, ys, context)
        return self._straight_through(self.symmetry.output, g, ys, out, context, inverse=False)

    def _straight_through(self, action, g, data, hard, context, inverse):
        """``hard`` (``g⁻¹·data`` if ``inverse``, else ``g·data``) plus, for each discrete
        factor with a soft part, the zero-valued term that carries the gradient of its
        soft form (see the module docstring)."""
        relaxed = self._relaxed
        if relaxed is None:
            return hard
        group = self.symmetry.group
        parts = group.split(g)
        for i, (factor, comp, soft) in enumerate(zip(group.factors, parts, relaxed.soft, strict=True)):
            if soft is None:
                continue
            if self._chunk is not None:  # the soft parts of this chunk's copies
                soft = soft.index_select(0, self._chunk)
            base = detach(self._moved_by_others(action, parts, i, data, context, inverse))
            if factor.permutes_nodes:
                p = straight_through_matrix(factor.matrix(factor.permutation(comp)), soft)
                soft_value = action.soft_permute(base, p.transpose(-1, -2) if inverse else p, context)
            elif factor.is_finite:
                soft_value = self._finite_mixture(action, i, soft, base, context, inverse)
            else:
                raise UnsupportedGroupError(
                    f"the interface gave a soft part for {factor}, which is neither a node "
                    "permutation nor a finite group: no straight-through path is defined for it")
            hard = add_zero(hard, soft_value)
        return hard

    def _moved_by_others(self, action, parts, i, data, context, inverse):
        """``data`` moved by every factor of the element but the ``i``-th."""
        group = self.symmetry.group
        if len(parts) == 1:
            return data
        batch = context.batch_size
        ref = parts[i][0] if isinstance(parts[i], tuple) else parts[i]
        others = list(parts)
        others[i] = group.factors[i].identity(batch, context=context, device=ref.device,
                                              dtype=ref.dtype if ref.is_floating_point() else None)
        g = group.join(tuple(others))
        return action.apply(group, group.inverse(g) if inverse else g, data, context)

    def _finite_mixture(self, action, i, probs, data, context, inverse):
        """``Σ_j π_j e_j⁻¹·data`` (``inverse``) or ``Σ_j π_j e_j·data`` over the elements
        ``e_j`` of the ``i``-th (finite) factor, every other factor at the identity."""
        group = self.symmetry.group
        factor = group.factors[i]
        b, m = probs.shape
        elems = factor.elements(context=context, device=probs.device)
        if inverse:
            elems = factor.inverse(elems)
        moves = element_tile(elems, b)                                   # [B·m], b-major
        context_m = context.repeat(m)
        if len(group.factors) > 1:
            ids = [f.identity(b * m, context=context_m, device=probs.device) for f in group.factors]
            ids[i] = moves
            moves = group.join(tuple(ids))
        moved = action.apply(group, moves, action.repeat(data, m, context), context_m)
        return _weighted_sum(moved, probs)
    def extra_repr(self):
        return (f"{super().extra_repr()}, samples={self.samples}, "
                f"eval_samples={self.eval_samples}, noise_scale={self.noise_scale}, "
                f"loss_on={self.loss_on!r}")


class FixedNoise(FixedDraw):
    """Probabilistic symmetrization with one noise draw fixed (``noise``: for the ``B·k``
    replicated inputs, b-major). Moved by ``g``, the noise is acted on by the interface's
    ``noise_action``; the interface is equivariant, ``interface(g·x, g·ε) =
    g·interface(x, ε)``, so the wrapper satisfies ``f(g·x, g·ε) = g·f(x, ε)`` exactly."""

    def __init__(self, wrapper: ProbabilisticSymmetrization, noise: Any):
        self.wrapper, self.noise = wrapper, noise

    def __call__(self, x: Any) -> Any:
        return self.wrapper(*(x if isinstance(x, tuple) else (x,)), noise=self.noise)

    def moved(self, g: Element, k: int, context: GroupContext) -> "FixedNoise":
        return self._moved(self.wrapper.interface.group, g, k, context)

    def moved_in(self, group: Group, g: Element, k: int, context: GroupContext) -> "FixedNoise":
        """The noise moved by the whole of ``g``: per-node noise is permuted with the nodes
        by an S_n factor the wrapper does not enforce, so an interface and backbone
        equivariant to it give ``g·draw(x)`` exactly. Raises
        :class:`~symtrain.errors.UnsupportedGroupError` when the noise action cannot act
        with some factor of ``group``."""
        for factor in group.factors:
            reason = self.wrapper.interface.noise_action.supports(factor)
            if reason is not None:
                raise UnsupportedGroupError(f"the interface's noise cannot move with {group}: {reason}")
        return self._moved(group, g, k, context)

    def _moved(self, group: Group, g: Element, k: int, context: GroupContext) -> "FixedNoise":
        samples, itf = self.wrapper.num_samples, self.wrapper.interface
        rows = draw_rows(context.batch_size, k, samples, reference_tensor(self.noise).device)
        noise = tree_map(lambda t: t.index_select(0, rows), self.noise)
        moved = itf.noise_action.act(group, element_repeat(g, samples), noise, context.repeat(k * samples))
        return FixedNoise(self.wrapper, moved)


def _weighted_sum(moved: Any, probs: Tensor) -> Any:
    """``Σ_j π_j y_j`` over ``m`` copies folded into the batch (b-major) of every float tensor."""
    b, m = probs.shape
    if isinstance(moved, Tensor):
        if not moved.is_floating_point():
            return moved[::m]
        y = moved.reshape(b, m, *moved.shape[1:])
        return (y * probs.to(y.dtype).reshape(b, m, *([1] * (y.dim() - 2)))).sum(1)
    if isinstance(moved, (tuple, list)):
        return type(moved)(_weighted_sum(v, probs) for v in moved)
    if isinstance(moved, dict):
        return {k: _weighted_sum(v, probs) for k, v in moved.items()}
    raise UnsupportedGroupError(f"the straight-through term of a finite group cannot mix data of "
                                f"type {type(moved).__name__}")


def _deprecated_sample_names(samples, eval_samples, samples_train, samples_eval):
    if samples_train is not None:
        warnings.warn("samples_train is deprecated; use samples", DeprecationWarning, stacklevel=3)
        samples = samples_train
    if samples_eval is not None:
        warnings.warn("samples_eval is deprecated; use eval_samples", DeprecationWarning, stacklevel=3)
        eval_samples = samples_eval
    return samples, eval_samples


@register_symmetrizer("learned_canonicalization", supports=ProbabilisticSymmetrization.supports)
def learned_canonicalization(base: nn.Module, symmetry: Symmetry,
                             interface: Interface | str | dict | None = None,
                             example: Any = None) -> ProbabilisticSymmetrization:
    """Learned canonicalization (Kaba et al. 2023) as LPS with no noise and one sample,
    so discrete factors get the straight-through gradient."""
    return ProbabilisticSymmetrization(base, symmetry, interface, samples=1, eval_samples=1,
                                       noise_scale=0.0, example=example)


class LearnedCanonicalizer(nn.Module):
    """An interface used as a canonicalizer ``x -> g(x)`` (zero noise) for the
    :class:`~symtrain.symmetrize.Canonicalization` wrapper (Kaba et al. 2023).

    Gradients reach the interface through continuous elements (rotations); for
    discrete groups use :meth:`ProbabilisticSymmetrization.canonicalization`, which
    has the straight-through path. ``prior_weight`` adds a prior loss towards the
    identity, ``‖R − I‖²`` per matrix factor (see :meth:`aux_loss`).
    """

    @check_args(prior_weight=NON_NEGATIVE)
    def __init__(self, interface: Interface, symmetry: Symmetry, prior_weight: float = 0.0):
        super().__init__()
        self.interface = interface.attach(symmetry)
        self.symmetry = symmetry
        self.prior_weight = float(prior_weight)
        self._aux: Tensor | None = None

    def forward(self, x: Any) -> Element:
        context = self.symmetry.context(x)
        xi = self.interface.match(x)
        noise = self.interface.sample_noise(xi, context, 0.0)
        g = self.interface.relaxed(xi, noise, context).element
        if xi is not x:
            g = cast_floats(g, reference_tensor(x).dtype)
        self._aux = self.prior_weight * identity_prior(self.symmetry.group, g)
        return g

    def aux_loss(self) -> Tensor:
        """Prior loss of the last call (0 when none)."""
        return self._aux if self._aux is not None else torch.zeros(())


def identity_prior(group, g: Element) -> Tensor:
    """Mean squared distance ``‖R − I‖²`` of the matrix (rotation) parts of ``g`` to the
    identity; 0 for other factors."""
    total = None
    for _factor, comp in iter_factors(group, g):
        rot = comp[0] if isinstance(comp, tuple) else comp
        if isinstance(rot, Tensor) and rot.is_floating_point() and rot.dim() == 3:
            eye = torch.eye(rot.shape[-1], device=rot.device, dtype=rot.dtype)
            term = (rot - eye).pow(2).sum((-1, -2)).mean()
            total = term if total is None else total + term
    return total if total is not None else torch.zeros(())
