"""The action contract: how a group acts on one kind of data.

An :class:`Action` knows one data type (points, images, graphs, …), not the groups: it
acts factor by factor, asking each factor of a (product) group what it can do
(:attr:`~symtrain.groups.Group.permutes_nodes`, :meth:`~symtrain.groups.Group.rotation`,
:meth:`~symtrain.groups.Group.translation`, …), never which class it is.

Other modules in turn ask an action what it can do, through capability methods that
raise :class:`~symtrain.errors.UnsupportedGroupError` naming the action until a subclass
declares them:

- :meth:`Action.leaves`: the ``(action, value)`` leaves it holds (``Fields`` has many);
- :meth:`Action.node_view`: dense per-node tensors (for interfaces and sort keys);
- :meth:`Action.points`: a point cloud ``[B, N, d]`` (for PCA frames);
- :meth:`Action.pixels`: an image ``[B, C, H, W]`` (for image interfaces);
- :meth:`Action.soft_permute`: how a soft permutation matrix acts (for the
  straight-through gradient of learned symmetrization).

Adding a data type is one new subclass.

All actions are *left actions* (``act(g, act(h, x)) == act(g∘h, x)``), batched over the
leading dimension of ``x`` and of the group elements ``g``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import Tensor

from ..errors import ShapeError, UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, element_batch_size, element_tile, iter_factors
from ..groups.permutation import TensorMemo, invert_permutation
from ..tree import leaves, tree_map


@dataclass
class NodeView:
    """Dense views of a node-structured input (``B`` samples, ``N`` node slots).

    - ``features``: ``[B, N, F]`` per-node scalars (invariant to every factor but S_n);
    - ``adjacency``: ``[B, N, N]`` (edge features summed) or ``None``;
    - ``points``: positions ``[B, N, d]`` or ``None``;
    - ``vectors``: further vector fields, each ``[B, N, d]``;
    - ``mask``: ``[B, N]`` bool (True for real nodes) or ``None``;
    - ``edge_features``: ``[B, N, N, E]`` per-edge data beside ``adjacency`` (a dense
      adjacency's edge axis, a PyG graph's ``edge_attr``) or ``None``, for readers that
      tell edges apart by their features (minimal S_n frames colour edges by them).
    """

    features: Tensor | None = None
    adjacency: Tensor | None = None
    points: Tensor | None = None
    vectors: list[Tensor] = field(default_factory=list)
    mask: Tensor | None = None
    edge_features: Tensor | None = None

    def merge(self, other: "NodeView") -> "NodeView":
        """Both views side by side: features concatenated, the first points kept as
        points and later ones moved to ``vectors`` as displacements from the first
        (``later − first``: translation-invariant, so interfaces may treat every vector
        channel alike under E(d))."""
        if self.adjacency is not None and other.adjacency is not None:
            raise ShapeError("the input holds two adjacency fields; an interface reads one graph")
        feats = [f for f in (self.features, other.features) if f is not None]
        points, vectors = self.points, self.vectors + other.vectors
        if other.points is not None:
            if points is None:
                points = other.points
            else:
                vectors = vectors + [other.points - points]
        return NodeView(cat_features(feats),
                        self.adjacency if self.adjacency is not None else other.adjacency,
                        points, vectors, self.mask if self.mask is not None else other.mask,
                        self.edge_features if self.edge_features is not None else other.edge_features)

    def sort_keys(self, centroid: Tensor | None = None) -> Tensor:
        """Per-node keys ``[B, N, F]`` invariant to every factor but S_n: node features,
        degrees, distances of the points to ``centroid`` and the norms of the vectors."""
        keys = []
        if self.features is not None:
            keys.append(self.features)
        if self.adjacency is not None:
            keys.append(self.adjacency.sum(2, keepdim=True))
        if self.points is not None:
            centred = self.points if centroid is None else \
                self.points - centroid[:, None, :].to(self.points.dtype)
            keys.append(centred.norm(dim=-1, keepdim=True))
        keys += [v.norm(dim=-1, keepdim=True) for v in self.vectors]
        if not keys:
            raise UnsupportedGroupError("no node data in the input to sort nodes by: "
                                        "pass SortFrame(key=...)")
        dtype = keys[0].dtype
        for k in keys[1:]:
            dtype = torch.promote_types(dtype, k.dtype)
        return torch.cat([k.to(dtype) for k in keys], -1)


class Action(ABC):
    """How group elements act on one kind of data. Subclasses implement
    :meth:`act_factor` (and :meth:`supports`, :meth:`check`, :meth:`context` as needed)."""

    # --- what the action supports ---------------------------------------------------
    def supports(self, factor: Group) -> str | None:
        """``None`` if this action handles ``factor`` exactly, else the reason it does not."""
        return None

    def check_group(self, group: Group) -> None:
        for factor in group.factors:
            reason = self.supports(factor)
            if reason is not None:
                raise UnsupportedGroupError(f"{self!r} cannot act with {factor}: {reason}")

    def check(self, x: Any, group: Group) -> None:
        """Raise :class:`ShapeError` if ``x`` does not fit this action and group (the
        default accepts anything; subclasses that can tell check here)."""
        return None

    # --- acting ---------------------------------------------------------------------
    def act(self, group: Group, g: Element, x: Any, context: GroupContext | None = None) -> Any:
        """``g·x``, after checking that ``x`` fits this action and ``group`` (shape, layout,
        group/data mismatch) and that ``g`` has one element per sample."""
        self._check_acting(group, g, x)
        return self.apply(group, g, x, context)

    def _check_acting(self, group: Group, g: Element, x: Any) -> None:
        self.check_group(group)
        self.check(x, group)
        n, b = element_batch_size(g), self.batch_size(x)
        if n != b:
            raise ShapeError(f"{self!r}: {n} group elements for a batch of {b} samples")

    def act_mean(self, group: Group, g: Element, y: Any, weights: Tensor,
                 context_k: GroupContext | None = None, context: GroupContext | None = None) -> Any:
        """``Σ_k w_k g_k·y_k`` per sample: ``y`` holds ``k`` copies of each sample (``[B·k]``,
        b-major), ``g`` their elements (``[B·k]``), ``weights`` ``[B, k]`` (rows summing to
        one); the wrappers' last step. ``context_k``: the context of the ``B·k`` copies,
        ``context``: the un-repeated samples'. Default: :meth:`act` (with its checks), then
        :meth:`mean`; an action with a faster :meth:`apply_mean` uses
        :meth:`checked_apply_mean` for it."""
        check_mean_weights(weights, element_batch_size(g), context)
        return self.mean(self.act(group, g, y, context_k), weights, context)

    def checked_apply_mean(self, group: Group, g: Element, y: Any, weights: Tensor,
                           context_k: GroupContext | None = None,
                           context: GroupContext | None = None) -> Any:
        """:meth:`act_mean` for an action whose :meth:`apply_mean` is faster than
        :meth:`apply` then :meth:`mean` and whose :meth:`act` checks as the default does:
        the same checks, then :meth:`apply_mean`. Such an action sets
        ``act_mean = Action.checked_apply_mean``."""
        self._check_acting(group, g, y)
        check_mean_weights(weights, element_batch_size(g), context)
        return self.apply_mean(group, g, y, weights, context_k, context)

    def apply_mean(self, group: Group, g: Element, y: Any, weights: Tensor,
                   context_k: GroupContext | None = None, context: GroupContext | None = None) -> Any:
        """:meth:`act_mean` without its checks: :meth:`apply`, then :meth:`mean`. Actions may
        override it with one product that moves and averages the copies at once."""
        return self.mean(self.apply(group, g, y, context_k), weights, context)

    def apply(self, group: Group, g: Element, x: Any, context: GroupContext | None = None) -> Any:
        """``g·x`` without the checks of :meth:`act`: the fast path for data already
        checked (the wrappers check their input once per call)."""
        for factor, gf in iter_factors(group, g):
            x = self.act_factor(factor, gf, x, context)
        return x

    def apply_repeated(self, group: Group, g: Element, x: Any, k: int,
                       context: GroupContext | None = None) -> Any:
        """``[g_0·x_0, …, g_{k−1}·x_0, g_k·x_1, …]``: each sample repeated ``k`` times
        (b-major) and each copy moved by its own element (``g``: ``[B·k]``). ``context``:
        the un-repeated input's. As :meth:`repeat` then :meth:`apply` (unchecked);
        actions may override it with a path that does not copy the input first."""
        return self.apply(group, g, self.repeat(x, k, context), None if context is None else context.repeat(k))

    def apply_tiled(self, group: Group, elements: Element, y: Any,
                    context: GroupContext | None = None) -> Any:
        """``y`` holds ``m`` copies per sample (``[B·m]``, b-major); copy ``j`` of every
        sample is moved by ``elements[j]`` (``elements``: ``[m]``, shared by all samples).
        ``context``: the context of ``y`` (of the ``B·m`` copies). Unchecked, like
        :meth:`apply`; actions may override it with a faster batched path."""
        m = element_batch_size(elements)
        batch = context.batch_size if context is not None and context.batch_size else self.batch_size(y)
        return self.apply(group, element_tile(elements, batch // m), y, context)

    def orbit(self, group: Group, elements: Element, x: Any, context: GroupContext | None = None) -> Any:
        """``[e_0·x_0, …, e_{m−1}·x_0, e_0·x_1, …]``: every sample moved by each of the
        ``m`` shared ``elements`` (b-major), as :meth:`repeat` then :meth:`apply_tiled`.
        ``context``: the un-repeated input's."""
        m = element_batch_size(elements)
        return self.apply_tiled(group, elements, self.repeat(x, m, context),
                                None if context is None else context.repeat(m))

    @abstractmethod
    def act_factor(self, factor: Group, g: Element, x: Any, context: GroupContext | None) -> Any:
        ...

    def context(self, x: Any, mask: Tensor | None = None) -> GroupContext:
        """What the group needs to know about ``x`` (node count, mask, centroid)."""
        return GroupContext(batch_size=self.batch_size(x))

    # --- what the action can tell about its data ---------------------------------------
    @property
    def is_invariant(self) -> bool:
        """Whether every group element leaves the data unchanged (the trivial action)."""
        return False

    def leaves(self, x: Any) -> list[tuple["Action", Any]]:
        """The ``(action, value)`` leaves of ``x`` (one for a plain action)."""
        return [(self, x)]

    def node_view(self, x: Any, context: GroupContext | None = None) -> NodeView:
        """Dense per-node tensors of ``x`` (interfaces and sort keys read these)."""
        raise UnsupportedGroupError(f"{self!r} has no node view: it does not say which of its "
                                    "data are per-node features, points or an adjacency "
                                    "(needed by interfaces and sort frames)")

    def points(self, x: Any) -> Tensor | None:
        """Positions or vectors ``[B, N, d]`` to compute a PCA frame from (``None``: none)."""
        raise UnsupportedGroupError(f"{self!r} does not say whether it holds points "
                                    "(needed by PCA frames)")

    def pixels(self, x: Any) -> Tensor | None:
        """An image ``[B, C, H, W]`` of the data (``None``: none)."""
        raise UnsupportedGroupError(f"{self!r} does not say whether it holds an image "
                                    "(needed by image interfaces)")

    def soft_permute(self, x: Any, matrix: Tensor, context: GroupContext | None = None) -> Any:
        """``x`` moved by a soft (dense, differentiable) node permutation ``matrix``
        ``[B, n, n]`` that acts as ``g·x = M x`` on node axes (``M A Mᵀ`` on adjacency).
        With the hard permutation matrix it equals :meth:`act`; learned symmetrization
        uses it for the straight-through gradient. Data without a float node axis is
        returned unchanged."""
        raise UnsupportedGroupError(f"{self!r} does not say how a soft permutation matrix acts "
                                    "on it, so no straight-through gradient can reach the "
                                    "interface (ProbabilisticSymmetrization with an S_n "
                                    "factor); implement soft_permute for this action")

    def rows(self, y: Any, context: GroupContext) -> Tensor:
        """``y`` as one row per sample, ``[B, D]`` (``B = context.batch_size``), to compare
        outputs in error metrics: tensors (and tuples / dicts of them) flattened per sample."""
        return flatten_rows(y, context.batch())

    def scalar_field(self) -> "Action":
        """The action on a one-channel scalar field of the same kind as this data
        (interfaces draw their noise as one)."""
        raise UnsupportedGroupError(f"{self!r} has no scalar field of its kind")

    # --- folding samples into the batch ---------------------------------------------
    def batch_size(self, x: Any) -> int:
        return x.shape[0]

    def repeat(self, x: Any, k: int, context: GroupContext | None = None) -> Any:
        """Each sample repeated ``k`` times, b-major (``[x0, x0, …, x1, x1, …]``).
        ``context`` is the un-repeated input's (needed by flat graph layouts)."""
        return x if k == 1 else x.repeat_interleave(k, dim=0)

    def take(self, x: Any, rows: Tensor, context: GroupContext | None = None) -> Any:
        """The samples of the batch ``x`` at ``rows`` (``[R]`` long, increasing): a batch of
        ``R``. ``context``: ``x``'s. Wrappers use it to skip copies of weight 0. Default:
        a tensor (or a tuple / dict of them) with one row per sample."""
        return tree_map(lambda t: t.index_select(0, rows), x)

    def put(self, y: Any, rows: Tensor, context: GroupContext) -> Any:
        """The inverse of :meth:`take` on outputs: a batch laid out as ``context``'s
        (``context.batch_size`` samples) whose samples at ``rows`` are ``y`` and whose
        other samples are zero."""
        size = context.batch_size
        if size is None:
            raise ValueError("put needs the batch size of the copies (context.batch_size)")

        def fill(t: Tensor) -> Tensor:
            return t.new_zeros((size,) + tuple(t.shape[1:])).index_copy(0, rows, t)

        return tree_map(fill, y)

    def mean(self, y: Any, weights: Tensor, context: GroupContext | None = None) -> Any:
        """Weighted mean over the ``k`` copies folded into the batch of ``y``.

        ``weights``: ``[B, k]``, rows summing to one (so ``y`` itself when ``k = 1``)."""
        k = weights.shape[1]
        if k == 1:
            return y
        if y.is_floating_point():  # one bmm [B, 1, k] @ [B, k, D], no [B, k, D] temporary
            b = weights.shape[0]
            out = torch.bmm(weights.to(y.dtype)[:, None, :], y.reshape(b, k, -1))
            return out.reshape(b, *y.shape[1:])
        y = rearrange(y, "(b k) ... -> b k ...", k=k)
        w = weights.to(y.dtype).reshape(*weights.shape, *([1] * (y.dim() - 2)))
        return (y * w).sum(1)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


