"""Euclidean groups E(d) = R^d ⋊ O(d) and SE(d) = R^d ⋊ SO(d).

Elements are tuples ``(R, t)`` with ``R: [B, d, d]`` and ``t: [B, d]``, acting on a
point ``p`` (column) as ``R p + t``. Composition: ``(R1, t1)(R2, t2) = (R1 R2, R1 t2 + t1)``.

Translations have no Haar measure. symtrain handles them by centring: when the data's
centroid is known (``context.centroid``), :meth:`sample` returns ``t = centroid``, so
averaging over ``g⁻¹·x`` sees centred data and the result is exactly translation
equivariant; otherwise ``t ~ N(0, translation_scale² I)`` (useful for tests and
augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Group, GroupContext, default_float
from .orthogonal import Orthogonal, SpecialOrthogonal, skew_basis
from .registry import register_group


@dataclass(frozen=True)
class Euclidean(Group):
    dim: int
    proper: bool = False
    translation_scale: float = 1.0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{'SE' if self.proper else 'E'}{self.dim}"

    @property
    def rotations(self) -> SpecialOrthogonal | Orthogonal:
        """The compact part, O(d) or SO(d)."""
        return SpecialOrthogonal(self.dim) if self.proper else Orthogonal(self.dim)

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        rot = self.rotations.identity(batch, device=device, dtype=dtype)
        return rot, torch.zeros(batch, self.dim, device=device, dtype=rot.dtype)

    def compose(self, g, h):
        (r1, t1), (r2, t2) = g, h
        return r1 @ r2, (r1 @ t2[..., None])[..., 0] + t1

    def inverse(self, g):
        r, t = g
        # -Rᵀt as a broadcast product summed over the rows (4 small ops, not a batched matmul)
        return r.transpose(-1, -2), (r * t[..., :, None]).sum(-2).neg()

    def sample(self, batch, *, context: GroupContext | None = None, generator=None,
               device=None, dtype=None):
        rot = self.rotations.sample(batch, generator=generator, device=device, dtype=dtype)
        if context is not None and context.centroid is not None:
            t = context.centroid.to(rot.dtype)
            if t.shape != (batch, self.dim):
                raise ValueError(f"centroid has shape {tuple(t.shape)}, expected {(batch, self.dim)}")
        else:
            t = self.translation_scale * torch.randn(batch, self.dim, generator=generator,
                                                     device=device, dtype=default_float(dtype))
        return rot, t

    def matrix(self, g, dtype=None):
        """Homogeneous coordinates ``[B, d+1, d+1]``."""
        r, t = g
        out = torch.zeros(r.shape[0], self.dim + 1, self.dim + 1, device=r.device, dtype=r.dtype)
        out[:, : self.dim, : self.dim] = r
        out[:, : self.dim, self.dim] = t
        out[:, self.dim, self.dim] = 1
        return out if dtype is None else out.to(dtype)

    def allclose(self, g, h, atol=1e-5):
        return self.rotations.allclose(g[0], h[0], atol) & (
            (g[1] - h[1]).abs().amax(-1) <= atol)

    @property
    def is_continuous(self) -> bool:
        return True

    @property
    def vector_dim(self) -> int:
        return self.dim

    @property
    def is_proper(self) -> bool:
        return self.proper

    @property
    def has_translations(self) -> bool:
        return True

    def rotation(self, g, dtype=None):
        return g[0] if dtype is None else g[0].to(dtype)

    def translation(self, g, dtype=None):
        return g[1] if dtype is None else g[1].to(dtype)

    def from_parts(self, rotation, translation=None):
        if translation is None:
            translation = rotation.new_zeros(rotation.shape[0], self.dim)
        return rotation, translation.to(rotation.dtype)

    def exp(self, xi):
        """``xi``: ``[B, d+1, d+1]`` in homogeneous coordinates (see :meth:`lie_algebra`)."""
        m = torch.linalg.matrix_exp(xi)
        d = self.dim
        return m[..., :d, :d], m[..., :d, d]

    def lie_algebra(self, *, device=None, dtype=None):
        """Basis of se(d) in homogeneous coordinates ``[m, d+1, d+1]``: rotations, then
        translations along each axis."""
        d = self.dim
        rots = skew_basis(d, device=device, dtype=dtype)
        out = torch.zeros(rots.shape[0] + d, d + 1, d + 1, device=device, dtype=rots.dtype)
        out[: rots.shape[0], :d, :d] = rots
        for i in range(d):
            out[rots.shape[0] + i, i, d] = 1.0
        return out


def E(d: int) -> Euclidean:
    return Euclidean(d, proper=False)


def SE(d: int) -> Euclidean:
    return Euclidean(d, proper=True)


@register_group(r"E(\d)", "E3")
def _e(d: str) -> Euclidean:
    return Euclidean(int(d), proper=False)


@register_group(r"SE(\d)", "SE3")
def _se(d: str) -> Euclidean:
    return Euclidean(int(d), proper=True)
