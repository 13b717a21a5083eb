"""Argument domains: what values a public function's numeric arguments may take, checked
before it runs, with an error naming the argument (standard library only, so the CLI
uses the same domains for its options; see :mod:`symtrain.cli._numbers`).

>>> from symtrain.domains import OPTIONAL_COUNT, NON_NEGATIVE, check_args
>>> @check_args(samples=OPTIONAL_COUNT, tol=NON_NEGATIVE)
... def check(model, *, samples=None, tol=1e-5):
...     return samples
>>> check(None, samples=-1)
Traceback (most recent call last):
...
symtrain.errors.ArgumentError: samples: must be a positive integer or None, got -1
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any, Callable

from .errors import ArgumentError


class Domain:
    """The values an argument may take. ``check(name, value)`` returns the value (as a
    Python number) or raises :class:`~symtrain.errors.ArgumentError` naming the argument,
    the value and the domain. ``bad_values()`` gives values outside the domain (the
    registry-driven tests try each on every public entry point that declares it)."""

    optional: bool = False

    def check(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def bad_values(self) -> list[Any]:
        raise NotImplementedError

    def example(self) -> Any:
        """A value inside the domain."""
        raise NotImplementedError

    def _none(self, name: str, value: Any) -> bool:
        if value is None:
            if self.optional:
                return True
            raise ArgumentError(name, f"must be {self}, got None")
        return False


def _number(value: Any) -> Any:
    """A Python/numpy number, or a 0-dim tensor's or array's value; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)) \
            and not isinstance(value, numbers.Number):
        return value.item()
    return value


class Count(Domain):
    """An integer ``>= minimum`` (Python or numpy, never a bool; ``None`` when ``optional``)."""

    def __init__(self, minimum: int | None = 1, optional: bool = False, what: str = ""):
        self.minimum, self.optional, self.what = minimum, optional, what

    def __str__(self):
        kind = {1: "a positive integer", 0: "a non-negative integer", None: "an integer"}.get(
            self.minimum, f"an integer >= {self.minimum}")
        return kind + (" or None" if self.optional else "") + (f" ({self.what})" if self.what else "")

    def check(self, name, value):
        if self._none(name, value):
            return None
        value = _number(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
                self.minimum is not None and value < self.minimum):
            raise ArgumentError(name, f"must be {self}, got {value!r}")
        return int(value)

    def example(self):
        return max(self.minimum if self.minimum is not None else 0, 1)

    def bad_values(self):
        low = [] if self.minimum is None else [self.minimum - 1, self.minimum - 7]
        return low + [2.5, True, "3", float("nan")] + ([] if self.optional else [None])


class Counts(Domain):
    """A non-empty sequence (or range) of integers, each in ``Count(minimum)``."""

    def __init__(self, minimum: int = 1, what: str = ""):
        self.item, self.what = Count(minimum), what

    def __str__(self):
        return f"a non-empty sequence of {self.item}s" + (f" ({self.what})" if self.what else "")

    def check(self, name, value):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ArgumentError(name, f"must be {self}, got {value!r}")
        items = list(value)
        if not items:
            raise ArgumentError(name, f"must be {self}, got an empty sequence")
        for i, item in enumerate(items):
            self.item.check(f"{name}[{i}]", item)
        return value

    def example(self):
        return [self.item.example()]

    def bad_values(self):
        return [[], [self.item.minimum - 1], [3, 2.5], 5, "12"]


class OneOf(Domain):
    """One of a few allowed values (compared with ``==``; bools never match numbers)."""

    def __init__(self, *values: Any, optional: bool = False):
        self.values, self.optional = values, optional

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values) + (" or None" if self.optional else "")

    def check(self, name, value):
        if self._none(name, value):
            return None
        if isinstance(value, bool) or not any(value == v and type(value) is type(v) for v in self.values):
            raise ArgumentError(name, f"must be {self}, got {value!r}")
        return value

    def example(self):
        return self.values[0]

    def bad_values(self):
        return [object(), True, -1, "none-of-these"] + ([] if self.optional else [None])


class Real(Domain):
    """A finite real number in ``[low, high]`` (an end is excluded with ``low_open`` /
    ``high_open``; ``None`` for no bound). Integers are accepted; bools, NaN and
    infinities are not."""

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False, optional: bool = False, what: str = ""):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.optional, self.what = optional, what

    def __str__(self):
        if self.low == 0 and self.high is None:
            kind = "a positive number" if self.low_open else "a non-negative number"
        elif self.low is None and self.high is None:
            kind = "a finite number"
        else:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            kind = (f"a number in {'(' if self.low_open or self.low is None else '['}{lo}, "
                    f"{hi}{')' if self.high_open or self.high is None else ']'}")
        return kind + (" or None" if self.optional else "") + (f" ({self.what})" if self.what else "")

    def check(self, name, value):
        if self._none(name, value):
            return None
        value = _number(value)
        ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            raise ArgumentError(name, f"must be {self}, got {value!r}")
        return value

    def example(self):
        lo = self.low if self.low is not None else (self.high - 1 if self.high is not None else 0.0)
        hi = self.high if self.high is not None else lo + 2
        return (lo + hi) / 2

    def bad_values(self):
        bad = [float("nan"), float("inf"), True, "0.1"] + ([] if self.optional else [None])
        if self.low is not None:
            bad.append(self.low if self.low_open else self.low - 1)
        if self.high is not None:
            bad.append(self.high if self.high_open else self.high + 1)
        return bad


#: Shorthands for the usual domains.
POSITIVE_INT = Count(1)
OPTIONAL_COUNT = Count(1, optional=True)
NON_NEGATIVE_INT = Count(0)
POSITIVE = Real(0, low_open=True)
NON_NEGATIVE = Real(0)
PROBABILITY = Real(0, 1)
FINITE = Real()


def check_samples(name: str, value: Any, optional: bool = True) -> int | None:
    """A count of group elements per input: an integer >= 1, Python or numpy, never a
    bool (or ``None`` when ``optional``)."""
    return Count(1, optional=optional, what="group elements per input").check(name, value)


def check_fields(obj: Any) -> None:
    """Check a dataclass's fields against its class attribute ``__domains__`` (call it
    from ``__post_init__``; the dataclass counterpart of :func:`check_args`)."""
    for name, domain in type(obj).__domains__.items():
        domain.check(name, getattr(obj, name))


def check_args(**domains: Domain) -> Callable:
    """Decorate a public function (or a class's ``__init__``) so that the named arguments
    are checked against their :class:`Domain` before it runs::

        @check_args(samples=OPTIONAL_COUNT, tol=NON_NEGATIVE)
        def assert_equivariant(model, x, symmetry=None, *, tol=1e-5, samples=None): ...

    An out-of-domain value raises :class:`~symtrain.errors.ArgumentError` ("tol: must be a
    non-negative number, got -1"). Values are passed on as given (a numpy integer stays
    one). The domains are kept on the function as ``__domains__`` for the tests."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        unknown = set(domains) - set(sig.parameters)
        if unknown:
            raise TypeError(f"check_args on {fn.__qualname__}: no parameters {sorted(unknown)}")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind_partial(*args, **kwargs)
            for name, value in bound.arguments.items():
                if name in domains:
                    domains[name].check(name, value)
            return fn(*args, **kwargs)

        wrapper.__domains__ = dict(domains)  # type: ignore[attr-defined]
        return wrapper

    return decorate
