"""Frame averaging (Puny et al., ICLR 2022): the mean over an input-dependent frame."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..domains import OPTIONAL_COUNT, Real, check_args
from ..errors import UnsupportedGroupError
from ..groups.base import Group
from ..registry import ArgumentError
from ..symmetry import Symmetry
from .base import Symmetrizer
from .frames import FRAME_KINDS, Frame, check_frame_kind, default_frame, frame_elements
from .registry import register_symmetrizer
from .sampled_frames import SampledFrames


def missing_frame(group: Group, canonical: bool, kind: str = "minimal") -> str | None:
    """Why some factor of ``group`` has no frame (or canonicalizer) of ``kind``, or ``None``."""
    try:
        named_frames(group, kind, canonical, None)
    except UnsupportedGroupError as err:
        return str(err)
    return None


def named_frames(group: Group, kind: str, canonical: bool, tol: float | None) -> list[Frame]:
    """The frames of ``kind`` for every factor of ``group`` (see :func:`default_frame`)."""
    permuted = [f.permutes_nodes for f in group.factors]
    return [default_frame(f, canonical=canonical, tol=tol, kind=kind,
                          nodes_permuted=any(p for j, p in enumerate(permuted) if j != i))
            for i, f in enumerate(group.factors)]


@register_symmetrizer("frame_averaging", "fa")
class FrameAveraging(SampledFrames, Symmetrizer):
    """Average ``g·f(g⁻¹·x)`` over an input-dependent frame ``F(x)`` (exactly equivariant).

    Args:
        frames: a name, ``"minimal"`` (the default) or ``"pca"``
            (:data:`~symtrain.symmetrize.frames.FRAME_KINDS`), or one
            :class:`~symtrain.symmetrize.frames.Frame` per factor of the group. Minimal
            frames: one QR frame element per input for O(d)/SO(d)/E(d)/SE(d), exact on
            degenerate inputs too; PCA frames: 2^d (2^(d-1) proper) sign flips of the
            principal axes, an error on symmetric inputs; sort frames (ties enumerated) for
            S_n and the whole group for other finite groups under either name. A minimal S_n
            frame past its ``max_elements`` automorphisms is sampled: the wrapper is then
            :attr:`stochastic` (see :mod:`~symtrain.symmetrize.sampled_frames`).
        frame_tol: the named frames' tolerance: rank tolerance relative to the cloud's
            scale for minimal frames (default 1000 machine epsilons), relative eigenvalue
            gap (and third moment) for PCA frames (default 1e-3).
        chunk_size: see :class:`~symtrain.symmetrize.base.Symmetrizer`.
    """

    @check_args(chunk_size=OPTIONAL_COUNT, frame_tol=Real(0, optional=True))
    def __init__(self, base: nn.Module, symmetry: Symmetry, frames: str | Sequence[Frame] | None = None,
                 chunk_size: int | None = None, frame_tol: float | None = None):
        super().__init__(base, symmetry, chunk_size)
        factors = symmetry.group.factors
        frames = "minimal" if frames is None else frames
        if isinstance(frames, str):
            frames = named_frames(symmetry.group, check_frame_kind(frames), False, frame_tol)
        elif frame_tol is not None:
            raise ValueError("frame_tol sets the tolerance of named frames (frames='minimal' or "
                             "'pca'); with Frame objects given, set it on them")
        if not isinstance(frames, (list, tuple)) or not all(isinstance(f, Frame) for f in frames):
            raise ArgumentError("frames", f"expected a name ({', '.join(FRAME_KINDS)}) or one Frame per "
                                          f"factor of {symmetry.group}, got {frames!r}")
        frames = list(frames)
        if len(frames) != len(factors):
            raise ValueError(f"{symmetry.group} has {len(factors)} factors but {len(frames)} frames were given")
        self.frames = frames

    @classmethod
    def supports(cls, group: Group, frames: str | Sequence[Frame] | None = None, **options) -> str | None:
        """With named frames (or none), every factor needs a frame of that name
        (:func:`default_frame`)."""
        if frames is None or isinstance(frames, str):
            return missing_frame(group, canonical=False, kind=check_frame_kind(frames or "minimal"))
        return None

    def weighted_elements(self, x, context):
        return frame_elements(self.frames, self.symmetry, x, context)

    def extra_repr(self):
        return f"{super().extra_repr()}, frames={self.frames}"
