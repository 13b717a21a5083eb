"""Methods by name, timm-style: ``create_symmetrizer("ps", base, symmetry, samples=20)``.

:data:`METHODS` is the one registry of methods, what ``symmetrization.method`` in a recipe
may say. A **symmetrizer** (a wrapper model: ``group_averaging``, ``ps``, …) registers
its :class:`~symtrain.symmetrize.base.Symmetrizer` subclass, or a factory
``(base, symmetry, **options) -> nn.Module``, with :func:`register_symmetrizer`; the
training-only methods (``none``, ``augment``, ``remul``, in
:mod:`symtrain.train.methods`) are entries of the same registry, built by the same
factory (:func:`symtrain.train.methods.create_method`). An entry's keyword arguments
after ``base, symmetry`` are its options, checked by name here, so a new method is one
new file (in ``symtrain/symmetrize/``, found by package discovery, or imported) that
recipes can name at once.

An entry says which groups it can work with: ``entry.supports(group, **options) -> reason
| None`` (:meth:`Symmetrizer.supports`); :func:`symmetrizer_supports` asks it by name.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from ..errors import UnsupportedGroupError
from ..groups.base import Group
from ..groups.registry import create_group
from ..registry import Registry, check_arguments
from ..symmetry import Symmetry

#: The methods: symmetrizers (tagged ``"symmetrizer"``) and training-only methods.
METHODS: Registry[nn.Module] = Registry("method", "symtrain.symmetrize")

#: The tag of symmetrizers among :data:`METHODS`.
SYMMETRIZER = "symmetrizer"


def register_symmetrizer(name: str, *aliases: str, supports: Callable[..., str | None] | None = None):
    """Register a symmetrizer class or factory under ``name`` (and ``aliases``); a taken
    name is replaced with a warning (:func:`symtrain.registry.store`). ``supports``: for
    a factory function, its ``supports(group, **options)`` (a class has its own)."""

    def wrap(fn):
        if supports is not None:
            fn.supports = supports
        return METHODS.register(name, fn, aliases=aliases, tags=(SYMMETRIZER,))

    return wrap


def list_symmetrizers() -> list[str]:
    """Names of every registered symmetrizer (without aliases), sorted."""
    return METHODS.list(tag=SYMMETRIZER)


def _symmetrizer(name: str) -> Callable[..., nn.Module]:
    if name not in METHODS or SYMMETRIZER not in METHODS.tags(name):
        raise METHODS.unknown(name, tag=SYMMETRIZER)
    return METHODS.get(name)


def symmetrizer_options(name: str) -> dict[str, inspect.Parameter]:
    """The options a symmetrizer takes (its constructor's arguments after ``base, symmetry``)."""
    params = list(inspect.signature(_symmetrizer(name)).parameters.values())
    return {p.name: p for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def method_supports(name: str, group: str | Group, **options: Any) -> str | None:
    """``None`` if the method ``name`` can work with ``group`` (given ``options``), else
    the reason it cannot. An entry without a ``supports`` supports every group."""
    supports = getattr(METHODS.get(name), "supports", None)
    return None if supports is None else supports(create_group(group), **options)


def symmetrizer_supports(name: str, group: str | Group, **options: Any) -> str | None:
    """``None`` if the symmetrizer ``name`` can make a model equivariant to ``group``,
    else the reason it cannot (``"SO3 is infinite: exact averaging is impossible; …"``).
    ``options`` are the ones it would be built with (``samples=8`` makes group averaging
    work on infinite groups).

    >>> symmetrizer_supports("ga", "SO3", samples=8) is None, symmetrizer_supports("fa", "S_n") is None
    (True, True)
    """
    _symmetrizer(name)
    return method_supports(name, group, **options)


def check_supported(name: str, group: Group, options: dict[str, Any]) -> None:
    """Raise :class:`~symtrain.errors.UnsupportedGroupError` with the method's reason if
    ``name`` cannot work with ``group``."""
    reason = method_supports(name, group, **options)
    if reason is not None:
        raise UnsupportedGroupError(f"method {name!r} does not support {group}: {reason}")


def create_symmetrizer(name: str, base: nn.Module, symmetry: Symmetry, **options: Any) -> nn.Module:
    """``base`` wrapped by the symmetrizer ``name`` for ``symmetry``. Unknown options raise
    :class:`~symtrain.registry.ArgumentError` naming them and the method's options; a
    group the method does not support raises
    :class:`~symtrain.errors.UnsupportedGroupError` with its reason."""
    fn = _symmetrizer(name)
    check_arguments(fn, options, f"method {name!r}", skip=2)
    check_supported(name, symmetry.group, options)
    return fn(base, symmetry, **options)
