"""``examples/new_data_type.py`` adds a data type in one file; everything else works on it
unchanged: wrappers, metrics, augmentation, the REMUL loss, Lie derivatives, and the
straight-through gradient of LPS (checked against the paper's soft form)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from test_straight_through import _Relaxed, on_nodes, perm_matrix, random_soft

import symtrain as st
from symtrain.groups import GroupContext, SymmetricGroup

PATH = Path(__file__).resolve().parents[1] / "examples" / "new_data_type.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("new_data_type_example", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wrappers_and_metrics(example):
    torch.manual_seed(0)
    sym, x = example.make_symmetry(), example.random_input()
    models = example.wrapped_models()
    err = {name: st.equivariance_error(m.eval(), sym, x, samples=8).max for name, m in models.items()}
    assert err["plain"] > 0.1
    assert err["FrameAveraging (sort x PCA, exact)"] < 1e-5
    assert err["learned canonicalization (exact)"] < 1e-3  # Gram-Schmidt in float32
    ga = models["GroupAveraging (64 samples, in distribution)"]
    means = {}
    for k in (4, 512):
        ga.eval_samples = k
        means[k] = st.equivariance_error(ga, sym, x, samples=8, exact=False).mean
    assert means[512] < means[4], means  # Monte-Carlo over O(3): equivariant in distribution
    exact = st.GroupAveraging(models["plain"], example.make_symmetry("S5"))  # all 120 permutations
    assert st.equivariance_error(exact, exact.symmetry, x).max < 1e-5


def test_augment_loss_and_lie_derivative(example):
    torch.manual_seed(1)
    sym, x = example.make_symmetry(), example.random_input()
    models = example.wrapped_models()
    fa, plain = models["FrameAveraging (sort x PCA, exact)"], models["plain"]
    with torch.no_grad():
        y = fa(*x)
        gx, gy = st.Augment(sym)(x, y)
        assert not torch.allclose(gx[1], x[1])
        assert torch.allclose(fa(*gx), gy, atol=1e-4)
        assert float(st.EquivarianceLoss(sym)(fa, x, y)[1]["E_prime"]) < 1e-4
        assert float(st.EquivarianceLoss(sym)(plain, x, y)[1]["E_prime"]) > 1e-1
    rotations = st.Symmetry("SO3", input=sym.input, output=sym.output)
    lie_plain = st.lie_derivatives(plain, x, "all", symmetry=rotations)
    assert min(float(v.abs().max()) for v in lie_plain.values()) > 1e-2
    # Exact jvp: rounding only; central differences in float32: their step's error too.
    for method, tol in (("jvp", 1e-4), ("fd", 1e-3)):
        lie_fa = st.lie_derivatives(fa, x, "all", symmetry=rotations, method=method)
        assert max(float(v.abs().max()) for v in lie_fa.values()) < tol, method


def test_straight_through_gradient_of_the_new_type(example, float64):
    torch.manual_seed(2)
    b, n = 3, 4
    tensors = example.SymmetricTensors()
    sym = st.Symmetry("S_n", input=tensors, output=tensors)
    p = SymmetricGroup().sample(b, context=GroupContext(num_nodes=n))
    soft = random_soft(b, n)
    iface = _Relaxed("S_n", p, soft)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n * 9, n * 9), torch.nn.Unflatten(1, (n, 3, 3)))
    model = st.ProbabilisticSymmetrization(base, sym, iface, samples=1).train()
    a = torch.randn(b, n, 3, 3)
    x, w = a + a.transpose(-1, -2), torch.randn(b, n, 3, 3)
    out = model(x)
    grad, = torch.autograd.grad((out * w).sum(), soft)
    p_st = perm_matrix(p) + soft - soft.detach()
    ref = on_nodes(p_st, base(on_nodes(p_st.transpose(1, 2), x)))
    ref_grad, = torch.autograd.grad((ref * w).sum(), soft)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_the_example_runs(example, capsys):
    example.main()
    out = capsys.readouterr().out
    assert "FrameAveraging" in out and "Lie derivative" in out
