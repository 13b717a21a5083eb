"""Sets and dense graphs: per-node features, node masks and adjacency tensors. Only
S_n moves them; every other group factor acts trivially (node features are scalars)."""

from __future__ import annotations

import torch

from ..errors import ShapeError
from ..groups.base import GroupContext
from ..groups.permutation import SymmetricGroup
from .base import Action, permute_axis, require_tensor


class _NodeAxes(Action):
    node_dims: tuple[int, ...] = (1,)
    ndims: tuple[int, ...] = (3,)
    layout = "(B, N, F)"

    def check(self, x, group):
        x = require_tensor(self, x, self.ndims, self.layout)
        sizes = {x.shape[d] for d in self.node_dims}
        if len(sizes) != 1:
            raise ShapeError(f"{self!r} expects equal node axes {self.layout}, got {tuple(x.shape)}")
        for factor in group.factors:
            if isinstance(factor, SymmetricGroup) and factor.n is not None and factor.n not in sizes:
                raise ShapeError(f"{factor} acts on {factor.n} nodes but {self!r} got {sizes.pop()}")

    def act_factor(self, factor, g, x, context):
        if not isinstance(factor, SymmetricGroup):
            return x
        for d in self.node_dims:
            x = permute_axis(x, g, d)
        return x

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[self.node_dims[0]], batch_size=x.shape[0])


class Nodes(_NodeAxes):
    """Per-node features ``[B, N, F]`` (or ``[B, N]``), permuted by S_n: ``(g·x)[p[j]] = x[j]``."""

    ndims = (2, 3)
    layout = "(B, N, F) or (B, N)"


class Mask(_NodeAxes):
    """A node mask ``[B, N]`` (True for real nodes, padding after them). Permuted like
    node features, and passed to S_n so permutations keep padding in place."""

    ndims = (2,)
    layout = "(B, N) bool"

    def check(self, x, group):
        super().check(x, group)
        if x.dtype != torch.bool:
            raise ShapeError(f"{self!r} expects a bool mask, got dtype {x.dtype}")

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[1], mask=x, batch_size=x.shape[0])


class Adjacency(_NodeAxes):
    """Dense adjacency ``[B, N, N]`` or with edge features ``[B, N, N, E]``:
    ``g·A = P A Pᵀ``."""

    node_dims = (1, 2)
    ndims = (3, 4)
    layout = "(B, N, N) or (B, N, N, E)"
