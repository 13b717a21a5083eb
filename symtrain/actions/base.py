"""The action contract: how a group acts on one kind of data.

An :class:`Action` knows one data type (points, images, graphs, …), not the groups: it
acts factor by factor, asking each factor of a (product) group what it is (permutation,
matrix group, Euclidean group). Adding a data type is one new subclass.

All actions are *left actions* (``act(g, act(h, x)) == act(g∘h, x)``), batched over the
leading dimension of ``x`` and of the group elements ``g``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from einops import rearrange
from torch import Tensor

from ..errors import ShapeError, UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, iter_factors
from ..groups.permutation import invert_permutation


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
        """Raise :class:`ShapeError` if ``x`` does not fit this action and group."""

    # --- acting ---------------------------------------------------------------------
    def act(self, group: Group, g: Element, x: Any, context: GroupContext | None = None) -> Any:
        """``g·x``. ``g`` and ``x`` have the same batch size."""
        for factor, gf in iter_factors(group, g):
            x = self.act_factor(factor, gf, x, context)
        return x

    @abstractmethod
    def act_factor(self, factor: Group, g: Element, x: Any, context: GroupContext | None) -> Any:
        ...

    def context(self, x: Any, mask: Tensor | None = None) -> GroupContext:
        """What the group needs to know about ``x`` (node count, mask, centroid)."""
        return GroupContext(batch_size=self.batch_size(x))

    # --- folding samples into the batch ---------------------------------------------
    def batch_size(self, x: Any) -> int:
        return x.shape[0]

    def repeat(self, x: Any, k: int, context: GroupContext | None = None) -> Any:
        """Each sample repeated ``k`` times, b-major (``[x0, x0, …, x1, x1, …]``).
        ``context`` is the un-repeated input's (needed by flat graph layouts)."""
        return x if k == 1 else x.repeat_interleave(k, dim=0)

    def mean(self, y: Any, weights: Tensor, context: GroupContext | None = None) -> Any:
        """Weighted mean over the ``k`` copies folded into the batch of ``y``.

        ``weights``: ``[B, k]``, rows summing to one."""
        k = weights.shape[1]
        y = rearrange(y, "(b k) ... -> b k ...", k=k)
        w = weights.to(y.dtype).reshape(*weights.shape, *([1] * (y.dim() - 2)))
        return (y * w).sum(1)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


def permute_axis(x: Tensor, p: Tensor, dim: int) -> Tensor:
    """Move entry ``j`` of axis ``dim`` to position ``p[b, j]``, per batch row ``b``
    (``p``: ``[B, n]``). Other axes are untouched."""
    inv = invert_permutation(p)
    shape = [1] * x.dim()
    shape[0], shape[dim] = inv.shape[0], inv.shape[1]
    index = inv.reshape(shape).expand(*x.shape[:dim], inv.shape[1], *x.shape[dim + 1:])
    return torch.gather(x, dim, index)


def rotate_last(x: Tensor, matrix: Tensor) -> Tensor:
    """``x @ Rᵀ`` on the last axis, with ``matrix``: ``[B, d, d]`` and ``x``: ``[B, ..., d]``."""
    m = matrix.to(x.dtype)
    shape = (m.shape[0],) + (1,) * (x.dim() - 2) + m.shape[1:]
    return (x.unsqueeze(-2) @ m.transpose(-1, -2).reshape(shape)).squeeze(-2)


def require_tensor(action: Action, x: Any, ndims: tuple[int, ...], layout: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ShapeError(f"{action!r} expects a tensor of shape {layout}, got {type(x).__name__}")
    if x.dim() not in ndims:
        raise ShapeError(f"{action!r} expects a tensor of shape {layout}, got shape {tuple(x.shape)}")
    return x
