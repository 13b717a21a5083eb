"""Exceptions with names that say what went wrong. All are ``ValueError`` subclasses so
``except ValueError`` keeps working."""


class SymmetryError(ValueError):
    """Base class of symtrain's input errors."""


class ShapeError(SymmetryError):
    """Data whose shape does not fit the action (e.g. points that are not ``[B, N, d]``)."""


class UnsupportedGroupError(SymmetryError):
    """An action cannot apply this group to this data, or not exactly."""


class DegenerateFrameError(SymmetryError):
    """A frame is not unique for this input (e.g. repeated PCA eigenvalues)."""


class NonFiniteError(SymmetryError):
    """Input holding NaN or infinite values."""
