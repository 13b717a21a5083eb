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

from ..errors import ShapeError, UnsupportedGroupError
from ..groups.base import GroupContext, element_batch_size
from .base import Action, NodeView, matrix_on_nodes, rotate_last
from .registry import register_action


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
    out = rotate_last(v, factor.rotation(g, v.dtype)[batch_vec])
    if translate and factor.has_translations:
        out = out + factor.translation(g, v.dtype)[batch_vec]
    return out


def _soft_permute_flat(m: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``m @ y`` per graph for flat node data ``y`` ``[num_nodes, ...]`` (layout ``mask``)."""
    dense = y.new_zeros(mask.shape + y.shape[1:])
    dense[mask] = y
    return matrix_on_nodes(m, dense, 1)[mask]


@register_action("graph")
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
        if factor.permutes_nodes or factor.vector_dim is not None:
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

    def apply(self, group, g, x, context=None):
        batch = _as_batch(x).clone()
        if context is None:
            context = self.context(batch)
        return super().apply(group, g, batch, context)

    def act_factor(self, factor, g, batch, context):
        if factor.permutes_nodes:
            perm = flat_permutation(factor.permutation(g), context)
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

    def _dense(self, batch, key, n):
        from torch_geometric.utils import to_dense_batch

        return to_dense_batch(batch[key], batch.batch, batch_size=batch.num_graphs, max_num_nodes=n)[0]

    def points(self, x):
        batch = _as_batch(x)
        for key in self.positions + self.vectors:
            if getattr(batch, key, None) is not None:
                return self._dense(batch, key, None)
        return None

    def pixels(self, x):
        return None

    def node_view(self, x, context=None):
        from torch_geometric.utils import to_dense_adj, to_dense_batch

        batch = _as_batch(x)
        b = batch.num_graphs
        _, mask = to_dense_batch(batch.batch.new_zeros(batch.num_nodes, 1), batch.batch, batch_size=b)
        n = mask.shape[1]
        view = NodeView(mask=mask, adjacency=to_dense_adj(batch.edge_index, batch.batch,
                                                          batch_size=b, max_num_nodes=n))
        edge_attr = getattr(batch, "edge_attr", None)
        if isinstance(edge_attr, Tensor) and edge_attr.shape[0] == batch.edge_index.shape[1]:
            attr = edge_attr.reshape(edge_attr.shape[0], -1).to(torch.get_default_dtype())
            view.edge_features = to_dense_adj(batch.edge_index, batch.batch, attr,
                                              batch_size=b, max_num_nodes=n)
        if batch.x is not None:
            view.features = to_dense_batch(batch.x.reshape(batch.num_nodes, -1).to(torch.get_default_dtype()),
                                           batch.batch, batch_size=b, max_num_nodes=n)[0]
        for key in self.positions + self.vectors:
            if getattr(batch, key, None) is not None:
                dense = self._dense(batch, key, n)
                if key in self.positions and view.points is None:
                    view.points = dense
                else:
                    view.vectors.append(dense)
        return view

    def soft_permute(self, x, matrix, context=None):
        """Float node attributes moved by ``matrix`` (per graph). The edge structure
        (``edge_index``) is discrete and carries no gradient: a graph without float node
        attributes is an error, since no gradient would reach the interface."""
        batch = _as_batch(x).clone()
        if context is None:
            context = self.context(batch)
        keys = [key for key, value in batch.items() if key not in ("batch", "ptr")
                and isinstance(value, Tensor) and value.is_floating_point() and batch.is_node_attr(key)]
        if not keys:
            raise UnsupportedGroupError(
                "a soft permutation (the straight-through gradient of ProbabilisticSymmetrization) "
                "acts on a PyG graph only through float node attributes, and this graph has none: "
                "its edge_index is discrete, so no gradient would reach the interface; add node "
                "features or use a dense Adjacency input")
        for key in keys:
            batch[key] = _soft_permute_flat(matrix, batch[key], context.mask)
        return batch

    def repeat(self, x, k, context=None):
        from torch_geometric.data import Batch

        batch = _as_batch(x)
        if k == 1:
            return batch
        graphs = batch.to_data_list()
        return Batch.from_data_list([graph for graph in graphs for _ in range(k)])

    def take(self, x, rows, context=None):
        from torch_geometric.data import Batch

        return Batch.from_data_list(_as_batch(x).index_select(rows))

    def mean(self, y, weights, context=None):
        raise TypeError("Graph outputs cannot be averaged; return tensors from the model and use "
                        "GraphNodes (node-level) or Trivial (graph-level) as the output action")


@register_action("graph_nodes")
class GraphNodes(Action):
    """Node-level outputs of a model on a PyG batch: a flat tensor ``[num_nodes, ...]``.

    ``kind`` is ``"scalar"`` (permuted only), ``"vector"`` (rotated) or ``"point"``
    (rotated and translated). Uses the batch layout of the input (its context)."""

    def __init__(self, kind: str = "scalar"):
        if kind not in ("scalar", "vector", "point"):
            raise ValueError(f"kind must be 'scalar', 'vector' or 'point', got {kind!r}")
        self.kind = kind

    def supports(self, factor):
        if factor.permutes_nodes or self.kind == "scalar" or factor.vector_dim is not None:
            return None
        return f"{factor} cannot rotate node vectors"

    def points(self, x):
        return None

    def pixels(self, x):
        return None

    def rows(self, y, context):
        """Flat node outputs regrouped per graph, zero padded: ``[B, N_max·...]``."""
        from torch_geometric.utils import to_dense_batch

        batch_vec = node_graphs(context.ptr, y.device)
        graphs = context.ptr.numel() - 1
        dense, _ = to_dense_batch(y, batch_vec, batch_size=graphs)
        return dense.reshape(graphs, -1)

    def soft_permute(self, y, matrix, context=None):
        if not y.is_floating_point():
            return y
        if context is None or context.mask is None:
            raise ValueError("flat node outputs need the input's batch layout (context.mask)")
        return _soft_permute_flat(matrix, y, context.mask)

    def batch_size(self, x):
        raise TypeError("GraphNodes outputs are flat over nodes; the batch size comes from the input")

    def act(self, group, g, y, context=None):
        """``g·y``; ``context`` (the input's, ``symmetry.context(x)``) gives the batch layout."""
        self.check_group(group)
        if context is None or context.ptr is None:
            raise ShapeError("GraphNodes outputs are flat over the nodes of a PyG batch: pass the "
                             "input's context (symmetry.context(x)) for its layout")
        if not isinstance(y, Tensor) or y.dim() < 1 or y.shape[0] != int(context.ptr[-1]):
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ShapeError(f"{self!r} expects one row per node ({int(context.ptr[-1])} nodes), got {got}")
        n = element_batch_size(g)
        if n != context.batch_size:
            raise ShapeError(f"{self!r}: {n} group elements for a batch of {context.batch_size} graphs")
        return self.apply(group, g, y, context)

    def act_factor(self, factor, g, y, context):
        if factor.permutes_nodes:
            perm = flat_permutation(factor.permutation(g), context)
            return torch.empty_like(y).index_copy_(0, perm, y)
        if self.kind == "scalar":
            return y
        return _transform_vectors(factor, g, y, node_graphs(context.ptr, y.device), self.kind == "point")

    def repeat(self, y, k, context=None):
        if k == 1:
            return y
        return y.index_select(0, origin_index(context, k))

    def take(self, y, rows, context=None):
        return y[_graphs_at(rows, context, y.device)]

    def put(self, y, rows, context):
        keep = _graphs_at(rows, context, y.device)
        out = y.new_zeros((keep.numel(),) + tuple(y.shape[1:]))
        out[keep] = y
        return out

    def mean(self, y, weights, context=None):
        k = weights.shape[1]
        origin = origin_index(context, k)
        graph = node_graphs(context.repeat(k).ptr, y.device)
        w = weights.reshape(-1)[graph].to(y.dtype).reshape(-1, *([1] * (y.dim() - 1)))
        out = y.new_zeros((int(context.ptr[-1]),) + tuple(y.shape[1:]))
        return out.index_add_(0, origin, y * w)


def node_graphs(ptr: Tensor, device=None) -> Tensor:
    """The graph of every flat node ``[num_nodes]`` of a batch with offsets ``ptr``
    (PyG's ``batch`` vector)."""
    sizes = ptr[1:] - ptr[:-1]
    device = ptr.device if device is None else device
    return torch.repeat_interleave(torch.arange(sizes.numel(), device=device), sizes.to(device))


def _graphs_at(rows: Tensor, context: GroupContext | None, device) -> Tensor:
    """Which flat nodes ``[num_nodes]`` (bool) belong to the graphs at ``rows``."""
    if context is None or context.ptr is None:
        raise ValueError("flat node outputs need the input's batch layout (context.ptr)")
    return torch.isin(node_graphs(context.ptr, device), rows.to(device))


def origin_index(context: GroupContext | None, k: int) -> Tensor:
    """For flat nodes of a batch whose graphs are each repeated ``k`` times (graph 0 copy 0,
    graph 0 copy 1, …), the index of every node in the original batch."""
    if context is None or context.ptr is None:
        raise ValueError("flat node outputs need the input's batch layout (context.ptr)")
    ptr = context.ptr
    sizes = (ptr[1:] - ptr[:-1]).repeat_interleave(k)
    rep_ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    graph = node_graphs(rep_ptr)
    local = torch.arange(graph.numel(), device=ptr.device) - rep_ptr[graph]
    return ptr[graph // k] + local
