"""Build actions from names, like groups: ``create_action("points")``,
``Symmetry("SO3", input="points", output="trivial")``.

An action module registers its class with :func:`register_action` on :data:`ACTIONS`
(found by package discovery): a new data type is one new file in ``symtrain/actions/``
(or anywhere, imported before use), no edits elsewhere.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Action

#: Actions by name, case-insensitive.
ACTIONS: Registry[Action] = Registry("action", "symtrain.actions", ignore_case=True)


def register_action(name: str) -> Any:
    """Register an :class:`Action` class (or factory) under ``name`` (any case); a taken
    name is replaced with a warning (:func:`symtrain.registry.store`)."""
    return ACTIONS.register(name)


def list_actions() -> list[str]:
    """Names of every registered action."""
    return ACTIONS.list()


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
    return ACTIONS.get(spec)(*args, **kwargs)
