"""Interfaces by name, timm-style: ``create_interface("permutation", symmetry, example=x)``.

An interface module registers its class with :func:`register_interface` on
:data:`INTERFACES` (found by package discovery: a new interface is one new file in
``symtrain/symmetrize/interfaces/``). The class says which groups it can produce
elements of (``Interface.supports``) and which of its constructor arguments it can read
off an example input (``Interface.infer_args``), so a recipe only names it (or its class
name), or leaves the choice to :func:`default_interface`.
"""

from __future__ import annotations

from typing import Any

from ...errors import UnsupportedGroupError
from ...groups.base import Group
from ...registry import Registry, by_class_name, check_arguments, keyword_parameters
from ...symmetry import Symmetry
from .base import Interface

#: Interface classes by name; a class name (``"PermutationInterface"``) finds its entry too.
INTERFACES: Registry[Interface] = Registry("interface", "symtrain.symmetrize.interfaces",
                                           fallback=by_class_name)


def register_interface(name: str):
    """Register an :class:`Interface` subclass under ``name`` (its class name works too)."""
    return INTERFACES.register(name)


def list_interfaces() -> list[str]:
    """Registered interface names, sorted."""
    return INTERFACES.list()


def get_interface_class(name: str) -> type[Interface]:
    """The interface class registered as ``name`` (or whose class name is ``name``)."""
    return INTERFACES.get(name)


def default_interface(group: Group) -> str:
    """The first registered interface that supports ``group`` among those that declare
    themselves default candidates (``Interface.default_candidate``; opt-in variants such
    as ``frame_residual`` must be named, whatever the order their files load in)."""
    for name, cls in INTERFACES.items():
        if cls.default_candidate and cls.supports(group):
            return name
    raise UnsupportedGroupError(f"no registered interface produces elements of {group}; "
                                f"registered: {', '.join(list_interfaces())}")


def interface_supports(spec: str | dict | Interface | None, group: Group) -> str | None:
    """``None`` if the interface ``spec`` (as :func:`create_interface` takes it; ``None``:
    the group's default) produces elements of ``group``, else the reason it does not."""
    if isinstance(spec, dict):
        spec = spec.get("name")
    if spec is None:
        try:
            default_interface(group)
        except UnsupportedGroupError as err:
            return str(err)
        return None
    cls = type(spec) if isinstance(spec, Interface) else get_interface_class(spec)
    return None if cls.supports(group) else f"interface {cls.__name__} does not produce elements of {group}"


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
    params = keyword_parameters(cls)
    if "group" in params and "group" not in args:
        args["group"] = symmetry.group
    if example is not None:
        for key, value in cls.infer_args(symmetry, example).items():
            if key in params:
                args.setdefault(key, value)
    check_arguments(cls, args, f"interface {name!r}")
    return cls(**args)
