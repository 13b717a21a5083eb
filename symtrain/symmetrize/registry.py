"""Symmetrization methods by name, timm-style:
``create_symmetrizer("ps", base, symmetry, samples=20)``.

A method registers its :class:`~symtrain.symmetrize.base.Symmetrizer` subclass (or a
factory ``(base, symmetry, **options) -> nn.Module``) with :func:`register_symmetrizer`;
its constructor's keyword arguments are its options, checked by name here, so a new
method is one new file that recipes can name at once.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from ..registry import store

from ..errors import SymmetryError
from ..symmetry import Symmetry

_METHODS: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, str] = {}


def register_symmetrizer(name: str, *aliases: str):
    """Register a symmetrizer class or factory under ``name`` (and ``aliases``); a taken
    name is replaced with a warning (:func:`symtrain.registry.store`)."""

    def wrap(fn):
        store(_METHODS, name, fn, "symmetrization method")
        for alias in aliases:
            store(_ALIASES, alias, name, "symmetrization method alias")
        return fn

    return wrap


def list_symmetrizers() -> list[str]:
    """Names of every registered symmetrization method (without aliases)."""
    return list(_METHODS)


def _resolve(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in _METHODS:
        raise SymmetryError(f"unknown symmetrization method {name!r}; registered: "
                            f"{', '.join(list_symmetrizers())}")
    return name


def is_symmetrizer(name: str) -> bool:
    return _ALIASES.get(name, name) in _METHODS


def symmetrizer_options(name: str) -> dict[str, inspect.Parameter]:
    """The options a method takes (its constructor's arguments after ``base, symmetry``)."""
    fn = _METHODS[_resolve(name)]
    params = list(inspect.signature(fn).parameters.values())
    return {p.name: p for p in params[2:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def create_symmetrizer(name: str, base: nn.Module, symmetry: Symmetry, **options: Any) -> nn.Module:
    """``base`` wrapped by the method ``name`` for ``symmetry``; unknown options raise
    :class:`~symtrain.errors.SymmetryError` naming them and the method's options."""
    key = _resolve(name)
    known = symmetrizer_options(key)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SymmetryError(f"{key}: unknown option(s) {', '.join(unknown)}; options: "
                            f"{', '.join(known) or 'none'}")
    return _METHODS[key](base, symmetry, **options)
