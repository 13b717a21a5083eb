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
operations) and a straight-through term adds the gradient of the soft element, as if
the input had been multiplied by ``P_st = P_hard + P_soft − stopgrad(P_soft)``:

- S_n on node axes (``Nodes``, ``Points``, ``Vectors``, ``Adjacency``, PyG ``Graph``
  node attributes, ``Fields`` of them): ``x ↦ P_stᵀ x`` (``P_stᵀ A P_st`` for adjacency);
- finite groups (C_n, D_n): ``x ↦ Σ_j π_j e_j⁻¹·x`` over all elements ``e_j``.

The soft terms are only computed in training mode with gradients enabled, so
evaluation runs on hard indices alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..actions.base import Action
from ..actions.fields import Fields
from ..actions.graph import Graph, GraphNodes
from ..actions.nodes import Adjacency, Mask, Nodes
from ..actions.points import Vectors
from ..errors import SymmetryError
from ..groups.base import Element, GroupContext, element_repeat, element_tile, iter_factors
from ..groups.permutation import SymmetricGroup
from ..symmetry import Symmetry
from .base import Symmetrizer, check_samples, reference_tensor, uniform_weights
from .interfaces.base import Interface, RelaxedElement


def _straight_through(value: Tensor, soft: Tensor) -> Tensor:
    """``value`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return value + (soft - soft.detach())


def _permute_nodes(m: Tensor, y: Tensor) -> Tensor:
    """``m @ y`` on the node axis 1 of ``y`` ``[B, n, ...]``."""
    return torch.einsum("bij,bj...->bi...", m.to(y.dtype), y)


def _permute_flat_nodes(m: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``m @ y`` per graph for flat node data ``y`` ``[num_nodes, ...]`` (layout ``mask``)."""
    dense = y.new_zeros(mask.shape + y.shape[1:])
    dense[mask] = y
    return _permute_nodes(m, dense)[mask]


def _st_matrix(action: Action, y: Any, m: Tensor, context: GroupContext) -> Any:
    """Add the straight-through term of a soft node permutation ``m`` ``[B, n, n]``
    (equal to the identity at the hard element) to already hard-permuted data ``y``.
    Data without a float node axis (masks, integer features) is returned unchanged."""
    if isinstance(action, Fields):
        return action._rebuild([(key, _st_matrix(sub, v, m, context)) for key, sub, v in action._items(y)])
    if isinstance(action, Graph):
        for key, value in list(y.items()):
            if key not in ("batch", "ptr") and isinstance(value, Tensor) \
                    and value.is_floating_point() and y.is_node_attr(key):
                y[key] = _straight_through(value, _permute_flat_nodes(m, value.detach(), context.mask))
        return y
    if not isinstance(y, Tensor) or not y.is_floating_point() or isinstance(action, Mask):
        return y
    if isinstance(action, Adjacency):  # linearisation of P_stᵀ A P_st at the hard element
        a = y.detach()
        soft = _permute_nodes(m, a) + _permute_nodes(m, a.transpose(1, 2)).transpose(1, 2)
        return _straight_through(y, soft)
    if isinstance(action, Nodes) or (isinstance(action, Vectors) and action.nodes):
        return _straight_through(y, _permute_nodes(m, y.detach()))
    if isinstance(action, GraphNodes):
        return _straight_through(y, _permute_flat_nodes(m, y.detach(), context.mask))
    return y


def _st_finite(action: Action, factor, y: Any, probs: Tensor, shift: Element,
               context: GroupContext) -> Any:
    """Straight-through term of a distribution ``probs`` ``[B, |G|]`` over a finite factor:
    the soft value is ``Σ_j π_j (e_j ∘ shift)·y`` (equal to ``y`` at the hard element)."""
    if not isinstance(y, Tensor) or not y.is_floating_point():
        return y
    b, m = probs.shape
    elems = factor.elements(context=context, device=probs.device)
    moves = factor.compose(element_tile(elems, b), element_repeat(shift, m))
    ys = action.act_factor(factor, moves, y.detach().repeat_interleave(m, 0), context.repeat(m))
    ys = ys.reshape(b, m, *y.shape[1:])
    soft = (ys * probs.to(y.dtype).reshape(b, m, *([1] * (y.dim() - 1)))).sum(1)
    return _straight_through(y, soft)


