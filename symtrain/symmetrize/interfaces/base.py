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

from ...actions.base import Action
from ...actions.graph import Graph
from ...actions.nodes import Adjacency, Mask, Nodes
from ...actions.points import Points, Vectors
from ...errors import ShapeError, UnsupportedGroupError
from ...groups.base import Element, Group, GroupContext
from ...groups.permutation import SymmetricGroup
from ...groups.registry import create_group
from ...symmetry import Symmetry
from ..frames import _fields as _leaves


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
    fa, fb = a.factors, b.factors
    if len(fa) != len(fb):
        return False
    for x, y in zip(fa, fb):
        if isinstance(x, SymmetricGroup) and isinstance(y, SymmetricGroup):
            if x.n is not None and y.n is not None and x.n != y.n:
                return False
        elif x != y:
            return False
    return True


class Interface(nn.Module):
    """Base class of equivariant interface networks ``(x, ε) -> g``.

    Subclasses set ``group`` and ``noise_action`` and implement :meth:`sample_noise`
    and :meth:`relaxed`. ``forward(x, noise, context)`` returns the hard elements.
    """

    group: Group
    noise_action: Action

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


# --- reading node-structured data ------------------------------------------------------
@dataclass
class NodeView:
    """Dense views of a node-structured input (``B`` samples, ``N`` node slots).

    ``features``: ``[B, N, F]`` per-node floats (node features, and for S_n-only inputs
    also points/vectors), ``adjacency``: ``[B, N, N]`` or ``None``, ``points``: positions
    ``[B, N, d]`` or ``None``, ``vectors``: list of ``[B, N, d]``, ``mask``: ``[B, N]``."""

    features: Tensor | None
    adjacency: Tensor | None
    points: Tensor | None
    vectors: list[Tensor]
    mask: Tensor | None


def node_view(action: Action, x: Any, context: GroupContext | None = None) -> NodeView:
    """Dense per-node tensors of ``x`` read through its ``action`` (Nodes, Points,
    Vectors, Adjacency, Mask, Graph, and Fields of them)."""
    feats, vectors = [], []
    adjacency = points = mask = None
    for act, value in _leaves(action, x):
        if isinstance(act, Mask):
            mask = value
        elif isinstance(act, Adjacency):
            a = value.to(torch.get_default_dtype()) if not value.is_floating_point() else value
            adjacency = a if a.dim() == 3 else a.sum(-1)
        elif isinstance(act, Nodes):
            v = value if value.is_floating_point() else value.to(torch.get_default_dtype())
            feats.append(v[..., None] if v.dim() == 2 else v)
        elif isinstance(act, Vectors):
            if not act.nodes:
                raise ShapeError("interfaces need per-node data; Vectors(nodes=False) has no nodes")
            if isinstance(act, Points) and points is None:
                points = value
            else:
                vectors.append(value)
        elif isinstance(act, Graph):
            from torch_geometric.data import Batch
            from torch_geometric.utils import to_dense_adj, to_dense_batch

            batch = value if isinstance(value, Batch) else Batch.from_data_list([value])
            b = batch.num_graphs
            if batch.x is not None:
                f, mask = to_dense_batch(batch.x.reshape(batch.num_nodes, -1).to(
                    torch.get_default_dtype()), batch.batch, batch_size=b)
                feats.append(f)
            else:
                _, mask = to_dense_batch(batch.batch.new_zeros(batch.num_nodes, 1), batch.batch,
                                         batch_size=b)
            n = mask.shape[1]
            adjacency = to_dense_adj(batch.edge_index, batch.batch, batch_size=b, max_num_nodes=n)
            for key in act.positions + act.vectors:
                v = getattr(batch, key, None)
                if v is not None:
                    dense = to_dense_batch(v, batch.batch, batch_size=b, max_num_nodes=n)[0]
                    if key in act.positions and points is None:
                        points = dense
                    else:
                        vectors.append(dense)
    if mask is None and context is not None:
        mask = context.mask
    features = torch.cat(feats, -1) if feats else None
    return NodeView(features, adjacency, points, vectors, mask)
