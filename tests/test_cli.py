"""The command-line wing: every command found by discovery is complete and answers
``--help``; building the parser imports no heavy dependency; only ``symtrain/cli/``
prints; ``symtrain demo`` prints its wrapper table."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from symtrain.cli import COMMANDS, build_parser, command_help, command_module, main

PACKAGE = Path(__file__).resolve().parents[1] / "symtrain"
EXPECTED = {"demo", "diagnose", "fit", "lie", "recipes", "sweep", "train"}


def test_every_command_module_is_discovered():
    modules = {p.stem for p in (PACKAGE / "cli").glob("*.py") if not p.stem.startswith("_")}
    assert {name.replace("-", "_") for name in COMMANDS.list()} == modules  # lie-study: lie_study.py
    assert EXPECTED <= modules


@pytest.mark.parametrize("name", COMMANDS.list())  # every discovered command, a new one included
def test_command_has_arguments_run_and_a_one_line_help(name, capsys):
    module = command_module(name)
    assert callable(module.add_arguments) and module.run is COMMANDS.get(name)
    assert module.__name__ == f"symtrain.cli.{name.replace('-', '_')}"
    help_text = command_help(name)
    assert help_text and "\n" not in help_text
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: symtrain {name}") and help_text[:30] in " ".join(out.split())


def test_top_level_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS.list():  # a long name puts its help on the next line
        assert f"    {name} " in out or f"    {name}\n" in out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-command"])
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_help_imports_no_heavy_dependency():
    # The whole parser is built (every command module imported), yet no training, plotting
    # or model-zoo dependency is: those are imported inside each command's run.
    heavy = ("accelerate", "timm", "scipy", "matplotlib", "torch_geometric", "ray", "PIL",
             "symtrain.train.trainer", "symtrain.scaling.fit", "symtrain.lie.images")
    code = ("import sys; from symtrain.cli import build_parser; build_parser(); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "symtrain", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=PACKAGE.parent)
    assert helped.returncode == 0 and "recipes" in helped.stdout, helped.stderr[-2000:]


def _print_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call ``print`` or mention ``print(`` (docstrings included)."""
    text = path.read_text()
    lines = [i for i, line in enumerate(text.splitlines(), 1) if "print(" in line]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_the_cli_prints():
    offenders = {str(p.relative_to(PACKAGE.parent)): _print_calls(p) for p in PACKAGE.rglob("*.py")
                 if "cli" not in p.relative_to(PACKAGE).parts[:1]}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"print( outside symtrain/cli/: {offenders}"
    assert any(_print_calls(p) for p in (PACKAGE / "cli").glob("*.py"))  # the check finds prints


def test_demo_prints_the_wrapper_table(capsys):
    assert main(["demo", "--only", "wrap", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Relative equivariance error")
    assert "training" not in out  # --only wrap: no training comparison
    titles = [line for line in out.splitlines() if line and not line.startswith(" ")][1:]
    assert [t.split(",")[0] for t in titles] == ["CNN", "MLP", "MLP"]
    exact = next(line for line in out.splitlines() if "GroupAveraging (exact" in line)
    assert float(exact.split("max")[1]) < 1e-4
    base = [float(line.split("max")[1]) for line in out.splitlines() if "base model" in line]
    assert len(base) == 3 and min(base) > 1e-2
