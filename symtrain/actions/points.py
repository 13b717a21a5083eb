"""Point clouds and vector fields ``[B, N, d]`` (or one vector ``[B, d]``)."""

from __future__ import annotations

from ..errors import ShapeError
from ..groups.base import GroupContext
from ..groups.euclidean import Euclidean
from ..groups.permutation import SymmetricGroup
from .base import Action, permute_axis, require_tensor, rotate_last


class Vectors(Action):
    """Vectors (velocities, forces, directions) attached to nodes, ``[B, N, d]``, or one
    per sample, ``[B, d]`` with ``nodes=False``. Stored as rows: ``g·x = x Rᵀ``.

    Rotations and reflections (any group with a ``d × d`` standard representation) turn
    them; S_n permutes the node axis; E(d) acts through its rotation part only."""

    translate = False

    def __init__(self, nodes: bool = True):
        self.nodes = nodes

    @property
    def layout(self) -> str:
        return "(B, N, d)" if self.nodes else "(B, d)"

    def supports(self, factor):
        if isinstance(factor, SymmetricGroup):
            return None if self.nodes else "a single vector per sample has no node axis to permute"
        if isinstance(factor, Euclidean) or factor.matrix_dim is not None:
            return None
        return f"{factor} has no matrix representation to rotate vectors with"

    def check(self, x, group):
        x = require_tensor(self, x, (3,) if self.nodes else (2,), self.layout)
        for factor in group.factors:
            d = factor.dim if isinstance(factor, Euclidean) else factor.matrix_dim
            if not isinstance(factor, SymmetricGroup) and d != x.shape[-1]:
                raise ShapeError(f"{factor} acts on {d}-dimensional vectors but {self!r} got "
                                 f"shape {tuple(x.shape)} (last axis {x.shape[-1]})")
            if isinstance(factor, SymmetricGroup) and factor.n is not None and x.shape[1] != factor.n:
                raise ShapeError(f"{factor} acts on {factor.n} nodes but {self!r} got {x.shape[1]}")

    def act_factor(self, factor, g, x, context):
        if isinstance(factor, SymmetricGroup):
            return permute_axis(x, g, 1)
        if isinstance(factor, Euclidean):
            rot, t = g
            x = rotate_last(x, rot)
            if self.translate:
                x = x + t.to(x.dtype).reshape(t.shape[0], *([1] * (x.dim() - 2)), t.shape[-1])
            return x
        return rotate_last(x, factor.matrix(g, x.dtype))

    def context(self, x, mask=None):
        n = x.shape[1] if self.nodes else None
        return GroupContext(num_nodes=n, batch_size=x.shape[0])


class Points(Vectors):
    """Positions ``[B, N, d]``: like :class:`Vectors`, plus translations of E(d)/SE(d):
    ``g·x = x Rᵀ + t``. Supplies the (masked) centroid that fixes the translation part
    of E(d) in averaging and frames."""

    translate = True

    def context(self, x, mask=None):
        if self.nodes:
            if mask is None:
                centroid = x.mean(1)
            else:
                w = mask.to(x.dtype)[..., None]
                centroid = (x * w).sum(1) / w.sum(1).clamp_min(1)
        else:
            centroid = x
        n = x.shape[1] if self.nodes else None
        return GroupContext(num_nodes=n, centroid=centroid, batch_size=x.shape[0])
