"""Exceptions with names that say what went wrong. All are ``ValueError`` subclasses so
``except ValueError`` keeps working."""

from __future__ import annotations

from typing import Sequence


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


class ArgumentError(SymmetryError):
    """An argument out of its domain, a factory's argument it does not take, or a
    required one missing. ``key`` names the argument; ``reason`` says what was wrong."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason

    def __reduce__(self):
        return type(self), (self.key, self.reason)


class DTypeError(SymmetryError):
    """Data whose dtype or device does not fit what acts on it (integer coordinates under
    a continuous group, a half-precision batch through float32 interface weights, a
    batch on another device than the wrapper's parameters)."""


class UnknownNameError(SymmetryError):
    """A name that no entry of a registry answers to (a group, action, symmetrizer,
    interface, dataset, model, method, ...). The message names the kind, the name, the
    known names and the close matches::

        unknown method 'gaa'; known: augment, ga, group_averaging, ...; did you mean 'ga'?

    Attributes: ``kind``, ``name``, ``known`` and ``matches`` (close names, best first)."""

    def __init__(self, kind: str, name: str, known: Sequence[str] = (), matches: Sequence[str] = (),
                 hint: str = ""):
        self.kind, self.name = kind, name
        self.known, self.matches, self.hint = list(known), list(matches), hint
        text = f"unknown {kind} {name!r}; known: {', '.join(self.known) or 'none'}"
        if self.matches:
            text += f"; did you mean {' or '.join(repr(m) for m in self.matches)}?"
        super().__init__(text + (f" ({hint})" if hint else ""))

    def __reduce__(self):  # picklable across processes (its __init__ takes more than the message)
        return type(self), (self.kind, self.name, self.known, self.matches, self.hint)
