"""Canonicalization: the base model runs once, on a canonical pose of the input."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import UnsupportedGroupError
from ..groups.base import Group
from ..symmetry import Symmetry
from ..tree import reference_tensor
from .base import Symmetrizer
from .frame_averaging import missing_frame
from .frames import Frame, default_frame, frame_elements
from .registry import register_symmetrizer
from ..domains import Real, check_args


@register_symmetrizer("canonicalization")
class Canonicalization(Symmetrizer):
    """Run the base model once, on the canonical pose ``g(x)⁻¹·x``, and map its output back
    by ``g(x)``. Exactly equivariant when the canonicalizer is: ``g(h·x) = h·g(x)``.

    Args:
        canonicalizer: ``"auto"`` (PCA with third-moment signs for rotation groups,
            sorting without ties for S_n, per factor), a list of single-element
            :class:`Frame`s, or any callable / ``nn.Module`` ``x -> element batch [B]``
            (e.g. a learned equivariant network).
        frame_tol: tolerance of the ``"auto"`` PCA canonicalizer (relative eigenvalue gaps
            and third moments below it are degenerate; default 1e-3).
    """

    @check_args(frame_tol=Real(0, optional=True))
    def __init__(self, base: nn.Module, symmetry: Symmetry,
                 canonicalizer: str | Sequence[Frame] | Callable = "auto", frame_tol: float | None = None):
        super().__init__(base, symmetry)
        if frame_tol is not None and not (isinstance(canonicalizer, str) and canonicalizer == "auto"):
            raise ValueError("frame_tol sets the tolerance of the 'auto' canonicalizer's PCA frames")
        if isinstance(canonicalizer, str) and canonicalizer == "auto":
            canonicalizer = [default_frame(f, canonical=True, tol=frame_tol) for f in symmetry.group.factors]
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
        auto = isinstance(canonicalizer, str) and canonicalizer == "auto"
        return missing_frame(group, canonical=True) if auto else None

    def weighted_elements(self, x, context):
        if self.frames is not None:
            g, weights = frame_elements(self.frames, self.symmetry, x, context)
            if weights.shape[1] != 1:
                raise ValueError("a canonicalizer must give one element per input; these frames "
                                 f"give {weights.shape[1]} (use FrameAveraging for them)")
            return g, weights
        g = self.canonicalizer(x)
        ref = reference_tensor(x)
        dtype = ref.dtype if ref.is_floating_point() else None
        return g, torch.ones(context.batch_size, 1, device=ref.device, dtype=dtype)
