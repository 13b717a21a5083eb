"""Finite planar groups: cyclic C_n and dihedral D_n, acting on R² by rotations by
multiples of 2π/n (and, for D_n, the reflection (x, y) ↦ (x, −y))."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Group, default_float
from .registry import register_group


def rotation_matrix_2d(angle: Tensor) -> Tensor:
    """``[B] -> [B, 2, 2]`` counter-clockwise rotation matrices."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


@dataclass(frozen=True)
class _PlanarFinite(Group):
    """Shared by C_n and D_n: the order parameter ``n`` and the 2-d representation."""

    n: int
    matrix_dim = 2
    prefix = ""

    def __post_init__(self):
        if int(self.n) < 1:
            raise ValueError(f"the order n of {self.prefix}_n must be >= 1, got {self.n}")
        object.__setattr__(self, "n", int(self.n))

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.prefix}{self.n}"

    @property
    def vector_dim(self) -> int:
        return 2

    def rotation(self, g, dtype=None):
        return self.matrix(g, dtype)

    @property
    def acts_on_grid(self) -> bool:
        return 4 % self.n == 0


@dataclass(frozen=True)
class Cyclic(_PlanarFinite):
    """C_n = {r^k}. Elements: ``[B]`` long tensors ``k`` in ``[0, n)``; ``r`` rotates
    counter-clockwise by 2π/n."""

    prefix = "C"

    @property
    def is_proper(self) -> bool:
        return True

    def grid_moves(self, g):
        if not self.acts_on_grid:
            return super().grid_moves(g)
        return g * (4 // self.n), torch.zeros_like(g)

    @property
    def order(self) -> int:
        return self.n

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        return torch.zeros(batch, dtype=torch.long, device=device)

    def compose(self, g, h):
        return (g + h) % self.n

    def inverse(self, g):
        return (-g) % self.n

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        return torch.randint(self.n, (batch,), generator=generator, device=device)

    def elements(self, *, context=None, device=None, dtype=None):
        return torch.arange(self.n, device=device)

    def angle(self, g: Tensor, dtype=None) -> Tensor:
        return g.to(default_float(dtype)) * (2 * math.pi / self.n)

    def matrix(self, g, dtype=None):
        return rotation_matrix_2d(self.angle(g, dtype))


@dataclass(frozen=True)
class Dihedral(_PlanarFinite):
    """D_n = {r^k s^f}, order 2n. Elements: ``[B, 2]`` long tensors ``(k, f)`` meaning
    ``r^k s^f``: first reflect across the x-axis if ``f == 1``, then rotate by 2πk/n."""

    prefix = "D"

    def grid_moves(self, g):
        if not self.acts_on_grid:
            return super().grid_moves(g)
        return g[:, 0] * (4 // self.n), g[:, 1]

    @property
    def order(self) -> int:
        return 2 * self.n

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        return torch.zeros(batch, 2, dtype=torch.long, device=device)

    def compose(self, g, h):
        # r^a s^f r^b s^e = r^(a + (-1)^f b) s^(f + e)
        sign = 1 - 2 * g[:, 1]
        k = (g[:, 0] + sign * h[:, 0]) % self.n
        return torch.stack([k, (g[:, 1] + h[:, 1]) % 2], -1)

    def inverse(self, g):
        k = torch.where(g[:, 1] == 1, g[:, 0], (-g[:, 0]) % self.n)
        return torch.stack([k, g[:, 1]], -1)

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        k = torch.randint(self.n, (batch,), generator=generator, device=device)
        f = torch.randint(2, (batch,), generator=generator, device=device)
        return torch.stack([k, f], -1)

    def elements(self, *, context=None, device=None, dtype=None):
        k = torch.arange(self.n, device=device).repeat(2)
        f = torch.arange(2, device=device).repeat_interleave(self.n)
        return torch.stack([k, f], -1)

    def matrix(self, g, dtype=None):
        dtype = default_float(dtype)
        rot = rotation_matrix_2d(g[:, 0].to(dtype) * (2 * math.pi / self.n))
        flip = torch.ones(g.shape[0], 2, dtype=dtype, device=g.device)
        flip[:, 1] = 1 - 2 * g[:, 1].to(dtype)
        return rot * flip[:, None, :]  # rot @ diag(flip)


@register_group(r"C(\d+)", "C4")
def _cyclic(n: str) -> Cyclic:
    return Cyclic(int(n))


@register_group(r"D(\d+)", "D4")
def _dihedral(n: str) -> Dihedral:
    return Dihedral(int(n))
