"""Name → factory registries, timm-style (``register_model`` / ``create_model`` /
``list_models``), with arguments checked against the factory's signature. Every
registry of symtrain is one of these: groups, actions, symmetrizers and training methods,
interfaces, datasets, models, commands.

An entry is found by its name, by an alias (``ga`` for ``group_averaging``), by a
pattern (a full-match regex whose captured groups are passed to the factory:
``SO(\\d)`` makes ``SO3``), or by an optional fallback (interfaces by class name).
An unknown name raises :class:`~symtrain.errors.UnknownNameError`, which lists the close
matches and the known names.

A registry may own a package: every module of that package is imported the first time
the registry is read, so a new entry is one new file in that package and no other
edit (no import line in ``__init__.py``). Import errors are not swallowed.

>>> reg = Registry("widget")
>>> @reg.register("square", aliases=("sq",))
... def square(side: int = 1) -> int:
...     return side * side
>>> reg.list(), reg.create("sq", side=3)
(['square'], 9)
>>> reg.create("square", sid=3)
Traceback (most recent call last):
...
symtrain.errors.ArgumentError: sid: not an argument of widget 'square' (arguments: side)
>>> reg.get("sqare")
Traceback (most recent call last):
...
symtrain.errors.UnknownNameError: unknown widget 'sqare'; known: square; did you mean 'square'?
"""

from __future__ import annotations

import builtins
import difflib
import functools
import importlib
import inspect
import pkgutil
import re
import warnings
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from .errors import ArgumentError, UnknownNameError  # noqa: F401  (ArgumentError re-exported)

__all__ = ["Registry", "UnknownNameError", "ArgumentError", "keyword_parameters", "check_arguments",
           "store", "by_class_name"]

T = TypeVar("T")


