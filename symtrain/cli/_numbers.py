"""Number options of the commands, checked while the command line is read, against the
same domains as the library's arguments (:mod:`symtrain.domains`):
``parser.add_argument("--samples", type=COUNT)``. An out-of-domain value is argparse's
usage error, one line with exit code 2 (``symtrain fit: error: argument --bootstrap:
must be a positive integer, got -5``). ``domain`` on each type is read by the tests,
which try its out-of-domain values on every number option of every command.
"""

from __future__ import annotations

import argparse
from typing import Callable

from ..domains import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Count, Domain, Real
from ..errors import ArgumentError


class NumberType:
    """An argparse ``type=``: ``parse`` the text (``int`` or ``float``), then check it
    against ``domain``."""

    def __init__(self, parse: Callable[[str], float], domain: Domain):
        self.parse, self.domain = parse, domain
        self.__name__ = str(domain)  # argparse names the type in some messages

    def __call__(self, text: str):
        try:
            value = self.parse(text)
        except ValueError:
            kind = "an integer" if self.parse is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        try:
            return self.domain.check("value", value)
        except ArgumentError as err:
            raise argparse.ArgumentTypeError(err.reason) from None

    def __repr__(self) -> str:
        return f"NumberType({self.parse.__name__}, {self.domain})"


COUNT = NumberType(int, POSITIVE_INT)
NON_NEGATIVE_COUNT = NumberType(int, Count(0))
SEED = NumberType(int, Count(None))
POSITIVE_NUMBER = NumberType(float, POSITIVE)
NON_NEGATIVE_NUMBER = NumberType(float, NON_NEGATIVE)
FRACTION = NumberType(float, Real(0, 1, low_open=True, high_open=True))
