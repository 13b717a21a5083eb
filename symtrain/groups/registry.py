"""Build groups from strings, timm-style: ``create_group("S_n x O3")``.

A group module registers a name pattern with :func:`register_group`; adding a group is
one new file, no edits elsewhere (other than importing it in ``groups/__init__``).
"""

from __future__ import annotations

import re
from typing import Callable

from ..registry import store
from .base import Group

_PATTERNS: dict[str, tuple[re.Pattern, Callable[..., Group], str]] = {}


def register_group(pattern: str, example: str):
    """Register a constructor for names matching ``pattern`` (a full-match regex whose
    groups are passed to the constructor as strings)."""

    def wrap(fn: Callable[..., Group]) -> Callable[..., Group]:
        old = _PATTERNS.get(pattern)
        entry = (re.compile(pattern, re.IGNORECASE), fn, example)
        store(_PATTERNS, pattern, old if old is not None and old[1] is fn else entry, "group pattern")
        return fn

    return wrap


def list_groups() -> list[str]:
    """Example names of every registered group family."""
    return sorted(example for _, _, example in _PATTERNS.values())


def create_group(name: str | Group) -> Group:
    """Parse a group name. Direct products are written with ``x`` or ``×``.

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
    for regex, fn, _ in _PATTERNS.values():
        match = regex.fullmatch(token.replace("(", "").replace(")", ""))
        if match:
            return fn(*match.groups())
    raise ValueError(f"unknown group {name!r}; known group families: {', '.join(list_groups())} "
                     "(combine them with ' x ')")
