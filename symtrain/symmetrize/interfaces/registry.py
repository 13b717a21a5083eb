"""Interfaces by name, timm-style: ``create_interface("permutation", symmetry, example=x)``.

An interface module registers its class with :func:`register_interface`. The class
says which groups it can produce elements of (``Interface.supports``) and which of its
constructor arguments it can read off an example input (``Interface.infer_args``), so
a recipe only names it, or leaves the choice to :func:`default_interface`.
"""

from __future__ import annotations

import inspect
from typing import Any

from ...errors import SymmetryError, UnsupportedGroupError
from ...groups.base import Group
from ...registry import store
from ...symmetry import Symmetry
from .base import Interface

_INTERFACES: dict[str, type[Interface]] = {}


def register_interface(name: str):
    """Register an :class:`Interface` subclass under ``name`` (its class name works too)."""

    def wrap(cls: type[Interface]) -> type[Interface]:
        store(_INTERFACES, name, cls, "interface")
        return cls

    return wrap


def list_interfaces() -> list[str]:
    """Registered interface names, in registration order."""
    return list(_INTERFACES)


def get_interface_class(name: str) -> type[Interface]:
    if name in _INTERFACES:
        return _INTERFACES[name]
    for cls in _INTERFACES.values():
        if cls.__name__ == name:
            return cls
    raise SymmetryError(f"unknown interface {name!r}; registered: {', '.join(list_interfaces())}")


def default_interface(group: Group) -> str:
    """The first registered interface that supports ``group``."""
    for name, cls in _INTERFACES.items():
        if cls.supports(group):
            return name
    raise UnsupportedGroupError(f"no registered interface produces elements of {group}; "
                                f"registered: {', '.join(list_interfaces())}")


def create_interface(spec: str | dict | Interface | None, symmetry: Symmetry, *,
                     example: Any = None, **kwargs: Any) -> Interface:
    """An interface for ``symmetry``.

    Args:
        spec: a registered name (or class name), a dict ``{"name": ..., **arguments}``,
            an :class:`Interface` (returned as it is) or ``None`` (the group's default).
        example: an input batch; constructor arguments the interface can read off it
            (``Interface.infer_args``: channel counts) are filled in when not given.
        kwargs: constructor arguments (they override ``spec``'s).
    """
    if isinstance(spec, Interface):
        return spec
    args: dict[str, Any] = {}
    if isinstance(spec, dict):
        args = dict(spec)
        spec = args.pop("name", None)
    args.update(kwargs)
    name = spec if spec is not None else default_interface(symmetry.group)
    cls = get_interface_class(name)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(args) - set(params))
    if unknown:
        known = [p for p in params if p != "self"]
        raise SymmetryError(f"{cls.__name__}: unknown argument(s) {', '.join(unknown)}; "
                            f"arguments: {', '.join(known)}")
    if "group" in params and "group" not in args:
        args["group"] = symmetry.group
    if example is not None:
        for key, value in cls.infer_args(symmetry, example).items():
            if key in params:
                args.setdefault(key, value)
    return cls(**args)
