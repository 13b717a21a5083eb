"""Path options of the commands, checked while the command line is read (before anything
runs or is written): ``parser.add_argument("--out", type=OUTPUT_FOLDER)``.

Each type is a check of :mod:`symtrain.paths` under the option's name; a wrong kind of
path is argparse's usage error, which :func:`symtrain.cli.build_parser` prints as one
line (``symtrain NAME: error: argument --out: runs/x is a file, not a folder; ...``) with
exit code 2. ``kind`` on each type says what it expects (the tests read it to try every
path option of every command).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..paths import PathKindError, input_file, input_folder, output_file, output_folder


class PathType:
    """An argparse ``type=`` that checks a path with ``check`` (a :mod:`symtrain.paths`
    function) and returns it unchanged (a string, as without the check)."""

    def __init__(self, check: Callable[[str, str], Path], kind: str):
        self.check, self.kind = check, kind
        self.__name__ = kind  # argparse names the type in some messages

    def __call__(self, text: str) -> str:
        try:
            self.check(text, "path")
            return text
        except PathKindError as err:
            # argparse prefixes "argument --opt: "; drop the generic "path: " of the check
            raise argparse.ArgumentTypeError(str(err).removeprefix("path: ")) from None

    def __repr__(self) -> str:
        return f"PathType({self.kind!r})"


INPUT_FILE = PathType(input_file, "input file")
INPUT_FOLDER = PathType(input_folder, "input folder")
OUTPUT_FOLDER = PathType(output_folder, "output folder")
OUTPUT_FILE = PathType(output_file, "output file")


def module_or_file(text: str) -> str:
    """``--import``: a dotted module name, or a ``.py`` file that must exist."""
    if text.endswith(".py") or "/" in text or Path(text).exists():
        INPUT_FILE(text)
    return text


module_or_file.kind = "module or file"  # type: ignore[attr-defined]
