"""Build actions from names, like groups: ``create_action("points")``,
``Symmetry("SO3", input="points", output="trivial")``.

An action module registers its class with :func:`register_action`; a new data type is
one new file (imported in ``actions/__init__``), no edits elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import store
from .base import Action

_ACTIONS: dict[str, Callable[..., Action]] = {}


def register_action(name: str):
    """Register an :class:`Action` class (or factory) under ``name`` (lower case); a taken
    name is replaced with a warning (:func:`symtrain.registry.store`)."""

    def wrap(cls):
        store(_ACTIONS, name.lower(), cls, "action")
        return cls

    return wrap


def list_actions() -> list[str]:
    """Names of every registered action."""
    return sorted(_ACTIONS)


def create_action(spec: str | Action, *args: Any, **kwargs: Any) -> Action:
    """An action from its registered name and constructor arguments; an :class:`Action`
    is returned as it is.

    >>> create_action("fields", "points", "vectors", "nodes")
    Fields(Points(nodes=True), Vectors(nodes=True), Nodes())
    """
    if isinstance(spec, Action):
        if args or kwargs:
            raise TypeError("arguments go with an action's name, not with an Action object")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"an action is a symtrain Action or a registered name, got {type(spec).__name__}")
    try:
        factory = _ACTIONS[spec.lower()]
    except KeyError:
        raise ValueError(f"unknown action {spec!r}; known actions: {', '.join(list_actions())}") from None
    return factory(*args, **kwargs)
