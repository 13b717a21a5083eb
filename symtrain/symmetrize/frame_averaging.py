from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import UnsupportedGroupError
from ..symmetry import Symmetry
from .base import Symmetrizer, reference_tensor
from .frames import Frame, default_frame, frame_elements


class FrameAveraging(Symmetrizer):
    """Average ``g·f(g⁻¹·x)`` over an input-dependent frame ``F(x)`` (exactly equivariant).

    Args:
        frames: one :class:`~symtrain.symmetrize.frames.Frame` per factor of the group;
            default: PCA frames (all sign flips) for O(d)/SO(d)/E(d)/SE(d), sort frames
            (ties enumerated) for S_n, the whole group for other finite groups.
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry, frames: Sequence[Frame] | None = None):
        super().__init__(base, symmetry)
        factors = symmetry.group.factors
        frames = list(frames) if frames is not None else [default_frame(f) for f in factors]
        if len(frames) != len(factors):
            raise ValueError(f"{symmetry.group} has {len(factors)} factors but {len(frames)} frames were given")
        self.frames = frames

    def elements(self, x, context):
        return frame_elements(self.frames, self.symmetry, x, context)

    def extra_repr(self):
        return f"{super().extra_repr()}, frames={self.frames}"


class Canonicalization(Symmetrizer):
    """Run the base model once, on the canonical pose ``g(x)⁻¹·x``, and map its output back
    by ``g(x)``. Exactly equivariant when the canonicalizer is: ``g(h·x) = h·g(x)``.

    Args:
        canonicalizer: ``"auto"`` (PCA with third-moment signs for rotation groups,
            sorting without ties for S_n, per factor), a list of single-element
            :class:`Frame`s, or any callable / ``nn.Module`` ``x -> element batch [B]``
            (e.g. a learned equivariant network).
    """

    def __init__(self, base: nn.Module, symmetry: Symmetry,
                 canonicalizer: str | Sequence[Frame] | Callable = "auto"):
        super().__init__(base, symmetry)
        if canonicalizer == "auto":
            canonicalizer = [default_frame(f, canonical=True) for f in symmetry.group.factors]
        if isinstance(canonicalizer, (list, tuple)):
            self.frames = list(canonicalizer)
            self.canonicalizer = None
        elif callable(canonicalizer):
            self.frames = None
            self.canonicalizer = canonicalizer  # an nn.Module here is registered as a submodule
        else:
            raise UnsupportedGroupError(f"canonicalizer must be 'auto', frames or a callable, got {canonicalizer!r}")

    def elements(self, x, context):
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
