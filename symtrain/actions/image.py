"""Images and feature maps ``[B, C, H, W]`` under planar rotations and reflections.

Coordinates: x to the right (columns), y up (towards row 0). The generator ``r`` of
C4 rotates counter-clockwise by 90°, which is ``torch.rot90(img, 1, dims=(-2, -1))``;
the reflection ``s`` of D_n maps (x, y) ↦ (x, −y), which flips the rows.

Only rotations by multiples of 90° (C1, C2, C4 and D1, D2, D4) map the pixel grid to
itself and act exactly. Other rotations (C8, SO(2), O(2)) need interpolation, which
is approximate and has to be asked for: ``Image(interpolation="bilinear")``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ShapeError, UnsupportedGroupError
from ..groups.base import Group, element_repeat, element_tile
from .base import Action, require_tensor
from .registry import register_action


def _needs_square(factor: Group) -> bool:
    """Whether some element turns the image by an odd number of quarter turns (or by any
    angle, when interpolating): then only square images keep their shape."""
    if not factor.acts_on_grid:
        return True
    quarter, _ = factor.grid_moves(factor.elements())
    return bool((quarter % 2).any())


@functools.lru_cache(maxsize=16)
def grid_index_maps(h: int, w: int, device=None) -> Tensor:
    """``[2, 4, H*W]`` source-pixel indices: ``maps[f, q]`` is ``rot90^q ∘ flip_rows^f``
    applied to the index image, so gathering with it applies that transformation.
    Cached per size and device (read-only: callers index it, never write to it)."""
    ar = torch.arange(h * w, device=device).reshape(h, w)
    out = []
    for f in range(2):
        base = torch.flip(ar, (0,)) if f else ar
        out.append(torch.stack([torch.rot90(base, q, (0, 1)).reshape(-1) for q in range(4)]))
    return torch.stack(out)


@register_action("image")
class Image(Action):
    """Images ``[B, C, H, W]``.

    Args:
        interpolation: ``None`` (exact grid symmetries only) or a ``grid_sample`` mode
            (``"bilinear"``, ``"nearest"``, ``"bicubic"``) to allow any rotation,
            approximately, with zero padding outside the image by default.
        fiber: ``"trivial"`` (channels are scalars) or ``"regular"`` (channels are
            ``C/|G|`` regular fields of a finite group, as produced by a group CNN:
            ``(g·f)(g h) = f(h)`` on each block of ``|G|`` consecutive channels, ordered
            like ``group.elements()``).
    """

    def __init__(self, interpolation: str | None = None, fiber: str = "trivial",
                 padding_mode: str = "zeros"):
        if fiber not in ("trivial", "regular"):
            raise ValueError(f"fiber must be 'trivial' or 'regular', got {fiber!r}")
        self.interpolation = interpolation
        self.fiber = fiber
        self.padding_mode = padding_mode

    def supports(self, factor):
        if factor.vector_dim != 2 or factor.permutes_nodes or factor.has_translations:
            return "images only carry planar rotations and reflections (C_n, D_n, SO(2), O(2))"
        if self.fiber == "regular" and not factor.is_finite:
            return "regular fields need a finite group"
        if not factor.acts_on_grid and self.interpolation is None:
            if not factor.is_finite:
                what = "arbitrary rotations"
            else:
                what = f"rotations by {720 / factor.order if not factor.is_proper else 360 / factor.order:g}°"
            return (f"{what} do not map the pixel grid to itself, so they act only "
                    "approximately; pass Image(interpolation='bilinear') to opt in")
        return None

    def check(self, x, group):
        x = require_tensor(self, x, (4,), "(B, C, H, W)")
        h, w = x.shape[-2:]
        for factor in group.factors:
            if h != w and _needs_square(factor):
                raise ShapeError(f"{factor} rotates by 90° or less, which needs a square image; "
                                 f"got H×W = {h}×{w}")
            if self.fiber == "regular" and x.shape[1] % factor.order:
                raise ShapeError(f"regular fields of {factor} need channels divisible by "
                                 f"{factor.order}, got {x.shape[1]}")

    def act_factor(self, factor, g, x, context):
        if self.fiber == "regular":
            x = self._shift_fibers(factor, g, x)
        if factor.acts_on_grid:
            return self._grid_transform(factor, g, x)
        return self._resample(factor.rotation(g, x.dtype), x)

    def _shared_grid_moves(self, group, elements) -> list[tuple[int, int]] | None:
        """``(quarter turns, row flip)`` per shared element, when one grid factor acts on
        scalar channels (the fast path of :meth:`apply_tiled`/:meth:`orbit`)."""
        if len(group.factors) != 1 or not group.acts_on_grid or self.fiber != "trivial":
            return None
        quarter, flip = group.grid_moves(elements)
        return list(zip((quarter % 4).tolist(), flip.tolist(), strict=True))

    @staticmethod
    def _grid_move(x: Tensor, quarter: int, flip: int) -> Tensor:
        return torch.rot90(x.flip(-2) if flip else x, quarter, (-2, -1))

    def apply_tiled(self, group, elements, y, context=None):
        moves = self._shared_grid_moves(group, elements)
        if moves is None:
            return super().apply_tiled(group, elements, y, context)
        m = len(moves)
        y = y.reshape(-1, m, *y.shape[1:])
        out = torch.empty_like(y)
        for j, (q, f) in enumerate(moves):
            out[:, j] = self._grid_move(y[:, j], q, f)
        return out.reshape(-1, *y.shape[2:])

    def orbit(self, group, elements, x, context=None):
        moves = self._shared_grid_moves(group, elements)
        if moves is None:
            return super().orbit(group, elements, x, context)
        out = x.new_empty(x.shape[0], len(moves), *x.shape[1:])
        for j, (q, f) in enumerate(moves):  # whole batch at once, into its slot of the copies
            out[:, j] = self._grid_move(x, q, f)
        return out.reshape(-1, *x.shape[1:])

    def points(self, x):
        return None

    def pixels(self, x):
        return x

    def scalar_field(self):
        return Image(self.interpolation, "trivial", self.padding_mode)

    def _grid_transform(self, factor, g, x):
        b, c, h, w = x.shape
        quarter, flip = factor.grid_moves(g)
        index = grid_index_maps(h, w, x.device)[flip, quarter % 4]  # [B, H*W]
        out = x.reshape(b, c, h * w).gather(-1, index[:, None, :].expand(b, c, h * w))
        return out.reshape(b, c, h, w)

    def _resample(self, matrix: Tensor, x: Tensor) -> Tensor:
        # Output pixel p samples the input at R⁻¹ p. grid_sample's y axis points down,
        # ours up: conjugate by D = diag(1, −1).
        flip = torch.tensor([1.0, -1.0], device=x.device, dtype=x.dtype)
        inv = matrix.transpose(-1, -2) * flip[:, None] * flip[None, :]
        theta = torch.cat([inv, inv.new_zeros(inv.shape[0], 2, 1)], -1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=self.interpolation or "bilinear",
                             padding_mode=self.padding_mode, align_corners=False)

    def _shift_fibers(self, factor, g, x):
        b, c, h, w = x.shape
        n = factor.order
        elems = factor.elements(device=x.device)
        # Field channel m holds f(elem_m); (g·f)(elem_m) = f(g⁻¹ elem_m).
        src = factor.compose(element_repeat(factor.inverse(g), n), element_tile(elems, b))
        index = element_index(factor, src, elems).reshape(b, n)
        x = x.reshape(b, c // n, n, h * w)
        x = x.gather(2, index[:, None, :, None].expand(b, c // n, n, h * w))
        return x.reshape(b, c, h, w)


def element_index(group: Group, g, elems) -> Tensor:
    """Position of each element of ``g`` in ``elems`` (finite groups)."""
    m = elems.shape[0] if isinstance(elems, Tensor) else elems[0].shape[0]
    bsz = g.shape[0] if isinstance(g, Tensor) else g[0].shape[0]
    match = group.allclose(element_repeat(g, m), element_tile(elems, bsz)).reshape(bsz, m)
    if not bool(match.any(1).all()):
        raise UnsupportedGroupError(f"element not found among the elements of {group}")
    return match.to(torch.int64).argmax(1)
