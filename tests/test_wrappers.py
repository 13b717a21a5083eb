"""Every wrapper × group/action pair it supports: the base model fails the equivariance
check, the wrapped one passes (exactly, or with an error that falls as samples grow),
and gradients reach the base model."""

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, GraphNodes, Image, Mask, Nodes, Points, Trivial, Vectors

from models import CNN, MaskedAdjacencyMLP, NBodyMLP, NodeIndexGNN, PointMLP


def padded_adjacency(b=4, n=7):
    sizes = torch.tensor([7, 5, 6, 7])[:b]
    mask = torch.arange(n)[None] < sizes[:, None]
    adj = torch.rand(b, n, n)
    adj = (adj + adj.transpose(1, 2)) * (mask[:, :, None] & mask[:, None, :])
    return adj, mask


def pyg_batch():
    graphs = []
    for n in (5, 7, 6):
        e = torch.randint(n, (2, 2 * n))
        graphs.append(Data(x=torch.randn(n, 3), edge_index=e))
    return Batch.from_data_list(graphs)


@dataclass
class Case:
    name: str
    symmetry: st.Symmetry
    model: Callable[[], nn.Module]
    data: Callable[[], object]
    wrappers: tuple[str, ...]  # "ga" exact, "mc" Monte-Carlo, "fa" frames, "canon"


CASES = [
    Case("D4-image-invariant", st.Symmetry("D4", Image(), Trivial()), lambda: CNN(), lambda: torch.randn(4, 3, 9, 9), ("ga", "fa")),
    Case("C4-image-equivariant", st.Symmetry("C4", Image(), Image()), lambda: CNN(3, 3, pooled=False), lambda: torch.randn(4, 3, 8, 8), ("ga",)),
    Case("SO3-points", st.Symmetry("SO3", Points(), Points()), lambda: PointMLP(10, 3, 3), lambda: torch.randn(4, 10, 3), ("mc", "fa", "canon")),
    Case("O3-points-invariant", st.Symmetry("O3", Points(), Trivial()), lambda: PointMLP(10, 3, 4, pooled=True), lambda: torch.randn(4, 10, 3), ("mc", "fa", "canon")),
    Case("E3-points", st.Symmetry("E3", Points(), Points()), lambda: PointMLP(10, 3, 3), lambda: torch.randn(4, 10, 3) + 3, ("mc", "fa", "canon")),
    Case("SE2-points", st.Symmetry("SE2", Points(), Vectors()), lambda: PointMLP(8, 2, 2), lambda: torch.randn(4, 8, 2), ("mc", "fa", "canon")),
    Case("S5-nodes", st.Symmetry("S_n", Nodes(), Nodes()), lambda: PointMLP(5, 4, 2), lambda: torch.randn(4, 5, 4), ("ga", "mc", "fa", "canon")),
    Case("Sn-padded-adjacency", st.Symmetry("S_n", Fields(Adjacency(), Mask()), Trivial()), lambda: MaskedAdjacencyMLP(7), padded_adjacency, ("mc", "fa", "canon")),
    Case("Sn-x-E3-nbody", st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors())),
         lambda: NBodyMLP(5), lambda: (torch.randn(4, 5, 3), torch.randn(4, 5, 3), torch.randn(4, 5, 1)), ("mc", "fa", "canon")),
    Case("Sn-pyg-nodes", st.Symmetry("S_n", Graph(positions=()), GraphNodes()), lambda: NodeIndexGNN(3), pyg_batch, ("mc", "fa", "canon")),
]


def wrap(kind, model, sym, samples=None):
    if kind == "ga":
        return st.GroupAveraging(model, sym)
    if kind == "mc":
        return st.GroupAveraging(model, sym, samples=samples or 8)
    if kind == "fa":
        return st.FrameAveraging(model, sym)
    return st.Canonicalization(model, sym)


def to_dtype(x, dtype):
    if isinstance(x, tuple):
        return tuple(to_dtype(v, dtype) for v in x)
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    return x.apply(lambda t: t.to(dtype) if t.is_floating_point() else t)  # PyG batch


def call(model, x):
    return model(*x) if isinstance(x, tuple) else model(x)


PAIRS = [(c, w) for c in CASES for w in c.wrappers]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_base_model_is_not_equivariant(case):
    torch.manual_seed(1)
    model, x = case.model(), case.data()
    call(model, x)  # initialise lazy layers
    assert st.equivariance_error(model, case.symmetry, x, samples=8).mean > 1e-2


@pytest.mark.parametrize("case,kind", [p for p in PAIRS if p[1] != "mc"], ids=lambda v: getattr(v, "name", v))
def test_exact_wrappers_are_equivariant(case, kind, dtype):
    torch.manual_seed(1)
    model, x = case.model(), case.data()
    call(model, x)
    model, x = model.to(dtype), to_dtype(x, dtype)
    wrapped = wrap(kind, model, case.symmetry).eval()
    err = st.equivariance_error(wrapped, case.symmetry, x, samples=8)
    assert err.max <= (1e-5 if dtype == torch.float32 else 1e-10), err
    assert st.equivariance_error(model, case.symmetry, x, samples=8).max > 1e-2  # same check fails unwrapped


@pytest.mark.parametrize("case", [c for c in CASES if "mc" in c.wrappers], ids=lambda c: c.name)
def test_monte_carlo_error_falls_with_samples(case):
    torch.manual_seed(1)
    model, x = case.model(), case.data()
    call(model, x)
    errs = []
    for k in (2, 32, 512):
        wrapped = wrap("mc", model, case.symmetry, samples=k).eval()
        errs.append(st.equivariance_error(wrapped, case.symmetry, x, samples=8, exact=False).mean)
    assert errs[2] < 0.5 * errs[0] and errs[2] < errs[1], errs


@pytest.mark.parametrize("case,kind", PAIRS, ids=lambda v: getattr(v, "name", v))
def test_gradients_reach_base_parameters(case, kind):
    model, x = case.model(), case.data()
    call(model, x)
    wrapped = wrap(kind, model, case.symmetry).train()
    out = call(wrapped, x)
    leaves = out if isinstance(out, tuple) else (out,)
    sum(torch.sin(y).sum() for y in leaves).backward()
    params = dict(model.named_parameters())
    assert all(p.grad is not None for p in params.values())
    # Every weight matrix gets a signal. (An output bias may legitimately get none: averaging
    # g·b over all sign flips of a PCA frame is 0, so the wrapped model does not depend on it.)
    for name, p in params.items():
        if p.dim() >= 2 and "index" not in name:
            assert p.grad.abs().sum() > 0, name


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
    cube = torch.tensor([[i, j, k] for i in (-1.0, 1.0) for j in (-1.0, 1.0) for k in (-1.0, 1.0)])
    model = st.FrameAveraging(PointMLP(8, 3, 1, pooled=True), st.Symmetry("O3", Points()))
    with pytest.raises(st.DegenerateFrameError, match="repeated"):
        model(cube[None])
    model(cube[None] * torch.tensor([1.0, 2.0, 3.0]))  # a stretched box has distinct axes


def test_sort_frame_ties():
    x = torch.randn(2, 5, 3)
    x[:, 1] = x[:, 3]  # two identical nodes
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    base = PointMLP(5, 3, 2)
    fa = st.FrameAveraging(base, sym)
    assert st.equivariance_error(fa, sym, x).max < 1e-5  # ties enumerated: still exact
    with pytest.raises(st.DegenerateFrameError, match="ties"):
        st.Canonicalization(base, sym)(x)
    same = torch.ones(1, 9, 3)
    with pytest.raises(st.DegenerateFrameError, match="orderings"):
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
