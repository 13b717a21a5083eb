"""Canonicalization: the base model runs once, on a canonical pose of the input."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..domains import Real, check_args
from ..errors import UnsupportedGroupError
from ..groups.base import Group
from ..symmetry import Symmetry
from ..tree import reference_tensor
from .base import Symmetrizer
from .frame_averaging import missing_frame, named_frames
from .frames import FRAME_KINDS, Frame, check_frame_kind, frame_elements
from .registry import register_symmetrizer
from .sampled_frames import SampledFrames


@register_symmetrizer("canonicalization")
class Canonicalization(SampledFrames, Symmetrizer):
    """Run the base model once, on the canonical pose ``g(x)⁻¹·x``, and map its output back
    by ``g(x)``. Exactly equivariant when the canonicalizer is: ``g(h·x) = h·g(x)``.

    Args:
        canonicalizer: a name, per factor: ``"auto"`` = ``"minimal"`` (the minimal frame:
            one QR frame element for O(d)/SO(d)/E(d)/SE(d), on every input, degenerate
            ones included), ``"pca"`` (PCA with third-moment signs, an error on inputs
            whose axes or signs are ambiguous); S_n factors are sorted without ties under
            either name. Or a list of single-element :class:`Frame`s, or any callable /
            ``nn.Module`` ``x -> element batch [B]`` (e.g. a learned equivariant network).
        frame_tol: tolerance of the named canonicalizers (see
            :class:`~symtrain.symmetrize.FrameAveraging`).

    A canonicalizer made of minimal frames (:attr:`Frame.stabiliser_only`) gives one
    element on generic inputs and may give the (finite) stabiliser of a degenerate input,
    weighted; any other list of frames must give exactly one element per input. A
    stabiliser too large to list is sampled, and the wrapper is then :attr:`stochastic`
    (see :mod:`~symtrain.symmetrize.sampled_frames`).
    """

    @check_args(frame_tol=Real(0, optional=True))
    def __init__(self, base: nn.Module, symmetry: Symmetry,
                 canonicalizer: str | Sequence[Frame] | Callable = "auto", frame_tol: float | None = None):
        super().__init__(base, symmetry)
        if frame_tol is not None and not isinstance(canonicalizer, str):
            raise ValueError("frame_tol sets the tolerance of a named canonicalizer "
                             f"({', '.join(('auto',) + FRAME_KINDS)})")
        if isinstance(canonicalizer, str):
            canonicalizer = named_frames(symmetry.group, _kind(canonicalizer), True, frame_tol)
        if isinstance(canonicalizer, (list, tuple)):
            self.frames = list(canonicalizer)
            self.canonicalizer = None
        elif callable(canonicalizer):
            self.frames = None
            self.canonicalizer = canonicalizer  # an nn.Module here is registered as a submodule
        else:
            raise UnsupportedGroupError(f"canonicalizer must be 'auto', frames or a callable, got {canonicalizer!r}")

    @classmethod
    def supports(cls, group: Group, canonicalizer: str | Sequence[Frame] | Callable = "auto",
                 **options) -> str | None:
        """The ``"auto"`` canonicalizer needs a default canonical frame for every factor."""
        if isinstance(canonicalizer, str):
            return missing_frame(group, canonical=True, kind=_kind(canonicalizer))
        return None

    def weighted_elements(self, x, context):
        if self.frames is not None:
            g, weights = frame_elements(self.frames, self.symmetry, x, context)
            if weights.shape[1] != 1 and not all(f.stabiliser_only for f in self.frames):
                raise ValueError("a canonicalizer must give one element per input; these frames "
                                 f"give {weights.shape[1]} (use FrameAveraging for them)")
            return g, weights
        g = self.canonicalizer(x)
        ref = reference_tensor(x)
        dtype = ref.dtype if ref.is_floating_point() else None
        return g, torch.ones(context.batch_size, 1, device=ref.device, dtype=dtype)


def _kind(name: str) -> str:
    return "minimal" if name == "auto" else check_frame_kind(name, "canonicalizer")
