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


class SetNBody(torch.nn.Module):
    """Permutation-equivariant n-body backbone (DeepSets: each particle sees itself and
    the mean), not rotation-equivariant: ``(pos, vel, charge) -> (pos, vel)``."""

    def __init__(self, symmetric: bool = True):
        super().__init__()
        self.symmetric = symmetric
        self.net = torch.nn.Sequential(torch.nn.Linear(14, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))

    def forward(self, pos, vel, charge):
        h = torch.cat([pos, vel, charge], -1)
        # the broken variant reads the first particle instead of the mean: not S_n-equivariant
        ctx = h.mean(1, keepdim=True) if self.symmetric else h[:, :1]
        out = self.net(torch.cat([h, ctx.expand_as(h)], -1))
        return pos + out[..., :3], out[..., 3:]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["ps", "group_averaging"])
def test_a_wrapper_for_a_factor_is_checked_exactly_against_the_whole_product(method, dtype):
    """An E(3) wrapper of a permutation-equivariant backbone is S_n × E(3)-equivariant; probed
    with S_n × E(3) its draw moves with the whole group (noise permuted with the particles,
    sampled elements by their E(3) part), so the check is exact and a backbone that is not
    permutation-equivariant fails it; before, every call drew anew (Monte-Carlo)."""
    from symtrain.actions import Fields, Nodes, Vectors

    task = st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    wrapper = st.Symmetry("E3", task.input, task.output)
    g = torch.Generator().manual_seed(0)
    x = tuple(t.to(dtype) for t in (torch.randn(4, 5, 3, generator=g), torch.randn(4, 5, 3, generator=g),
                                     torch.randn(4, 5, 1, generator=g)))
    errors = {}
    for symmetric in (True, False):
        torch.manual_seed(0)
        base = SetNBody(symmetric).to(dtype)
        options = {"samples": 3} if method == "group_averaging" else {
            "samples": 3, "noise_scale": 1.0,
            "interface": st.symmetrize.interfaces.RotationInterface("E3", in_vectors=2, in_scalars=1, hidden=8)}
        model = st.create_symmetrizer(method, base, wrapper, **options).to(dtype).eval()
        err = st.equivariance_error(model, task, x, samples=4)
        assert err.estimate == "fixed draw", err
        errors[symmetric] = err.max
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert errors[True] <= tol and errors[False] > 1e-2, errors
    # a wrapper whose group is not made of the probe's factors: Monte-Carlo, said so
    other = st.create_symmetrizer(method, SetNBody().to(dtype), st.Symmetry("O3", task.input, task.output),
                                  **{**options, **({"interface": st.symmetrize.interfaces.RotationInterface(
                                      "O3", in_vectors=2, in_scalars=1, hidden=8)} if method == "ps" else {})})
    assert st.equivariance_error(other.to(dtype).eval(), task, x, samples=4).estimate == "monte-carlo"


def test_group_part_projects_onto_factors_and_refuses_others():
    from symtrain.groups import create_group

    prod = create_group("S_n x E3")
    sym = st.Symmetry(prod, *(2 * [Points()]))
    probe = sym.probe(torch.randn(2, 4, 3), 3)
    rot = prod.part(probe.elements, create_group("E3"))
    assert all(torch.equal(a, b) for a, b in zip(rot, prod.split(probe.elements)[1], strict=True))
    assert prod.part(probe.elements, prod) is probe.elements
    with pytest.raises(st.UnsupportedGroupError, match="not made of factors"):
        prod.part(probe.elements, create_group("O3"))