def check_mean_weights(weights: Any, copies: int, context: GroupContext | None = None) -> None:
    """Raise :class:`ShapeError` unless ``weights`` is a floating ``[B, k]`` tensor whose
    ``B·k`` matches the ``copies`` (group elements) and, where ``context`` knows it, whose
    ``B`` is the batch of un-repeated samples (a transposed ``[k, B]`` would otherwise mix
    the copies of different samples). Shapes only: no values are read."""
    if not isinstance(weights, Tensor) or weights.dim() != 2 or not weights.is_floating_point():
        got = f"{weights.dtype} {tuple(weights.shape)}" if isinstance(weights, Tensor) else type(weights).__name__
        raise ShapeError(f"weights must be a floating-point tensor [B, k], got {got}")
    b, k = weights.shape
    if b * k != copies:
        raise ShapeError(f"weights {tuple(weights.shape)} give {b * k} copies, but there are {copies} "
                         "group elements (one per copy, b-major)")
    if context is not None and context.batch_size is not None and b != context.batch_size:
        raise ShapeError(f"weights {tuple(weights.shape)} have {b} rows, but the batch holds "
                         f"{context.batch_size} samples: weights are [B, k], one row per sample")


def flatten_rows(y: Any, batch: int) -> Tensor:
    """The tensors of ``y`` (a tensor, or a tuple / dict of them) flattened to
    ``[batch, D]`` and concatenated; a tensor without the batch axis is broadcast over it."""
    rows = []
    for t in leaves(y):
        if not isinstance(t, Tensor):
            raise TypeError(f"cannot compare outputs of type {type(t).__name__}")
        rows.append(t.reshape(batch, -1) if t.dim() and t.shape[0] == batch
                    else t.reshape(1, -1).expand(batch, -1))
    if not rows:
        raise TypeError(f"cannot compare outputs of type {type(y).__name__}: they hold no tensors")
    return torch.cat(rows, 1)


