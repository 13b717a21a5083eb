"""``symtrain diagnose RECIPE``: the recipe's training data under its symmetry; the last
two lines are ``symmetry_auc=…`` and ``symmetry_p=…``; digits are not C4-symmetric, the
EXP graphs (nodes in random order) look S_n-symmetric; a bad recipe or argument prints
one line and exits with code 2."""

import re

import pytest
import torch

from symtrain.cli import main

QUICK = ["--permutations", "200", "--steps", "100", "--hidden", "32"]


@pytest.fixture(autouse=True)
def _threads(symtrain_cache):
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)  # the command sets the recipe's train.threads


def last_two(out: str) -> tuple[float, float]:
    auc_line, p_line = out.strip().splitlines()[-2:]
    auc = re.fullmatch(r"symmetry_auc=([0-9.]+)", auc_line)
    p = re.fullmatch(r"symmetry_p=([0-9.e-]+)", p_line)
    assert auc and p, out
    return float(auc.group(1)), float(p.group(1))


def test_digits_are_not_c4_symmetric(capsys):
    pytest.importorskip("sklearn")
    code = main(["diagnose", "pretrain_vit_digits", "--budget", "smoke", "--set", "symmetrization.group=C4",
                 "data.size=8", "data.channels=1", "--samples", "400", *QUICK])
    out = capsys.readouterr().out
    assert code == 0
    auc, p = last_two(out)
    assert auc > 0.8 and p < 0.01, out
    assert "C4 acting on Image" in out and "rot0 " in out and "looks broken" in out


def test_exp_graphs_look_permutation_symmetric(capsys):
    code = main(["diagnose", "exp_gin", "--budget", "smoke", "--set", "data.pairs=150", *QUICK])
    out = capsys.readouterr().out
    assert code == 0
    auc, p = last_two(out)
    assert abs(auc - 0.5) < 0.15 and p > 0.05, out
    assert "S_n acting on Adjacency" in out and "no evidence against the symmetry" in out


@pytest.mark.parametrize("argv, message", [
    (["no_such_recipe"], "no_such_recipe"),
    (["exp_gin", "--budget", "smoke", "--set", "data.nope=1"], "data"),
    (["exp_gin", "--budget", "smoke", "--samples", "3"], "--samples 3: expected at least 8"),
    (["exp_gin", "--budget", "smoke", "--test-fraction", "1.5"],
     "argument --test-fraction: must be a number in (0, 1), got 1.5"),
    (["exp_gin", "--budget", "smoke", "--permutations", "0"],
     "argument --permutations: must be a positive integer, got 0"),
])
def test_bad_recipe_or_argument_is_one_line_and_exit_code_2(argv, message, capsys):
    assert main(["diagnose", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symtrain diagnose: error:") and message in lines[0], lines
