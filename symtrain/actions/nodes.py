"""Sets and dense graphs: per-node features, node masks and adjacency tensors. Only
node-permuting factors (S_n) move them; every other group factor acts trivially (node
features are scalars)."""

from __future__ import annotations

import torch

from ..checks import check_prefix_mask
from ..errors import ShapeError
from ..groups.base import GroupContext
from ..groups.permutation import invert_permutation
from .base import Action, NodeView, matrix_on_nodes, permute_axis, require_tensor
from .registry import register_action


def permute_square(x, p):
    """``P A Pᵀ`` on axes 1 and 2 of ``x`` ``[B, n, n, ...]``, as one row selection over
    the flattened pair of axes (half the memory traffic of two permutations)."""
    inv = invert_permutation(p)
    b, n = inv.shape
    # entry (b, i, j) of the result is entry b·n² + inv[b, i]·n + inv[b, j] of the flat input
    starts = (inv + torch.arange(0, b * n, n, device=inv.device, dtype=inv.dtype)[:, None]) * n
    index = (starts[:, :, None] + inv[:, None, :]).reshape(-1)
    return x.reshape(b * n * n, *x.shape[3:]).index_select(0, index).reshape(x.shape)


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
            n = factor.num_nodes if factor.permutes_nodes else None
            if n is not None and n not in sizes:
                raise ShapeError(f"{factor} acts on {n} nodes but {self!r} got {sizes.pop()}")

    def act_factor(self, factor, g, x, context):
        if not factor.permutes_nodes:
            return x
        p = factor.permutation(g)
        if len(self.node_dims) == 1:
            return permute_axis(x, p, self.node_dims[0])
        return permute_square(x, p)

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[self.node_dims[0]], batch_size=x.shape[0])

    def soft_permute(self, x, matrix, context=None):
        if not x.is_floating_point():
            return x
        for d in self.node_dims:
            x = matrix_on_nodes(matrix, x, d)
        return x

    def points(self, x):
        return None

    def pixels(self, x):
        return None


@register_action("nodes")
class Nodes(_NodeAxes):
    """Per-node features ``[B, N, F]`` (or ``[B, N]``), permuted by S_n: ``(g·x)[p[j]] = x[j]``."""

    ndims: tuple[int, ...] = (2, 3)
    layout = "(B, N, F) or (B, N)"

    def node_view(self, x, context=None):
        v = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        return NodeView(features=v[..., None] if v.dim() == 2 else v)

    def scalar_field(self):
        return Nodes()


@register_action("mask")
class Mask(_NodeAxes):
    """A node mask ``[B, N]`` (True for real nodes, padding after them). Permuted like
    node features, and passed to S_n so permutations keep padding in place."""

    ndims = (2,)
    layout = "(B, N) bool"

    def check(self, x, group):
        super().check(x, group)
        if x.dtype != torch.bool:
            raise ShapeError(f"{self!r} expects a bool mask, got dtype {x.dtype}")
        check_prefix_mask(x, f"the mask of {self!r}")

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[1], mask=x, batch_size=x.shape[0])

    def node_view(self, x, context=None):
        return NodeView(mask=x)


@register_action("adjacency")
class Adjacency(_NodeAxes):
    """Dense adjacency ``[B, N, N]`` or with edge features ``[B, N, N, E]``:
    ``g·A = P A Pᵀ``."""

    node_dims = (1, 2)
    ndims = (3, 4)
    layout = "(B, N, N) or (B, N, N, E)"

    def node_view(self, x, context=None):
        a = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        if a.dim() == 3:
            return NodeView(adjacency=a)
        return NodeView(adjacency=a.sum(-1), edge_features=a)
