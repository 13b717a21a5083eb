"""Build groups from strings, timm-style: ``create_group("S_n x O3")``.

A group module registers a name pattern with :func:`register_group` (a full-match regex
on :data:`GROUPS`, found by package discovery): adding a group is one new file in
``symtrain/groups/``, no edits elsewhere.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..registry import Registry
from .base import Group

#: Group families by name pattern (``C(\d+)``, ``SO(\d)``, ``S_?n``, ...), case-insensitive.
GROUPS: Registry[Group] = Registry("group", "symtrain.groups", ignore_case=True,
                                   hint="combine groups with ' x '")


def register_group(pattern: str, example: str) -> Any:
    """Register a constructor for names matching ``pattern`` (a full-match regex whose
    groups are passed to the constructor as strings); ``example`` is listed by
    :func:`list_groups`."""
    return GROUPS.register_pattern(pattern, example=example)


def list_groups() -> list[str]:
    """Example names of every registered group family."""
    return GROUPS.list()


def create_group(name: str | Group) -> Group:
    """Parse a group name (parentheses are ignored: ``O(2)`` is ``O2``). Direct products
    are written with ``x``, ``×`` or ``*``.

    >>> str(create_group("S_n x O3"))
    'S_n x O3'
    """
    if isinstance(name, Group):
        return name
    parts = [p.strip() for p in re.split(r"\s+x\s+|\s*×\s*|\s*\*\s*", name.strip()) if p.strip()]
    if len(parts) > 1:
        from .product import DirectProduct

        return DirectProduct(*(create_group(p) for p in parts))
    token = parts[0] if parts else ""
    factory: Callable[[], Group] = GROUPS.get(token.replace("(", "").replace(")", ""))
    return factory()
