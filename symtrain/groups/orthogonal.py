"""Rotation groups SO(d) and orthogonal groups O(d) (d = 2 and 3 are the usual ones).

Elements are ``[B, d, d]`` float matrices acting on column vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UnsupportedGroupError
from .base import Group, compute_float, default_float
from .planar import rotation_matrix_2d
from .registry import register_group


def haar_orthogonal(batch: int, d: int, *, generator=None, device=None, dtype=None) -> Tensor:
    """Haar-random ``[B, d, d]`` orthogonal matrices: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q (Mezzadri 2007), so the law is exactly Haar."""
    out = default_float(dtype)
    z = torch.randn(batch, d, d, generator=generator, device=device, dtype=compute_float(out))
    q, r = torch.linalg.qr(z)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs[:, None, :]).to(out)


def skew_basis(d: int, *, device=None, dtype=None) -> Tensor:
    """Basis ``[d(d-1)/2, d, d]`` of so(d): E_ij − E_ji for i < j. For d = 3 it is ordered
    as rotations about x, y, z (L_x, L_y, L_z)."""
    dtype = default_float(dtype)
    if d == 3:
        pairs = [(1, 2), (2, 0), (0, 1)]
    else:
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    basis = torch.zeros(len(pairs), d, d, device=device, dtype=dtype)
    for m, (i, j) in enumerate(pairs):
        basis[m, j, i], basis[m, i, j] = 1.0, -1.0
    return basis


@dataclass(frozen=True)
class _MatrixLieGroup(Group):
    dim: int

    def __post_init__(self):
        if int(self.dim) < 1:
            raise ValueError(f"dimension must be >= 1, got {self.dim}")
        object.__setattr__(self, "dim", int(self.dim))

    @property
    def matrix_dim(self) -> int:  # type: ignore[override]
        return self.dim

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        eye = torch.eye(self.dim, device=device, dtype=default_float(dtype))
        return eye.expand(batch, -1, -1).clone()

    def compose(self, g, h):
        return g @ h

    def inverse(self, g):
        return g.transpose(-1, -2)

    def matrix(self, g, dtype=None):
        return g if dtype is None else g.to(dtype)

    @property
    def is_continuous(self) -> bool:
        return True

    @property
    def vector_dim(self) -> int:
        return self.dim

    def rotation(self, g, dtype=None):
        return self.matrix(g, dtype)

    def from_parts(self, rotation, translation=None):
        if translation is not None:
            raise UnsupportedGroupError(f"{self} has no translations")
        return rotation

    def lie_algebra(self, *, device=None, dtype=None) -> Tensor:
        """Basis of the Lie algebra so(d), ``[m, d, d]`` (infinitesimal rotations)."""
        return skew_basis(self.dim, device=device, dtype=dtype)

    def exp(self, xi: Tensor) -> Tensor:
        return torch.linalg.matrix_exp(xi)


@dataclass(frozen=True)
class SpecialOrthogonal(_MatrixLieGroup):
    """SO(d): rotations, ``det = +1``."""

    @property
    def is_proper(self) -> bool:
        return True

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"SO{self.dim}"

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        if self.dim == 2:
            angle = torch.rand(batch, generator=generator, device=device, dtype=default_float(dtype))
            return rotation_matrix_2d(angle * (2 * torch.pi))
        work = compute_float(dtype)
        q = haar_orthogonal(batch, self.dim, generator=generator, device=device, dtype=work)
        # Flipping one column of a Haar O(d) sample with det -1 gives Haar SO(d).
        det = torch.linalg.det(q)
        q[:, :, 0] = q[:, :, 0] * det.sign()[:, None]
        return q.to(default_float(dtype))


@dataclass(frozen=True)
class Orthogonal(_MatrixLieGroup):
    """O(d): rotations and reflections."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"O{self.dim}"

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        return haar_orthogonal(batch, self.dim, generator=generator, device=device, dtype=dtype)


def SO(d: int) -> SpecialOrthogonal:
    """The rotation group SO(d)."""
    return SpecialOrthogonal(d)


def O(d: int) -> Orthogonal:
    """The orthogonal group O(d)."""
    return Orthogonal(d)


@register_group(r"SO(\d)", "SO3")
def _so(d: str) -> SpecialOrthogonal:
    return SpecialOrthogonal(int(d))


@register_group(r"O(\d)", "O3")
def _o(d: str) -> Orthogonal:
    return Orthogonal(int(d))
