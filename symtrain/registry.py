"""Name → factory registries, timm-style (``register_model`` / ``create_model`` /
``list_models``), with arguments checked against the factory's signature.

A registry may own a package: every module of that package is imported the first time
the registry is read, so a new entry is one new file in that package and no other
edit. Import errors are not swallowed.

>>> reg = Registry("widget")
>>> @reg.register("square")
... def square(side: int = 1) -> int:
...     return side * side
>>> reg.list(), reg.create("square", side=3)
(['square'], 9)
>>> reg.create("square", sid=3)
Traceback (most recent call last):
...
symtrain.registry.ArgumentError: sid: not an argument of widget 'square' (arguments: side)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from typing import Any, Callable, Generic, Mapping, TypeVar

from .errors import SymmetryError

T = TypeVar("T")


class UnknownNameError(SymmetryError):
    """No entry of that name in a registry; the message lists the known names."""


class ArgumentError(SymmetryError):
    """An argument a factory does not take, or a required one missing. ``key`` names it."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def keyword_parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """Parameters of ``fn`` that can be passed by keyword (``**kwargs`` excluded)."""
    return {k: p for k, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_arguments(fn: Callable, kwargs: Mapping[str, Any], what: str,
                    skip: int = 0) -> None:
    """Raise :class:`ArgumentError` for a keyword ``fn`` does not take or a required one
    ``kwargs`` lacks. The first ``skip`` parameters are passed positionally by the caller."""
    params = dict(list(keyword_parameters(fn).items())[skip:])
    for key in kwargs:
        if key not in params:
            raise ArgumentError(key, f"not an argument of {what} (arguments: {', '.join(params) or 'none'})")
    for key, p in params.items():
        if p.default is p.empty and key not in kwargs:
            raise ArgumentError(key, f"required by {what}")


def store(entries: dict, name: str, obj: Any, kind: str) -> None:
    """``entries[name] = obj``, the one re-registration policy of every registry (timm's):
    the same object again is a no-op; another object under a taken name replaces it with
    a warning naming both (a user's module overriding a built-in, or a module imported
    twice under two names)."""
    old = entries.get(name)
    if old is not None and old is not obj:
        warnings.warn(f"{kind} {name!r} re-registered: {getattr(obj, '__qualname__', obj)!s} from "
                      f"{getattr(obj, '__module__', '?')} replaces {getattr(old, '__qualname__', old)!s} from "
                      f"{getattr(old, '__module__', '?')}", UserWarning, stacklevel=3)
    entries[name] = obj


class Registry(Generic[T]):
    """Factories by name. ``kind`` names the entries in messages (``"model"``);
    ``package`` (dotted) is imported module by module before the first look-up."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind, self.package = kind, package
        self._entries: dict[str, Callable[..., T]] = {}
        self._discovered = package is None

    def register(self, name: str, fn: Callable[..., T] | None = None):
        """``@registry.register("name")`` on a function or class, or
        ``registry.register("name", fn)``. A later registration of a name replaces it,
        with a warning (:func:`store`)."""
        if fn is not None:
            store(self._entries, name, fn, self.kind)
            return fn

        def wrap(f: Callable[..., T]) -> Callable[..., T]:
            store(self._entries, name, f, self.kind)
            return f
        return wrap

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def list(self) -> list[str]:
        """Sorted names."""
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        self._discover()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> T:
        """``factory(*args, **kwargs)`` after checking the keywords against its signature."""
        fn = self.get(name)
        check_arguments(fn, kwargs, f"{self.kind} {name!r}", skip=len(args))
        return fn(*args, **kwargs)
