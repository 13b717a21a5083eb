"""The minimal frame of a finite group acting on square images (C_n, D_n with
rotations by multiples of 90°: C2, C4, D1, D2, D4): the default canonicalizer of
images.

Every element ``g`` of the group gives a candidate canonical image ``g⁻¹·x``. Each is
scored by a fixed random projection (float64) of a scalar map of the image, and the frame
is the set of elements whose candidate scores highest:

    F(x) = argmax_g  ⟨P, s(g⁻¹·x)⟩,    s(x) = (Σ_c x_c, Σ_c x_c²)  (two maps [2, H, W]).

*Why it is exact.* Grid moves permute pixels exactly, so the candidates of ``h·x`` are
the candidates of ``x``, bit for bit, relabelled: ``(h g)⁻¹·(h·x) = g⁻¹·x``. Their scores
are the same numbers, so ``F(h·x) = h·F(x)`` as sets. The channel sums are scalar maps
whatever the channels are (plain channels, or regular fields whose channels the group
permutes), so the frame needs nothing but the pixels.

*Stabiliser.* Two candidates are equal exactly when their elements differ by an element
of the stabiliser ``{s : s·x = x}``, so on a symmetric image the top score is shared by a
coset of the stabiliser and the frame averages over it (weights ``1/|coset|``); on a
generic image the top score is unique with probability one and the frame has one
element: one backbone call. Scores within ``tol`` (relative) of the top count as tied;
a generic image that ties by accident is averaged over its tied candidates, which is
still exact.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..checks import check_finite, input_is_checked
from ..errors import UnsupportedGroupError
from ..groups.base import element_take
from .frames import Frame


@functools.lru_cache(maxsize=8)
def _projection(h: int, w: int, seed: int) -> Tensor:
    """The fixed random projection ``[2, H, W]`` (float64, CPU; cached per size)."""
    return torch.randn(2, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class GridOrbitFrame(Frame):
    """The elements whose canonical image scores highest (see the module docstring).

    Args:
        seed: seed of the fixed random projection (one per image size).
        tol: scores within ``tol`` times the score scale of the top one tie.
    """

    stabiliser_only = True

    def __init__(self, seed: int = 0, tol: float = 1e-9):
        self.seed, self.tol = seed, tol

    def __call__(self, factor, symmetry, x, context):
        if not (factor.is_finite and factor.acts_on_grid):
            raise UnsupportedGroupError(f"grid orbit frames are for finite groups that map the pixel "
                                        f"grid to itself (C2, C4, D1, D2, D4), not {factor}")
        img = symmetry.input.pixels(x)
        if img is None:
            raise UnsupportedGroupError(f"grid orbit frames need an image in the input; "
                                        f"{symmetry.input!r} holds none")
        if not input_is_checked():  # (a wrapper's forward has checked its input)
            check_finite(img, "the image a grid orbit frame is computed from")
        b, _, h, w = img.shape
        data = img.detach().to(torch.float64)
        maps = torch.stack([data.sum(1), (data * data).sum(1)], 1)  # [B, 2, H, W]
        elements = factor.elements(context=context, device=img.device)
        m = factor.order
        # candidates g⁻¹·s for every element g (b-major), as scalar maps
        field = symmetry.input.scalar_field()  # how scalar maps of this image move
        cands = field.orbit(factor, factor.inverse(elements), maps)  # [B·m, 2, H, W]
        proj = _projection(h, w, self.seed).to(img.device)
        scores = (cands * proj).reshape(b, m, -1).sum(-1)  # [B, m]
        scale = (maps.abs() * proj.abs()).reshape(b, -1).sum(-1, keepdim=True)
        tied = scores >= scores.amax(1, keepdim=True) - self.tol * scale
        counts = tied.sum(1)  # [B] >= 1
        k = int(counts.max())
        order = torch.argsort((~tied).to(torch.uint8), dim=1, stable=True)[:, :k]  # tied first
        slot = torch.arange(k, device=img.device)[None, :]
        real = slot < counts[:, None]
        order = torch.where(real, order, order[:, :1])  # padding: the first tied element, weight 0
        dtype = img.dtype if img.is_floating_point() else torch.get_default_dtype()
        weights = real.to(dtype) / counts[:, None].to(dtype)
        return element_take(elements, order.reshape(-1)), weights
