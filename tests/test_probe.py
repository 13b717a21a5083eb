"""Symmetry.probe: the one "sample g, transform, compare" shared by equivariance_error,
the REMUL loss and Augment; and the exact check of Monte-Carlo group averaging."""

import pytest
import torch
from models import CNN, PointMLP

import symtrain as st
from symtrain.actions import Image, Points, Trivial
from symtrain.groups.base import element_batch_size, element_take


def test_probe_lists_a_finite_group_and_moves_the_copies_b_major():
    sym = st.Symmetry("C4", Image(), Image())
    x = torch.randn(3, 2, 5, 5)
    probe = sym.probe(x)
    assert probe.k == 4 and element_batch_size(probe.elements) == 12
    assert probe.inputs.shape == (12, 2, 5, 5)
    for b in range(3):  # row b·k + j is the j-th element applied to input b
        for j in range(4):
            g = element_take(probe.elements, torch.tensor([b * 4 + j]))
            assert torch.equal(probe.inputs[b * 4 + j], sym.act_input(g, x[b:b + 1])[0])
    y = torch.randn(3, 2, 5, 5)
    assert probe.act_output(y).shape == (12, 2, 5, 5)
    assert probe.rows(probe.act_output(y)).shape == (12, 50)


def test_probe_samples_and_checks_its_input_once():
    sym = st.Symmetry("SO3", Points(), Points())
    x = torch.randn(2, 5, 3)
    gen = torch.Generator().manual_seed(3)
    probe = sym.probe(x, 6, gen)
    again = sym.probe(x, 6, torch.Generator().manual_seed(3))
    assert probe.k == 6 and probe.inputs.shape == (12, 5, 3)
    assert torch.equal(probe.inputs, again.inputs)  # the generator drives the draws
    with pytest.raises(st.SymmetryError):
        sym.probe(x, 0)
    with pytest.raises(st.SymmetryError):
        sym.probe(torch.randn(2, 5, 4))  # points in 4 dimensions: the action refuses them


def test_probe_outputs_of_a_deterministic_model_match_equivariance_error():
    sym = st.Symmetry("D4", Image(), Trivial())
    model, x = CNN().eval(), torch.randn(3, 3, 9, 9)
    probe = sym.probe(x)
    out = probe.outputs(model)
    assert out.estimate == "deterministic"
    a, b = probe.rows(out.f_gx).double(), probe.rows(out.g_fx).double()
    err = ((a - b).norm(dim=1) / b.norm(dim=1)).reshape(3, 8)
    measured = st.equivariance_error(model, sym, x)
    assert measured.estimate == "deterministic" and measured.exact
    assert torch.allclose(measured.per_element, err)


class ForgetsTheOutputs(st.GroupAveraging):
    """A broken Monte-Carlo average: the outputs are not moved back by g."""

    def transform_output(self, g, ys, context):
        return ys


def test_monte_carlo_averaging_is_checked_exactly_and_a_broken_one_fails():
    """The draws for h·x are h·g_i: a correct Monte-Carlo average then matches to
    rounding; a broken one (it averages f(g⁻¹x) without moving the outputs back) does
    not, though both give an error of the same order when their draws are independent."""
    sym = st.Symmetry("SO3", Points(), Points())
    base, x = PointMLP(10, 3, 3), torch.randn(4, 10, 3)
    correct = st.GroupAveraging(base, sym, samples=4).eval()
    broken = ForgetsTheOutputs(base, sym, samples=4).eval()
    good, bad = st.equivariance_error(correct, sym, x, samples=8), st.equivariance_error(broken, sym, x, samples=8)
    assert good.estimate == bad.estimate == "fixed draw"
    assert good.max <= 1e-5 and bad.max > 1e-2, (good, bad)
    mc = st.equivariance_error(correct, sym, x, samples=8, exact=False)
    assert mc.estimate == "monte-carlo" and mc.mean > 1e-2
    exact_averaging = st.GroupAveraging(CNN(), st.Symmetry("D4", Image(), Trivial())).eval()
    assert not exact_averaging.stochastic and exact_averaging.fixed_draw(None, None) is None


def test_augment_and_remul_draw_through_the_probe():
    sym = st.Symmetry("E3", Points(), Points())
    x = torch.randn(4, 6, 3) + 5
    aug = st.Augment(sym, generator=torch.Generator().manual_seed(0))
    gx, gy = aug(x, x)
    assert torch.allclose(gx, gy)  # the same element moves inputs and labels
    assert (gx.mean(1) - x.mean(1)).norm(dim=-1).min() > 1e-3  # translations really move
    from symtrain.losses.equivariance import equivariance_metrics

    m = equivariance_metrics(torch.nn.Identity(), sym, x, samples=3)
    assert m["E"] < 1e-5 and m["E_prime"] < 1e-5
    m = equivariance_metrics(PointMLP(6, 3, 3), sym, x, samples=3)
    assert m["E_prime"] > 1e-2
