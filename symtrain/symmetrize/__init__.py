"""Wrappers that make any model equivariant: one pipeline (see :mod:`.base`), several
distributions over group elements, registered by name (:func:`create_symmetrizer`; a
module of this package that registers one is found without an import line here)."""

from .averaging import GroupAveraging
from .base import Symmetrizer
from .canonicalization import Canonicalization
from .frame_averaging import FrameAveraging
from .frames import Frame, GroupFrame, MinimalFrame, PCAFrame, SortFrame
from .frames_permutation import MinimalPermutationFrame
from .probabilistic import LearnedCanonicalizer, ProbabilisticSymmetrization
from .qr_frame import qr_frame
from .registry import (
                       create_symmetrizer,
                       list_symmetrizers,
                       register_symmetrizer,
                       symmetrizer_options,
                       symmetrizer_supports,
)

__all__ = ["Symmetrizer", "GroupAveraging", "FrameAveraging", "Canonicalization", "Frame",
           "MinimalFrame", "MinimalPermutationFrame", "qr_frame", "PCAFrame", "SortFrame", "GroupFrame",
           "ProbabilisticSymmetrization", "LearnedCanonicalizer",
           "create_symmetrizer", "list_symmetrizers", "register_symmetrizer", "symmetrizer_options",
           "symmetrizer_supports"]
