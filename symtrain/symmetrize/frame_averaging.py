"""Frame averaging (Puny et al., ICLR 2022): the mean over an input-dependent frame."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..symmetry import Symmetry
from .base import Symmetrizer
from .frames import Frame, default_frame, frame_elements
from .registry import register_symmetrizer


@register_symmetrizer("frame_averaging", "fa")
class FrameAveraging(Symmetrizer):
    """Average ``g·f(g⁻¹·x)`` over an input-dependent frame ``F(x)`` (exactly equivariant).

    Args:
        frames: one :class:`~symtrain.symmetrize.frames.Frame` per factor of the group;
            default: PCA frames (all sign flips) for O(d)/SO(d)/E(d)/SE(d), sort frames
            (ties enumerated) for S_n, the whole group for other finite groups.
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry, frames: Sequence[Frame] | None = None,
                 chunk_size: int | None = None):
        super().__init__(base, symmetry, chunk_size)
        factors = symmetry.group.factors
        frames = list(frames) if frames is not None else [default_frame(f) for f in factors]
        if len(frames) != len(factors):
            raise ValueError(f"{symmetry.group} has {len(factors)} factors but {len(frames)} frames were given")
        self.frames = frames

    def elements(self, x, context):
        return frame_elements(self.frames, self.symmetry, x, context)

    def extra_repr(self):
        return f"{super().extra_repr()}, frames={self.frames}"
