"""Wrapper behaviour beyond the registry-driven equivariance checks of
``test_symmetrizers.py``: batching, sample counts, torch.func/compile, bad arguments,
degenerate frames, custom canonicalizers."""

import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.actions import Image, Nodes, Points, Trivial

from models import CNN, PointMLP


def test_finite_averaging_uses_every_element_once():
    calls = []

    class Spy(nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return x.flatten(1).sum(1, keepdim=True)

    x = torch.randn(3, 1, 5, 5)
    st.GroupAveraging(Spy(), st.Symmetry("D4", Image()))(x)
    assert calls == [3 * 8]  # one batched call over B·|G|


def test_train_and_eval_sample_counts():
    sizes = []
    base = PointMLP(6, 3, 2, pooled=True)
    base.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    model = st.GroupAveraging(base, st.Symmetry("SO3", Points()), samples=4, eval_samples=16)
    x = torch.randn(2, 6, 3)
    model.train()(x)
    model.eval()(x)
    assert sizes == [8, 32]


def test_wrapper_composes_with_torch_func_and_compile():
    model = st.GroupAveraging(CNN(3, 2), st.Symmetry("C4", Image(), Trivial()))
    x = torch.randn(2, 3, 6, 6)
    model(x)
    params = dict(model.named_parameters())
    out = torch.func.functional_call(model, params, (x,))
    torch.testing.assert_close(out, model(x))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=False)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_bad_wrapper_arguments():
    sym = st.Symmetry("SO3", Points())
    with pytest.raises(ValueError, match="infinite.*samples=K"):
        st.GroupAveraging(PointMLP(4, 3, 1, pooled=True), sym)
    with pytest.raises(ValueError, match="positive integer"):
        st.GroupAveraging(PointMLP(4, 3, 1, pooled=True), sym, samples=0)
    with pytest.raises(TypeError, match="Symmetry"):
        st.GroupAveraging(PointMLP(4, 3, 1, pooled=True), "SO3", samples=3)
    with pytest.raises(st.ShapeError, match=r"3-dimensional"):
        st.GroupAveraging(PointMLP(4, 2, 1, pooled=True), sym, samples=3)(torch.randn(2, 4, 2))


def test_degenerate_pca_frame_raises():
    """PCA frames (by name) refuse a cube; the default minimal frames are exact on it."""
    cube = torch.tensor([[i, j, k] for i in (-1.0, 1.0) for j in (-1.0, 1.0) for k in (-1.0, 1.0)])
    sym = st.Symmetry("O3", Points())
    model = st.FrameAveraging(PointMLP(8, 3, 1, pooled=True), sym, frames="pca")
    with pytest.raises(st.DegenerateFrameError, match="repeated"):
        model(cube[None])
    model(cube[None] * torch.tensor([1.0, 2.0, 3.0]))  # a stretched box has distinct axes
    minimal = st.FrameAveraging(PointMLP(8, 3, 1, pooled=True), sym)
    assert st.equivariance_error(minimal, sym, cube[None]).max < 1e-5


def test_sort_frame_ties():
    x = torch.randn(2, 5, 3)
    x[:, 1] = x[:, 3]  # two identical nodes
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    base = PointMLP(5, 3, 2)
    fa = st.FrameAveraging(base, sym, frames="pca")  # the sort frame
    assert st.equivariance_error(fa, sym, x).max < 1e-5  # ties enumerated: still exact
    with pytest.raises(st.DegenerateFrameError, match="ties"):
        st.Canonicalization(base, sym, canonicalizer="pca")(x)
    same = torch.ones(1, 9, 3)
    with pytest.raises(st.DegenerateFrameError, match="orderings"):
        st.FrameAveraging(PointMLP(9, 3, 2), sym, frames="pca")(same)
    # minimal frames (the default): the stabiliser of the tied rows, never refused
    for wrapper in (st.FrameAveraging(base, sym), st.Canonicalization(base, sym, canonicalizer="minimal")):
        assert st.equivariance_error(wrapper, sym, x).max < 1e-5
    from symtrain.symmetrize.frames_permutation import MonteCarloFrameWarning

    with pytest.warns(MonteCarloFrameWarning, match="Monte-Carlo"):  # 9! orderings: sampled
        st.FrameAveraging(PointMLP(9, 3, 2), sym)(same)


def test_custom_canonicalizer_network():
    """A user canonicalizer: rotate the point cloud's first point onto the x axis (SO(2))."""

    def first_point_angle(x):
        theta = torch.atan2(x[:, 0, 1], x[:, 0, 0])
        c, s = torch.cos(theta), torch.sin(theta)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    sym = st.Symmetry("SO2", Points(), Points())
    model = st.Canonicalization(PointMLP(6, 2, 2), sym, canonicalizer=first_point_angle)
    assert st.equivariance_error(model, sym, torch.randn(4, 6, 2), samples=8).max < 1e-5
