"""The interface contract for learned probabilistic symmetrization.

An :class:`Interface` is a small network that is itself equivariant and maps an input
``x`` plus noise ``ε`` to a group element, ``interface(h·x, h·ε) = h·interface(x, ε)``
for every ``h``. It knows

- ``group``: the group it produces elements of;
- ``noise_action``: how that group acts on its noise (so tests and callers can
  transform a fixed noise draw together with the input);
- how to read the data: :meth:`Interface.attach` binds it to the input action of a
  :class:`~symtrain.Symmetry` (the wrapper does this), and :func:`node_view` turns any
  node-structured input into dense tensors.

:meth:`Interface.relaxed` returns a :class:`RelaxedElement`: the hard element, the soft
part of each discrete factor (a soft permutation matrix, a distribution over a finite
group) for straight-through gradients, and an auxiliary loss (entropy penalty, prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...actions.base import Action, NodeView
from ...checks import check_prefix_mask
from ...errors import DTypeError, UnsupportedGroupError
from ...groups.base import Element, Group, GroupContext
from ...groups.registry import create_group
from ...symmetry import Symmetry
from ...tree import reference_tensor, tree_map


@dataclass
class RelaxedElement:
    """What an interface returns for a batch of ``B`` inputs.

    - ``element``: hard group elements ``[B]`` (the values used in the forward pass).
    - ``soft``: one entry per factor of the group: for S_n a soft permutation matrix
      ``[B, n, n]`` with the convention of ``SymmetricGroup.matrix`` (``P[p[j], j]``);
      for a finite group the probabilities ``[B, |G|]`` over ``group.elements()``;
      ``None`` for continuous factors (their elements are differentiable already) or
      when no soft part was asked for.
    - ``aux_loss``: scalar auxiliary loss (already weighted), to add to the task loss.
    """

    element: Element
    soft: tuple[Tensor | None, ...]
    aux_loss: Tensor


def groups_compatible(a: Group, b: Group) -> bool:
    """Whether elements of ``a`` can be used as elements of ``b`` (``S_n`` matches ``S5``)."""
    return b.compatible(a)


class Interface(nn.Module):
    """Base class of equivariant interface networks ``(x, ε) -> g``.

    Subclasses set ``group`` and ``noise_action`` and implement :meth:`sample_noise`
    and :meth:`relaxed`. ``forward(x, noise, context)`` returns the hard elements.
    """

    group: Group
    noise_action: Action
    #: Whether :func:`~symtrain.symmetrize.interfaces.default_interface` may pick this class
    #: for a group it supports; ``False`` for opt-in variants (they must be named).
    default_candidate: bool = True

    @classmethod
    def supports(cls, group: Group) -> bool:
        """Whether this interface can produce elements of ``group`` (used to pick the
        default interface of a group)."""
        return False

    @classmethod
    def infer_args(cls, symmetry: Symmetry, example: Any) -> dict[str, Any]:
        """Constructor arguments read off an example input (channel counts, ...)."""
        return {}

    def __init__(self, group: str | Group):
        super().__init__()
        self.group = create_group(group)
        self.input_action: Action | None = None

    # --- binding to the data ------------------------------------------------------
    def attach(self, symmetry: Symmetry) -> "Interface":
        """Bind to ``symmetry.input`` (how to read the data); check the groups agree."""
        if not isinstance(symmetry, Symmetry):
            raise TypeError(f"attach needs a symtrain.Symmetry, got {type(symmetry).__name__}")
        if not groups_compatible(self.group, symmetry.group):
            raise UnsupportedGroupError(
                f"the interface produces elements of {self.group} but the symmetry's group is "
                f"{symmetry.group}; build the interface for {symmetry.group} (e.g. a "
                "PermutationInterface for S_n, RotationInterface for O3/SO3/E3, "
                "ProductInterface for S_n x O3)")
        self.input_action = symmetry.input
        return self

    def _action(self) -> Action:
        if self.input_action is None:
            raise ValueError(f"{type(self).__name__} does not know how to read its input yet: "
                             "call interface.attach(symmetry) (ProbabilisticSymmetrization does)")
        return self.input_action

    # --- meeting the user's data ---------------------------------------------------
    def match(self, x: Any) -> Any:
        """``x`` as the interface network reads it: its floating tensors in the dtype of
        the interface's parameters. Data of lower precision (float16/bfloat16 through a
        float32 interface, as in mixed precision) is cast up, and the elements the
        interface returns are cast back (:func:`cast_floats`); data on another device than
        the parameters, or of higher precision (float64 through float32 weights: the
        elements would lose precision silently), is a :class:`DTypeError` naming both."""
        param = next(self.parameters(), None)
        ref = reference_tensor(x)
        if param is None:
            return x
        if ref.device != param.device:
            raise DTypeError(f"the input is on {ref.device} but the interface network's parameters are on "
                             f"{param.device}: move the wrapper (it holds the base model and the interface) "
                             f"with .to({str(ref.device)!r})")
        if not ref.is_floating_point() or ref.dtype == param.dtype:
            return x
        if torch.finfo(ref.dtype).bits > torch.finfo(param.dtype).bits:
            raise DTypeError(f"the input is {ref.dtype} but the interface network's parameters are "
                             f"{param.dtype}, so its group elements would be computed in lower precision "
                             f"than the data; convert the wrapper with .to({ref.dtype}) (e.g. .double())")
        return cast_floats(x, param.dtype)

    # --- the contract -------------------------------------------------------------
    def sample_noise(self, x: Any, context: GroupContext, scale: float,
                     generator: torch.Generator | None = None) -> Any:
        """A noise draw for the inputs ``x`` (batch ``B``); acted on by ``noise_action``."""
        raise NotImplementedError

    def relaxed(self, x: Any, noise: Any, context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        """Hard elements for ``x`` with ``noise``, plus soft parts if ``soft``."""
        raise NotImplementedError

    def forward(self, x: Any, noise: Any = None, context: GroupContext | None = None) -> Element:
        """Hard elements ``[B]`` (noise ``None``: zero noise, i.e. a canonicalization)."""
        if context is None:
            context = self._action().context(x)
        if noise is None:
            noise = self.sample_noise(x, context, 0.0)
        return self.relaxed(x, noise, context).element


def cast_floats(x: Any, dtype: torch.dtype) -> Any:
    """``x`` (a tensor tree) with its floating tensors in ``dtype``; others unchanged."""
    return tree_map(lambda t: t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() else t, x)


# --- reading node-structured data ------------------------------------------------------
def node_view(action: Action, x: Any, context: GroupContext | None = None) -> NodeView:
    """Dense per-node tensors of ``x`` read through its ``action``
    (:meth:`Action.node_view <symtrain.actions.Action.node_view>`), with the mask of
    ``context`` when the data carry none."""
    view = action.node_view(x, context)
    if view.mask is None and context is not None:
        view.mask = context.mask
    if view.mask is not None:
        check_prefix_mask(view.mask)
    return view
