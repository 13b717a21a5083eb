"""Flags that cannot be honoured: every option a command declares in its ``NEEDS`` is
refused in one line (exit 2, nothing written) when given without what it needs."""

from __future__ import annotations

import pytest
from test_paths_flags_resume import snapshot, subparsers

from symtrain.cli import COMMANDS, command_module, main

#: A minimal valid command line per command (what the needed option is added to).
BASE = {"lie": ["--model", "resnet18", "--no-pretrained", "--synthetic", "2", "--out", "o"],
        "sweep": ["s.yaml", "--out", "o"], "lie-study": ["s.yaml", "--out", "o"]}
VALUES = {"probes": "3", "layerwise_transforms": "rotation", "address": "auto", "num_cpus": "2",
          "cpus_per_point": "1", "gpus_per_point": "0"}


def cases():
    for name in sorted(COMMANDS.list()):
        for dest in getattr(command_module(name), "NEEDS", {}):
            yield pytest.param(name, dest, id=f"{name}-{dest}")


def test_needs_are_declared_with_default_none():
    parsers = subparsers()
    found = list(cases())
    assert len(found) >= 6
    for param in found:
        name, dest = param.values
        action = next(a for a in parsers[name]._actions if a.dest == dest)
        assert action.default is None, (name, dest)
        assert name in BASE and dest in VALUES, f"add a base command line for {name} / a value for {dest}"


@pytest.mark.parametrize("command, dest", list(cases()))
def test_an_option_without_what_it_needs_is_one_line_and_exit_2(command, dest, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("grid: {params: [1]}\n")
    before = snapshot(tmp_path)
    option = "--" + dest.replace("_", "-")
    assert main([command, *BASE[command], option, VALUES[dest]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"symtrain {command}: error: {option} only appl"), err
    assert snapshot(tmp_path) == before