class ProbabilisticSymmetrization(Symmetrizer):
    """Make ``base`` equivariant by averaging over elements from a learned equivariant
    distribution ``q(g | x)`` (learned probabilistic symmetrization, LPS).

    Args:
        base: any module, called on ``B·k`` transformed inputs (tuples unpacked).
        symmetry: the group and its actions on input and output.
        interface: an :class:`~symtrain.symmetrize.interfaces.Interface` producing
            elements of ``symmetry.group`` (it is attached to the symmetry here).
        samples_train: ``k`` in training mode; samples_eval: ``k`` in eval mode
            (default: ``samples_train``).
        noise_scale: scale of the interface noise (0 with ``samples_train=1`` is a learned
            canonicalization; see :meth:`canonicalization`).
        loss_on: ``"mean"`` (outputs averaged over the ``k`` samples, the paper's choice)
            or ``"per_sample"``: in training mode the forward returns the ``B·k``
            un-averaged outputs (b-major); compare them with :meth:`repeat_target`.
        generator: optional ``torch.Generator`` for the noise.

    ``forward(*inputs, noise=None)``: ``noise`` is an explicit noise draw for the
    ``B·k`` replicated inputs (b-major), as made by ``interface.sample_noise`` and acted
    on by ``interface.noise_action``; with it the output is a deterministic function of
    ``(x, noise)``. :meth:`aux_loss` gives the interface's auxiliary loss (entropy
    penalty) of the last forward, to add to the training loss.

    >>> import torch, symtrain as st
    >>> from symtrain.symmetrize.interfaces import PermutationInterface
    >>> sym = st.Symmetry("S_n", input=st.actions.Nodes(), output=st.actions.Trivial())
    >>> model = ProbabilisticSymmetrization(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1)),
    ...     sym, PermutationInterface(in_features=2, hidden=16), samples_train=4)
    >>> model(torch.randn(3, 4, 2)).shape
    torch.Size([3, 1])
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry, interface: Interface,
                 samples_train: int = 10, samples_eval: int | None = None,
                 noise_scale: float = 1.0, loss_on: str = "mean",
                 generator: torch.Generator | None = None):
        super().__init__(base, symmetry)
        if not isinstance(interface, Interface):
            raise TypeError(f"interface must be a symtrain Interface, got {type(interface).__name__}")
        if loss_on not in ("mean", "per_sample"):
            raise SymmetryError(f"loss_on must be 'mean' or 'per_sample', got {loss_on!r}")
        if not noise_scale >= 0:
            raise SymmetryError(f"noise_scale must be >= 0, got {noise_scale!r}")
        self.interface = interface.attach(symmetry)
        self.samples_train = check_samples("samples_train", samples_train, optional=False)
        self.samples_eval = check_samples("samples_eval", samples_eval)
        self.noise_scale = float(noise_scale)
        self.loss_on = loss_on
        self.generator = generator
        self._relaxed: RelaxedElement | None = None
        self._aux: Tensor | None = None

    @classmethod
    def canonicalization(cls, base: nn.Module, symmetry: Symmetry,
                         interface: Interface) -> "ProbabilisticSymmetrization":
        """Learned canonicalization (Kaba et al. 2023): no noise, one sample."""
        return cls(base, symmetry, interface, samples_train=1, samples_eval=1, noise_scale=0.0)

    @property
    def num_samples(self) -> int:
        if not self.training and self.samples_eval is not None:
            return self.samples_eval
        return self.samples_train

    def aux_loss(self) -> Tensor:
        """Auxiliary loss of the last forward (0 when there is none)."""
        return self._aux if self._aux is not None else torch.zeros(())

    def repeat_target(self, y: Any, x: Any | None = None) -> Any:
        """Targets repeated ``k`` times (b-major), to match ``loss_on="per_sample"`` outputs."""
        context = self.symmetry.context(x) if x is not None else None
        return self.symmetry.output.repeat(y, self.num_samples, context)

    def forward(self, *inputs: Any, noise: Any = None) -> Any:
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        sym = self.symmetry
        sym.check_input(x)
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
            return self.average(xs, context, g, uniform_weights(context.batch_size, k, ref), repeated=True)
        finally:
            self._relaxed = None

    def elements(self, x: Any, context: GroupContext, noise: Any = None) -> tuple[Element, Tensor]:
        """Elements ``[B·k]`` (b-major) from the interface, and uniform weights ``[B, k]``.

        ``noise``: an explicit draw for the ``B·k`` replicated inputs, or ``None`` to
        sample one with ``noise_scale``."""
        k = self.num_samples
        g = self._sample(self.symmetry.input.repeat(x, k, context), context.repeat(k), noise, False)
        return g, uniform_weights(context.batch_size, k, reference_tensor(x))

    def _sample(self, xs: Any, context_k: GroupContext, noise: Any, soft: bool) -> Element:
        if noise is None:
            noise = self.interface.sample_noise(xs, context_k, self.noise_scale, self.generator)
        relaxed = self.interface.relaxed(xs, noise, context_k, soft=soft)
        self._relaxed = relaxed if soft else None
        self._aux = relaxed.aux_loss
        return relaxed.element

    # --- straight-through paths ---------------------------------------------------------
    def transform_input(self, g, xs, context):
        out = super().transform_input(g, xs, context)
        return self._straight_through(self.symmetry.input, g, out, context, inverse=True)

    def transform_output(self, g, ys, context):
        out = super().transform_output(g, ys, context)
        return self._straight_through(self.symmetry.output, g, out, context, inverse=False)

    def _straight_through(self, action, g, y, context, inverse):
        relaxed = self._relaxed
        if relaxed is None:
            return y
        group = self.symmetry.group
        for (factor, comp), soft in zip(iter_factors(group, g), relaxed.soft):
            if soft is None:
                continue
            if isinstance(factor, SymmetricGroup):
                # M = P_softᵀ P_hard (acting on g⁻¹·x); its transpose on g·y.
                n = comp.shape[1]
                m = soft.transpose(-1, -2).gather(2, comp[:, None, :].expand(-1, n, n))
                y = _st_matrix(action, y, m if inverse else m.transpose(-1, -2), context)
            elif factor.is_finite:
                # Soft g⁻¹·x = Σ π_j e_j⁻¹·x = Σ π_j (e_j⁻¹ g)·(g⁻¹·x); on outputs e_j g⁻¹.
                probs = soft
                if inverse:
                    inv = factor.inverse(factor.elements(context=context, device=probs.device))
                    probs = probs[:, _inverse_index(factor, inv, context)]
                    y = _st_finite(action, factor, y, probs, comp, context)
                else:
                    y = _st_finite(action, factor, y, probs, factor.inverse(comp), context)
        return y

    def extra_repr(self):
        return (f"{super().extra_repr()}, samples_train={self.samples_train}, "
                f"samples_eval={self.samples_eval}, noise_scale={self.noise_scale}, "
                f"loss_on={self.loss_on!r}")


def _inverse_index(factor, inv, context) -> Tensor:
    """Index ``i(j)`` with ``elements[i(j)] = elements[j]⁻¹``."""
    from ..actions.image import element_index

    elems = factor.elements(context=context, device=inv.device)
    return element_index(factor, inv, elems)


class LearnedCanonicalizer(nn.Module):
    """An interface used as a canonicalizer ``x -> g(x)`` (zero noise) for the
    :class:`~symtrain.symmetrize.Canonicalization` wrapper (Kaba et al. 2023).

    Gradients reach the interface through continuous elements (rotations); for
    discrete groups use :meth:`ProbabilisticSymmetrization.canonicalization`, which
    has the straight-through path. ``prior_weight`` adds a prior loss towards the
    identity, ``‖R − I‖²`` per matrix factor (see :meth:`aux_loss`).
    """

    def __init__(self, interface: Interface, symmetry: Symmetry, prior_weight: float = 0.0):
        super().__init__()
        self.interface = interface.attach(symmetry)
        self.symmetry = symmetry
        self.prior_weight = float(prior_weight)
        self._aux: Tensor | None = None

    def forward(self, x: Any) -> Element:
        context = self.symmetry.context(x)
        noise = self.interface.sample_noise(x, context, 0.0)
        g = self.interface.relaxed(x, noise, context).element
        self._aux = self.prior_weight * identity_prior(self.symmetry.group, g)
        return g

    def aux_loss(self) -> Tensor:
        """Prior loss of the last call (0 when none)."""
        return self._aux if self._aux is not None else torch.zeros(())


def identity_prior(group, g: Element) -> Tensor:
    """Mean squared distance ``‖R − I‖²`` of the matrix (rotation) parts of ``g`` to the
    identity; 0 for other factors."""
    total = None
    for factor, comp in iter_factors(group, g):
        rot = comp[0] if isinstance(comp, tuple) else comp
        if isinstance(rot, Tensor) and rot.is_floating_point() and rot.dim() == 3:
            eye = torch.eye(rot.shape[-1], device=rot.device, dtype=rot.dtype)
            term = (rot - eye).pow(2).sum((-1, -2)).mean()
            total = term if total is None else total + term
    return total if total is not None else torch.zeros(())
