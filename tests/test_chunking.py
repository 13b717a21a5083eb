"""Memory for many samples: the K copies through the base model in chunks give the
unchunked result (values and gradients), and the batched image fast paths equal the
generic action."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.actions import Action
from symtrain.symmetrize.interfaces import PermutationInterface


class PointMLP(nn.Module):
    def __init__(self, n, d, out):
        super().__init__()
        self.n, self.out = n, out
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * d, 32), nn.Tanh(), nn.Linear(32, n * out))

    def forward(self, x):
        return self.net(x).reshape(-1, self.n, self.out)


def values_and_grads(model, x, seed):
    torch.manual_seed(seed)
    out = model(x)
    grads = torch.autograd.grad(out.square().sum(), [p for p in model.parameters() if p.requires_grad])
    return out.detach(), grads


@pytest.mark.parametrize("grad", [False, True])
def test_group_averaging_monte_carlo_chunks(grad):
    sym = st.Symmetry("SO3", input="points", output="points")
    base = PointMLP(6, 3, 3)
    x = torch.randn(4, 6, 3)
    outs = []
    for chunk in (None, 7):
        model = st.GroupAveraging(base, sym, samples=20, chunk_size=chunk,
                                  generator=torch.Generator().manual_seed(3))
        if grad:
            outs.append(values_and_grads(model, x, 0))
        else:
            with torch.no_grad():
                outs.append((model(x), ()))
    (a, ga), (b, gb) = outs
    assert torch.allclose(a, b, atol=1e-6)
    for u, v in zip(ga, gb, strict=True):
        assert torch.allclose(u, v, atol=1e-5)


@pytest.mark.parametrize("grad", [False, True])
def test_exact_group_averaging_chunks(grad):
    sym = st.Symmetry("D4", input="image", output="image")
    base = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 2, 3, padding=1, bias=False))
    x = torch.randn(3, 2, 8, 8)
    full, chunked = st.GroupAveraging(base, sym), st.GroupAveraging(base, sym, chunk_size=3)
    with torch.set_grad_enabled(grad):
        a, b = full(x), chunked(x)
    assert torch.allclose(a, b, atol=1e-6)
    if grad:
        ga = torch.autograd.grad(a.square().sum(), list(base.parameters()))
        gb = torch.autograd.grad(b.square().sum(), list(base.parameters()))
        for u, v in zip(ga, gb, strict=True):
            assert torch.allclose(u, v, atol=1e-5)
    assert st.equivariance_error(chunked, sym, x).max < 1e-5


@pytest.mark.parametrize("grad", [False, True])
def test_lps_chunks_with_fixed_noise(grad):
    sym = st.Symmetry("S_n", input="nodes", output="nodes")
    torch.manual_seed(0)
    iface = PermutationInterface(3, hidden=16)
    base = PointMLP(5, 3, 2)
    x = torch.randn(4, 5, 3)
    k = 10
    ctx = sym.context(x)
    noise = iface.sample_noise(x.repeat_interleave(k, 0), ctx.repeat(k), 1.0)
    full = st.ProbabilisticSymmetrization(base, sym, iface, samples=k)
    chunked = st.ProbabilisticSymmetrization(base, sym, iface, samples=k, chunk_size=4)
    for model in (full, chunked):
        model.train(grad)
    with torch.set_grad_enabled(grad):
        a, b = full(x, noise=noise), chunked(x, noise=noise)
    assert torch.allclose(a, b, atol=1e-6)
    if grad:  # straight-through gradients reach the interface alike
        params = list(full.parameters())
        ga = torch.autograd.grad(a.square().sum(), params, allow_unused=True)
        gb = torch.autograd.grad(b.square().sum(), params, allow_unused=True)
        for u, v in zip(ga, gb, strict=True):
            assert (u is None) == (v is None)
            if u is not None:
                assert torch.allclose(u, v, atol=1e-5)


def test_chunk_size_is_checked():
    sym = st.Symmetry("SO3", input="points", output="points")
    with pytest.raises(st.SymmetryError, match="chunk_size"):
        st.GroupAveraging(PointMLP(6, 3, 3), sym, samples=4, chunk_size=0)


@pytest.mark.parametrize("group", ["C4", "D4", "C2", "D1"])
def test_image_fast_paths_equal_the_generic_action(group):
    g = st.create_group(group)
    image = st.actions.Image()
    x = torch.randn(3, 2, 6, 6)
    elems = g.elements()
    m = elems.shape[0]
    fast = image.orbit(g, elems, x)
    generic = Action.orbit(image, g, elems, x)
    assert torch.equal(fast, generic)
    y = torch.randn(3 * m, 2, 6, 6)
    assert torch.equal(image.apply_tiled(g, elems, y), Action.apply_tiled(image, g, elems, y))
