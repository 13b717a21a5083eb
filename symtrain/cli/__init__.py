"""The ``symtrain`` command: one module of this package per subcommand.

**Adding a command** is one new file ``symtrain/cli/NAME.py`` and no other edit::

    import argparse

    from . import COMMANDS


    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", default="out")


    @COMMANDS.register("NAME")
    def run(args: argparse.Namespace) -> int:
        \"\"\"one-line help, shown by ``symtrain --help``\"\"\"
        from symtrain.heavy_part import do_it   # torch-heavy imports here, not at the top

        result = do_it(args.out)                # library code returns data ...
        print(result)                           # ... and only symtrain/cli/ prints
        return 0                                # exit code; 2 for a one-line usage error

The rules:

- the module defines ``add_arguments(parser)`` and ``run(args) -> int``, and registers
  ``run`` under the command's name; the first line of ``run``'s docstring is the help;
- every module of this package is imported to build the parser (``symtrain --help``
  lists them all), so a command imports only the standard library and ``symtrain.cli``
  at its top; torch, accelerate, timm, scipy, matplotlib and symtrain's training code
  are imported inside ``run``;
- this package is the only place in ``symtrain/`` that prints: library functions return
  results (rows, dataclasses, dicts) and report progress through :mod:`logging`;
- an error the user can fix prints one line, ``symtrain NAME: ...`` on stderr, and
  returns 2; so does a usage error of the command line (:class:`Parser`); a
  :class:`~symtrain.errors.SymmetryError` that reaches :func:`main` is printed so;
- a number option takes its ``type=`` from :mod:`symtrain.cli._numbers` (``COUNT``,
  ``SEED``, ``FRACTION``, ...): the library's argument domains, refused while the
  command line is read;
- a path option takes its ``type=`` from :mod:`symtrain.cli._paths` (``OUTPUT_FOLDER``,
  ``INPUT_FILE``, ...), so a path of the wrong kind is refused before anything runs;
- an option that only means something with another one is declared in the module's
  ``NEEDS = {"probes": ("--layerwise", lambda args: args.layerwise)}`` (option dest →
  what it needs, and the test of it), with ``default=None``: given without what it needs
  it is refused in one line (exit 2), never silently dropped (:func:`unmet_needs`);
- a module whose name starts with ``_`` is a helper, not a command.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import SymmetryError
from ..registry import Registry

COMMANDS: Registry = Registry("command", "symtrain.cli")


def command_help(name: str) -> str:
    """The one-line help of a command: the first line of its ``run``'s docstring."""
    doc = COMMANDS.get(name).__doc__ or ""
    return doc.strip().split("\n", 1)[0].strip()


def command_module(name: str):
    """The module of a command, which defines its ``add_arguments`` and ``run``."""
    return sys.modules[COMMANDS.get(name).__module__]


class Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line on stderr, exit code 2:
    ``symtrain train: error: argument --out: x is a file, not a folder; choose a folder``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``symtrain``, one subparser per registered command."""
    parser = Parser(prog="symtrain", description="Make any PyTorch model equivariant, and measure it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS.list():
        help_text = command_help(name)
        command_module(name).add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def unmet_needs(module, args: argparse.Namespace) -> str | None:
    """The one-line error for options given without what they need (the module's
    ``NEEDS``), or ``None``."""
    given: dict[str, list[str]] = {}
    for dest, (what, met) in getattr(module, "NEEDS", {}).items():
        value = getattr(args, dest, None)
        if value is not None and value is not False and value != [] and not met(args):  # 0 is given
            given.setdefault(what, []).append("--" + dest.replace("_", "-"))
    if not given:
        return None
    return "; ".join(f"{', '.join(opts)} only appl{'y' if len(opts) > 1 else 'ies'} with {what}"
                     for what, opts in given.items())


def main(argv: list[str] | None = None) -> int:
    """Run ``symtrain ARGV`` and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a usage error (printed as one line) returns its code; --help exits
        if not exit_.code:
            raise
        return int(exit_.code)
    if args.command is None:
        parser.print_help()
        return 0
    unmet = unmet_needs(command_module(args.command), args)
    if unmet:
        print(f"symtrain {args.command}: error: {unmet}", file=sys.stderr)
        return 2
    try:
        return int(COMMANDS.get(args.command)(args) or 0)
    except SymmetryError as err:  # an error the user can fix, from any command: one line, exit 2
        print(f"symtrain {args.command}: error: {err}", file=sys.stderr)
        return 2
