"""Wrappers that make any model equivariant: one pipeline (see :mod:`.base`), several
distributions over group elements."""

from .base import Symmetrizer
from .averaging import GroupAveraging
from .frame_averaging import Canonicalization, FrameAveraging
from .frames import Frame, GroupFrame, PCAFrame, SortFrame
from .probabilistic import LearnedCanonicalizer, ProbabilisticSymmetrization

__all__ = ["Symmetrizer", "GroupAveraging", "FrameAveraging", "Canonicalization", "Frame",
           "PCAFrame", "SortFrame", "GroupFrame", "ProbabilisticSymmetrization", "LearnedCanonicalizer"]
