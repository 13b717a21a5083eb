"""Number options of every command: each takes its type from symtrain.cli._numbers (the
library's argument domains), and each out-of-domain value is one line, exit code 2,
nothing written. A SymmetryError raised inside any command is one line, exit code 2."""

from __future__ import annotations

import argparse

import pytest
from test_paths_flags_resume import snapshot, subparsers

from symtrain.cli import COMMANDS, main
from symtrain.cli._numbers import NumberType


def number_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if isinstance(a.type, NumberType)]


def untyped_number_options(parser: argparse.ArgumentParser) -> list[str]:
    """Options parsed as plain int/float, outside the domains."""
    return [a.dest for a in parser._actions if a.type in (int, float)]


def test_every_number_option_of_every_command_has_a_domain():
    parsers = subparsers()
    assert set(parsers) == set(COMMANDS.list())
    assert {n: untyped_number_options(p) for n, p in parsers.items() if untyped_number_options(p)} == {}
    probe = argparse.ArgumentParser()
    probe.add_argument("--steps", type=int)  # the check can fail
    assert untyped_number_options(probe) == ["steps"]
    assert sum(len(number_options(p)) for p in parsers.values()) >= 15


def _cases():
    out = []
    for name, parser in sorted(subparsers().items()):
        for action in number_options(parser):
            bad = [str(v) for v in action.type.domain.bad_values()
                   if v is not None and not isinstance(v, (bool, list, str))] + ["seven"]
            for value in bad:
                out.append(pytest.param(name, action.option_strings[0], value,
                                        id=f"{name}-{action.dest}-{value}"))
    return out


@pytest.mark.parametrize("command, option, value", _cases())
def test_an_out_of_domain_number_is_one_line_and_exit_2(command, option, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main([command, f"{option}={value}"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"symtrain {command}: error: argument {option}: must be"), err
    assert snapshot(tmp_path) == before and not captured.out


def test_a_library_error_inside_a_command_is_one_line(tmp_path, capsys):
    results = tmp_path / "results.csv"
    results.write_text("a,b\n1,2\n")
    assert main(["fit", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"symtrain fit: error: {results} holds no runs with test_loss and flops"]
