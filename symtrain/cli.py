"""The ``symtrain`` command. Each subcommand lives in its own module and is imported only
when it runs, so ``symtrain --help`` stays fast and optional dependencies stay optional.

A module registered here exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("symtrain.demo", "wrap non-equivariant models and print their equivariance error"),
    "lie": ("symtrain.lie.cli", "Lie-derivative report of a timm model (end to end and layer-wise)"),
    "train": ("symtrain.train.cli", "train a model from a YAML recipe (Accelerate: CPU, GPUs, processes)"),
    "recipes": ("symtrain.train.recipes", "list the provided recipes, one line each"),
    "sweep": ("symtrain.scaling.sweep", "run a grid of training runs (local or Ray), resumable, into results.csv"),
    "fit": ("symtrain.scaling.fit", "power-law fits, bootstrap intervals and plots of a sweep's results.csv"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symtrain", description="Make any PyTorch model equivariant, and measure it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:  # import only the module that runs
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