def keyword_parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """Parameters of ``fn`` that can be passed by keyword (``**kwargs`` excluded)."""
    return {k: p for k, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_arguments(fn: Callable, kwargs: Mapping[str, Any], what: str, skip: int = 0,
                    hidden: Iterable[str] = ()) -> None:
    """Raise :class:`ArgumentError` for a keyword ``fn`` does not take or a required one
    ``kwargs`` lacks. The first ``skip`` parameters are passed positionally by the caller;
    ``hidden`` ones are filled in by the caller too (not arguments for ``kwargs`` to
    give). A ``**kwargs`` parameter takes any keyword."""
    hidden = set(hidden)
    params = {k: p for k, p in list(keyword_parameters(fn).items())[skip:] if k not in hidden}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    for key in kwargs:
        if key not in params and not (open_ended and key not in hidden):
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


def by_class_name(name: str, entries: Mapping[str, Callable]) -> str | None:
    """A fallback for :class:`Registry`: the registered name of the entry whose
    ``__name__`` is ``name`` (``"PermutationInterface"`` → ``"permutation"``)."""
    return next((key for key, fn in entries.items() if getattr(fn, "__name__", None) == name), None)


class Registry(Generic[T]):
    """Factories by name.

    Args:
        kind: what the entries are, in messages (``"model"``).
        package: dotted name of a package whose modules are all imported before the
            first look-up (discovery: a new entry is a new file there).
        ignore_case: names match whatever their case (``"Points"`` is ``"points"``).
        fallback: ``fallback(name, entries) -> registered name | None``, tried when no
            name, alias or pattern matches (e.g. :func:`by_class_name`).
        hint: a last word for the unknown-name error (``"combine groups with ' x '"``).
    """

    def __init__(self, kind: str, package: str | None = None, *, ignore_case: bool = False,
                 fallback: Callable[[str, Mapping[str, Callable]], str | None] | None = None,
                 hint: str = ""):
        self.kind, self.package = kind, package
        self.ignore_case, self.fallback, self.hint = ignore_case, fallback, hint
        self._entries: dict[str, Callable[..., T]] = {}
        self._aliases: dict[str, str] = {}
        self._tags: dict[str, frozenset[str]] = {}
        self._patterns: dict[str, Callable[..., T]] = {}
        self._regex: dict[str, tuple[re.Pattern, str]] = {}
        self._discovered = package is None

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.package!r})"

    # --- registration ---------------------------------------------------------------
    def _key(self, name: str) -> str:
        return name.lower() if self.ignore_case else name

    def register(self, name: str, fn: Callable[..., T] | None = None, *, aliases: Iterable[str] = (),
                 tags: Iterable[str] = ()):
        """``@registry.register("name")`` on a function or class, or
        ``registry.register("name", fn)``. ``aliases`` are other names for it; ``tags``
        label it for :meth:`list` (``tag=``). A later registration of a name replaces it,
        with a warning (:func:`store`)."""
        key, aliases, tags = self._key(name), tuple(aliases), frozenset(tags)

        def wrap(f: Callable[..., T]) -> Callable[..., T]:
            store(self._entries, key, f, self.kind)
            self._tags[key] = tags
            for alias in aliases:
                store(self._aliases, self._key(alias), key, f"{self.kind} alias")
            return f
        return wrap(fn) if fn is not None else wrap

    def register_pattern(self, pattern: str, fn: Callable[..., T] | None = None, *, example: str):
        """Register ``fn`` for every name that fully matches the regex ``pattern``; the
        match's groups are passed to it as strings (``r"SO(\\d)"`` → ``fn("3")``).
        ``example`` is the name :meth:`list` shows for the pattern."""
        flags = re.IGNORECASE if self.ignore_case else 0

        def wrap(f: Callable[..., T]) -> Callable[..., T]:
            store(self._patterns, pattern, f, f"{self.kind} pattern")
            self._regex[pattern] = (re.compile(pattern, flags), example)
            return f
        return wrap(fn) if fn is not None else wrap

    def unregister(self, name: str) -> None:
        """Remove a name (with its aliases) or a pattern; unknown names are ignored."""
        key = self._key(name)
        self._entries.pop(key, None)
        self._tags.pop(key, None)
        for alias in [a for a, target in self._aliases.items() if target == key or a == key]:
            del self._aliases[alias]
        self._patterns.pop(name, None)
        self._regex.pop(name, None)

    # --- discovery ------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    # --- reading --------------------------------------------------------------------
    def list(self, tag: str | None = None) -> builtins.list[str]:
        """Sorted names (and the examples of patterns); with ``tag``, only the names
        registered with that tag. Aliases are not listed."""
        self._discover()
        names = [n for n in self._entries if tag is None or tag in self._tags.get(n, ())]
        if tag is None:
            names += [example for _, example in self._regex.values()]
        return sorted(names)

    def items(self) -> builtins.list[tuple[str, Callable[..., T]]]:
        """``(name, factory)`` pairs in registration order (patterns excluded)."""
        self._discover()
        return builtins.list(self._entries.items())

    def aliases(self) -> dict[str, str]:
        """``{alias: name}``."""
        self._discover()
        return dict(self._aliases)

    def tags(self, name: str) -> frozenset[str]:
        """The tags ``name`` was registered with (empty for patterns)."""
        return self._tags.get(self.canonical(name), frozenset())

    def __contains__(self, name: str) -> bool:
        self._discover()
        return self._resolve(name) is not None

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` stands for (an alias's target, a class
        name's entry); a pattern-matched name is returned as it is."""
        self._discover()
        found = self._resolve(name)
        if found is None:
            raise self.unknown(name)
        return found[0]

    def get(self, name: str) -> Callable[..., T]:
        """The factory ``name`` stands for; for a pattern, the factory with the match's
        groups bound (``functools.partial``)."""
        self._discover()
        found = self._resolve(name)
        if found is None:
            raise self.unknown(name)
        return found[1]

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> T:
        """``factory(*args, **kwargs)`` after checking the keywords against its signature."""
        fn = self.get(name)
        check_arguments(fn, kwargs, f"{self.kind} {name!r}", skip=len(args))
        return fn(*args, **kwargs)

    def unknown(self, name: str, tag: str | None = None) -> UnknownNameError:
        """The error for a name not found (among the names tagged ``tag``, if given)."""
        self._discover()
        known = self.list(tag)
        candidates = known + [a for a, target in self._aliases.items() if target in known]
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(str(name).lower(), builtins.list(lowered), n=3, cutoff=0.6)
        return UnknownNameError(self.kind if tag is None else tag, name, known,
                                [lowered[m] for m in matches], self.hint)

    def _resolve(self, name: str) -> tuple[str, Callable[..., T]] | None:
        if not isinstance(name, str):
            return None
        key = self._key(name)
        key = self._aliases.get(key, key)
        if key in self._entries:
            return key, self._entries[key]
        for pattern, (regex, _) in self._regex.items():
            match = regex.fullmatch(name)
            if match:
                return name, functools.partial(self._patterns[pattern], *match.groups())
        if self.fallback is not None:
            key = self.fallback(name, self._entries)
            if key is not None:
                return key, self._entries[key]
        return None
