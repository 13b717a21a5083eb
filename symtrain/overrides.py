"""``KEY=VALUE`` overrides, one parser for every command (``symtrain train --set``,
``symtrain lie --model-arg``).

Keys are dotted paths into a nested mapping (``optim.lr``); values are read as YAML, so
``3`` is an int, ``[3, 5]`` a list, ``true`` a bool, ``null`` None, and ``1e-3`` a float
(YAML 1.1 reads it as a string; numbers written as strings are converted).

>>> parse_override("optim.lr=1e-3")
(['optim', 'lr'], 0.001)
>>> apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]"])
{'a': {'b': 1, 'c': [1, 2]}}
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import yaml

from .errors import SymmetryError


class ConfigError(SymmetryError):
    """A setting that does not exist, or a value that does not fit it; the message starts
    with the dotted key (``optim.lrr: unknown key``)."""


def parse_value(raw: str) -> Any:
    """``raw`` read as YAML; a string that spells a number becomes that number."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot read value {raw!r}: {err}") from None
    if isinstance(value, str):
        for conv in (int, float):
            try:
                return conv(value)
            except ValueError:
                pass
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` → ``(["optim", "lr"], 0.001)``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=1e-3)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key segment in {key!r}")
    try:
        return parts, parse_value(raw)
    except ConfigError as err:
        raise ConfigError(f"{key.strip()}: {err}") from None


def deep_merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, recursively for nested mappings (copies, no mutation)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Set each ``a.b.c=v`` in a copy of the nested mapping ``data``."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])} is a value, not a section: "
                                  f"cannot set {'.'.join(parts)}")
            node = child
        node[parts[-1]] = value
    return out
