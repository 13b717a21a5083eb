"""A new ``symtrain`` command in one file.

A command is a module with ``add_arguments(parser)`` and a ``run(args) -> int``
registered on :data:`symtrain.cli.COMMANDS`; the first line of ``run``'s docstring is
its help. Inside the package it is a new file ``symtrain/cli/NAME.py`` (found with no
other edit); this example registers the same kind of module from outside and runs it:

    python examples/new_command.py --group D4

``symtrain groups``: every registered group family, or one group's order and whether
it is continuous.
"""

from __future__ import annotations

import argparse
import sys

from symtrain.cli import COMMANDS, main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default=None, help="a group name, e.g. 'S_n x O3' (default: list the families)")


@COMMANDS.register("groups")
def run(args: argparse.Namespace) -> int:
    """list the registered group families, or describe one group"""
    from symtrain.errors import SymmetryError
    from symtrain.groups import create_group, list_groups

    if args.group is None:
        print("\n".join(list_groups()))
        return 0
    try:
        group = create_group(args.group)
    except (SymmetryError, ValueError) as err:  # an unknown name: one line, exit code 2
        print(f"symtrain groups: error: {err}", file=sys.stderr)
        return 2
    order = group.order if group.is_finite else "infinite"
    print(f"{group}: order {order}, continuous: {group.is_continuous}, factors: "
          f"{', '.join(str(f) for f in group.factors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(["groups", *sys.argv[1:]]))
