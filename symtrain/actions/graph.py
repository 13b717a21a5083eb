"""PyTorch Geometric graphs: ``Data`` / ``Batch`` with nodes stored flat.

S_n elements are ``[B, N_max]`` permutations of each graph's nodes (padded like
``torch_geometric.utils.to_dense_batch``); on a batch they become one permutation of
all nodes, which permutes every node attribute and relabels ``edge_index`` (edge order
and edge attributes are kept). Node positions and vectors named in the constructor are
also rotated (and positions translated) by matrix and Euclidean factors.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import ShapeError
from ..groups.base import GroupContext
from ..groups.euclidean import Euclidean
from ..groups.permutation import SymmetricGroup
from .base import Action, rotate_last


def _as_batch(x):
    from torch_geometric.data import Batch, Data

    if isinstance(x, Batch):
        return x
    if isinstance(x, Data):
        return Batch.from_data_list([x])
    raise ShapeError(f"Graph expects a torch_geometric Data or Batch, got {type(x).__name__}")


def _dense_layout(ptr: Tensor) -> tuple[Tensor, int]:
    """Mask ``[B, N_max]`` of real nodes for a flat batch with offsets ``ptr``."""
    sizes = ptr[1:] - ptr[:-1]
    n_max = int(sizes.max()) if sizes.numel() else 0
    mask = torch.arange(n_max, device=ptr.device)[None, :] < sizes[:, None]
    return mask, n_max


def flat_permutation(p: Tensor, context: GroupContext) -> Tensor:
    """``[B, N_max]`` per-graph permutations → one permutation of all flat nodes."""
    if context is None or context.ptr is None or context.mask is None:
        raise ValueError("acting on flat graph nodes needs the batch layout (context.ptr)")
    return (p + context.ptr[:-1, None])[context.mask]


def _transform_vectors(factor, g, v, batch_vec, translate):
    if isinstance(factor, Euclidean):
        rot, t = g
        out = rotate_last(v, rot[batch_vec])
        return out + t[batch_vec].to(v.dtype) if translate else out
    return rotate_last(v, factor.matrix(g, v.dtype)[batch_vec])


class Graph(Action):
    """A PyG ``Data`` or ``Batch``. The action never modifies the caller's object.

    Args:
        positions: node attributes rotated and translated (e.g. ``("pos",)``).
        vectors: node attributes rotated only (e.g. ``("vel",)``).
    """

    def __init__(self, positions: Sequence[str] = ("pos",), vectors: Sequence[str] = ()):
        self.positions = tuple(positions)
        self.vectors = tuple(vectors)

    def supports(self, factor):
        if isinstance(factor, (SymmetricGroup, Euclidean)) or factor.matrix_dim is not None:
            return None
        return f"{factor} has no action on graphs"

    def check(self, x, group):
        batch = _as_batch(x)
        if batch.num_nodes is None:
            raise ShapeError("Graph got a graph without nodes")

    def batch_size(self, x):
        return _as_batch(x).num_graphs

    def context(self, x, mask=None):
        batch = _as_batch(x)
        ptr = batch.ptr
        mask, n_max = _dense_layout(ptr)
        centroid = None
        for key in self.positions:
            pos = getattr(batch, key, None)
            if pos is not None:
                from torch_geometric.utils import scatter

                centroid = scatter(pos, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
                break
        return GroupContext(num_nodes=n_max, mask=mask, ptr=ptr, centroid=centroid,
                            batch_size=batch.num_graphs)

    def act(self, group, g, x, context=None):
        batch = _as_batch(x).clone()
        if context is None:
            context = self.context(batch)
        return super().act(group, g, batch, context)

    def act_factor(self, factor, g, batch, context):
        if isinstance(factor, SymmetricGroup):
            perm = flat_permutation(g, context)
            inv = torch.empty_like(perm).scatter_(0, perm, torch.arange(perm.numel(), device=perm.device))
            for key, value in batch.items():
                if key in ("batch", "ptr") or not isinstance(value, Tensor):
                    continue
                if key == "edge_index":
                    batch.edge_index = perm[value]
                elif batch.is_node_attr(key):
                    batch[key] = value[inv]
            return batch
        for key in self.positions + self.vectors:
            value = getattr(batch, key, None)
            if value is None:
                raise ShapeError(f"Graph was told to rotate node attribute {key!r}, which this graph lacks")
            batch[key] = _transform_vectors(factor, g, value, batch.batch, key in self.positions)
        return batch

    def repeat(self, x, k, context=None):
        from torch_geometric.data import Batch

        batch = _as_batch(x)
        if k == 1:
            return batch
        graphs = batch.to_data_list()
        return Batch.from_data_list([graph for graph in graphs for _ in range(k)])

    def mean(self, y, weights, context=None):
        raise TypeError("Graph outputs cannot be averaged; return tensors from the model and use "
                        "GraphNodes (node-level) or Trivial (graph-level) as the output action")


class GraphNodes(Action):
    """Node-level outputs of a model on a PyG batch: a flat tensor ``[num_nodes, ...]``.

    ``kind`` is ``"scalar"`` (permuted only), ``"vector"`` (rotated) or ``"point"``
    (rotated and translated). Uses the batch layout of the input (its context)."""

    def __init__(self, kind: str = "scalar"):
        if kind not in ("scalar", "vector", "point"):
            raise ValueError(f"kind must be 'scalar', 'vector' or 'point', got {kind!r}")
        self.kind = kind

    def supports(self, factor):
        if isinstance(factor, SymmetricGroup) or self.kind == "scalar":
            return None
        if isinstance(factor, Euclidean) or factor.matrix_dim is not None:
            return None
        return f"{factor} cannot rotate node vectors"

    def batch_size(self, x):
        raise TypeError("GraphNodes outputs are flat over nodes; the batch size comes from the input")

    def act_factor(self, factor, g, y, context):
        if isinstance(factor, SymmetricGroup):
            perm = flat_permutation(g, context)
            return torch.empty_like(y).index_copy_(0, perm, y)
        if self.kind == "scalar":
            return y
        sizes = context.ptr[1:] - context.ptr[:-1]
        batch_vec = torch.repeat_interleave(torch.arange(sizes.numel(), device=y.device), sizes)
        return _transform_vectors(factor, g, y, batch_vec, self.kind == "point")

    def repeat(self, y, k, context=None):
        if k == 1:
            return y
        return y.index_select(0, origin_index(context, k))

    def mean(self, y, weights, context=None):
        b, k = weights.shape
        origin = origin_index(context, k)
        ctx_k = context.repeat(k)
        sizes = ctx_k.ptr[1:] - ctx_k.ptr[:-1]
        graph = torch.repeat_interleave(torch.arange(b * k, device=y.device), sizes)
        w = weights.reshape(-1)[graph].to(y.dtype).reshape(-1, *([1] * (y.dim() - 1)))
        out = y.new_zeros((int(context.ptr[-1]),) + tuple(y.shape[1:]))
        return out.index_add_(0, origin, y * w)


def origin_index(context: GroupContext | None, k: int) -> Tensor:
    """For flat nodes of a batch whose graphs are each repeated ``k`` times (graph 0 copy 0,
    graph 0 copy 1, …), the index of every node in the original batch."""
    if context is None or context.ptr is None:
        raise ValueError("flat node outputs need the input's batch layout (context.ptr)")
    ptr = context.ptr
    sizes = (ptr[1:] - ptr[:-1]).repeat_interleave(k)
    graph = torch.repeat_interleave(torch.arange(sizes.numel(), device=ptr.device), sizes)
    rep_ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    local = torch.arange(graph.numel(), device=ptr.device) - rep_ptr[graph]
    return ptr[graph // k] + local
