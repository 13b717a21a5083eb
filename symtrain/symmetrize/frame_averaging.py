"""Frame averaging (Puny et al., ICLR 2022): the mean over an input-dependent frame."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import UnsupportedGroupError
from ..groups.base import Group
from ..symmetry import Symmetry
from .base import Symmetrizer
from .frames import Frame, default_frame, frame_elements
from .registry import register_symmetrizer
from ..domains import OPTIONAL_COUNT, Real, check_args


def missing_frame(group: Group, canonical: bool) -> str | None:
    """Why some factor of ``group`` has no default frame (or canonicalizer), or ``None``."""
    for factor in group.factors:
        try:
            default_frame(factor, canonical=canonical)
        except UnsupportedGroupError as err:
            return str(err)
    return None


@register_symmetrizer("frame_averaging", "fa")
class FrameAveraging(Symmetrizer):
    """Average ``g·f(g⁻¹·x)`` over an input-dependent frame ``F(x)`` (exactly equivariant).

    Args:
        frames: one :class:`~symtrain.symmetrize.frames.Frame` per factor of the group;
            default: PCA frames (all sign flips) for O(d)/SO(d)/E(d)/SE(d), sort frames
            (ties enumerated) for S_n, the whole group for other finite groups.
        frame_tol: relative eigenvalue gap (and third moment) below which the default PCA
            frames call an input degenerate (default 1e-3).
        chunk_size: see :class:`~symtrain.symmetrize.base.Symmetrizer`.
    """

    @check_args(chunk_size=OPTIONAL_COUNT, frame_tol=Real(0, optional=True))
    def __init__(self, base: nn.Module, symmetry: Symmetry, frames: Sequence[Frame] | None = None,
                 chunk_size: int | None = None, frame_tol: float | None = None):
        super().__init__(base, symmetry, chunk_size)
        factors = symmetry.group.factors
        if frames is not None and frame_tol is not None:
            raise ValueError("frame_tol sets the tolerance of the default frames; with frames= "
                             "given, set it on them")
        frames = list(frames) if frames is not None else [default_frame(f, tol=frame_tol) for f in factors]
        if len(frames) != len(factors):
            raise ValueError(f"{symmetry.group} has {len(factors)} factors but {len(frames)} frames were given")
        self.frames = frames

    @classmethod
    def supports(cls, group: Group, frames: Sequence[Frame] | None = None, **options) -> str | None:
        """Without ``frames``, every factor needs a default frame (:func:`default_frame`)."""
        return None if frames is not None else missing_frame(group, canonical=False)

    def weighted_elements(self, x, context):
        return frame_elements(self.frames, self.symmetry, x, context)

    def extra_repr(self):
        return f"{super().extra_repr()}, frames={self.frames}"