def matrix_on_nodes(m: Tensor, x: Tensor, dim: int = 1) -> Tensor:
    """``m @ x`` on the node axis ``dim`` of ``x`` ``[B, ..., n, ...]``, with ``m``: ``[B, n, n]``."""
    x = x.movedim(dim, 1)
    out = torch.einsum("bij,bj...->bi...", m.to(x.dtype), x)
    return out.movedim(1, dim)


def cat_features(parts: list[Tensor]) -> Tensor | None:
    """``parts`` joined on the last axis; one part as it is (no copy), none: ``None``."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def take_rows(x: Tensor, index: Tensor) -> Tensor:
    """``out[b, j] = x[b, index[b, j]]`` for ``x``: ``[B, M, ...]`` and ``index``:
    ``[B, M']``, trailing axes carried along whole.

    One ``index_select`` of contiguous rows over the flattened ``[B·M, ...]`` view: on CPU
    several times faster than ``gather`` with an index expanded over the trailing axes
    (2-D gather 0.13 ms, rows 0.2 ms, expanded gather 0.38 ms for 320 × 16² scalars; with
    8 features 0.56 ms against 3.1 ms)."""
    b, m = x.shape[:2]
    flat = _ROW_INDEX.get(index, m)  # the fields of one input share their permutation
    if flat is None:
        offsets = torch.arange(0, b * m, m, device=index.device, dtype=index.dtype)[:, None]
        flat = (index + offsets).reshape(-1)
        _ROW_INDEX.put(index, flat, m)
    rows = x.reshape(b * m, *x.shape[2:]).index_select(0, flat)
    return rows.reshape(b, index.shape[1], *x.shape[2:])


#: The flat row indices of :func:`take_rows`, per index tensor and row count: computed
#: once for all the fields an element moves.
_ROW_INDEX = TensorMemo()


def permute_axis(x: Tensor, p: Tensor, dim: int) -> Tensor:
    """Move entry ``j`` of axis ``dim`` to position ``p[b, j]``, per batch row ``b``
    (``p``: ``[B, n]``). Other axes are untouched."""
    inv = invert_permutation(p)
    if dim == 1:
        return take_rows(x, inv)
    shape = [1] * x.dim()
    shape[0], shape[dim] = inv.shape[0], inv.shape[1]
    index = inv.reshape(shape).expand(*x.shape[:dim], inv.shape[1], *x.shape[dim + 1:])
    return torch.gather(x, dim, index)


def rotate_last(x: Tensor, matrix: Tensor) -> Tensor:
    """``x @ Rᵀ`` on the last axis, with ``matrix``: ``[B, d, d]`` and ``x``: ``[B, ..., d]``.

    One ``bmm`` over ``[B, (...), d]`` (a third of the time of a broadcast matmul of
    ``[..., 1, d]`` rows on 128 clouds of 64 points); a single matrix (``B = 1``) broadcasts."""
    m = matrix.to(x.dtype)
    if x.dim() >= 2 and m.shape[0] == x.shape[0]:
        return torch.bmm(x.reshape(m.shape[0], -1, m.shape[-1]), m.transpose(-1, -2)).reshape(x.shape)
    shape = (m.shape[0],) + (1,) * (x.dim() - 2) + m.shape[1:]
    return (x.unsqueeze(-2) @ m.transpose(-1, -2).reshape(shape)).squeeze(-2)


def require_tensor(action: Action, x: Any, ndims: tuple[int, ...], layout: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ShapeError(f"{action!r} expects a tensor of shape {layout}, got {type(x).__name__}")
    if x.dim() not in ndims:
        raise ShapeError(f"{action!r} expects a tensor of shape {layout}, got shape {tuple(x.shape)}")
    return x
