"""Minimal S_n frames (symtrain.symmetrize.frames_permutation): exact equivariance with
one backbone call on generic sets and graphs, the automorphism group averaged on
symmetric ones (cycles, complete graphs, Petersen, Paley), batched over sizes (masks,
PyG batches), sequential products S_n × O(3) / E(3) / SO(3) with the QR frame, sampling
beyond the limit stated; non-equivariant models and automorphism-free frames fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from graph_families import SYMMETRIC, complete, cycle, random_graph
from torch import nn

import symtrain as st
from symtrain.actions import Fields
from symtrain.groups.automorphisms import canonical_labelling, pynauty_available
from symtrain.symmetrize.frames import Frame
from symtrain.symmetrize.frames_permutation import MinimalPermutationFrame, MonteCarloFrameWarning
from symtrain.symmetrize.qr_frame import qr_frame

BACKENDS = ["python"] + (["pynauty"] if pynauty_available() else [])


class Counting(nn.Module):
    """Counts the inputs the backbone sees."""

    def __init__(self, base):
        super().__init__()
        self.base, self.rows = base, 0

    def forward(self, *xs):
        self.rows += xs[0].shape[0] if isinstance(xs[0], torch.Tensor) else xs[0].num_graphs
        return self.base(*xs)


class DenseNodeModel(nn.Module):
    """Not permutation-equivariant: every output reads every slot by position."""

    def __init__(self, n, f):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(n * f + n * n, 32), nn.Tanh(), nn.Linear(32, n * 2))
        self.n = n

    def forward(self, x, a):
        h = torch.cat([x.flatten(1), a.flatten(1)], 1).to(self.lin[0].weight.dtype)
        return self.lin(h).reshape(-1, self.n, 2)


class PointModel(nn.Module):
    """Neither permutation- nor rotation-equivariant: an MLP on the flattened cloud."""

    def __init__(self, n, d=3):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(2 * n * d, 32), nn.Tanh(), nn.Linear(32, n * d))
        self.n, self.d = n, d

    def forward(self, x, v):
        return self.lin(torch.cat([x, v], -1).flatten(1)).reshape(-1, self.n, self.d)


class QRFrame(Frame):
    """The O(d)/E(d) factor's minimal frame for these tests: frames-od's ``qr_frame`` of
    the (centred) points in the order the S_n frame chose (``after_others``)."""

    after_others = True

    def __call__(self, factor, symmetry, x, context):
        p = symmetry.input.points(x)
        t = context.centroid if factor.has_translations else None
        q, _ = qr_frame(p if t is None else p - t[:, None], context.mask, proper=factor.is_proper)
        w = torch.ones(p.shape[0], 1, dtype=p.dtype)
        return (factor.from_parts(q, t) if t is not None else factor.from_parts(q)), w


def _error(model, sym, x, samples=3):
    return st.equivariance_error(model, sym, x, samples=samples).max


def _dense_batch(graphs, n_max, dtype, feats=None):
    """Graphs (relabelled at random) padded to ``n_max`` nodes with a mask."""
    b = len(graphs)
    a = torch.zeros(b, n_max, n_max, dtype=dtype)
    mask = torch.zeros(b, n_max, dtype=torch.bool)
    for i, e in enumerate(graphs):
        m = len(e)
        p = torch.randperm(m)
        a[i, :m, :m] = torch.as_tensor(e, dtype=dtype)[p][:, p]
        mask[i, :m] = True
    x = torch.ones(b, n_max, 2, dtype=dtype) if feats is None else feats
    return x * mask[..., None], a, mask


# --- S_n on sets --------------------------------------------------------------------------
def test_generic_sets_one_call_exact(dtype):
    n, b = 7, 5
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency"), "nodes")
    x = torch.randn(b, n, 2, dtype=dtype)
    a = torch.zeros(b, n, n, dtype=dtype)
    base = DenseNodeModel(n, 2).to(dtype)
    assert _error(base, sym, (x, a)) > 1e-2  # the backbone alone is not equivariant
    # a set (nodes only): lexicographic sort, one element
    sym_set = st.Symmetry("S_n", "nodes", "nodes")
    counting = Counting(nn.Sequential(nn.Flatten(), nn.Linear(2 * n, n * 2), nn.Unflatten(1, (n, 2))).to(dtype))
    fa = st.FrameAveraging(counting, sym_set, frames=[MinimalPermutationFrame()])
    counting.rows = 0
    fa(x)
    assert counting.rows == b  # one backbone call per generic input
    assert _error(fa, sym_set, x) < (1e-6 if dtype == torch.float32 else 1e-12)


def test_sets_with_repeated_rows_average_over_their_stabiliser(dtype):
    sym = st.Symmetry("S_n", "nodes", "nodes")
    x = torch.tensor([[[1.0], [2.0], [1.0], [3.0], [1.0], [2.0]],
                      [[0.5], [0.1], [0.2], [0.3], [0.4], [0.6]]], dtype=dtype)
    frame = MinimalPermutationFrame()
    g, w = frame(sym.group, sym, x, sym.context(x))
    assert w.shape == (2, math.factorial(3) * 2)
    assert torch.allclose(w[0].sum(), torch.ones((), dtype=dtype)) and (w[1] > 0).sum() == 1
    base = nn.Sequential(nn.Flatten(), nn.Linear(6, 6), nn.Unflatten(1, (6, 1))).to(dtype)
    fa = st.FrameAveraging(base, sym, frames=[frame])
    assert _error(fa, sym, x) < (1e-6 if dtype == torch.float32 else 1e-12)
    # the repeated rows are averaged: their outputs are equal
    y = fa(x)[0, :, 0]
    assert torch.allclose(y[0], y[2]) and torch.allclose(y[0], y[4]) and torch.allclose(y[1], y[5])


# --- S_n on dense graphs ------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_symmetric_graphs_exact_batched_with_masks(backend, dtype):
    graphs = [cycle(12), SYMMETRIC["petersen"][0], SYMMETRIC["paley9"][0], SYMMETRIC["paley13"][0],
              complete(5)]
    n_max = 13
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency", "mask"), "nodes")
    x, a, mask = _dense_batch(graphs, n_max, dtype)
    frame = MinimalPermutationFrame(backend=backend)
    assert frame.backend_in_use == backend
    g, w = frame(sym.group, sym, (x, a, mask), sym.context((x, a, mask)))
    sizes = sorted(int((row > 0).sum()) for row in w)
    assert sizes == sorted([24, 120, 72, 78, 120])
    # every element keeps the padding in place
    assert ((g.reshape(len(graphs), -1, n_max) == torch.arange(n_max)) | mask[:, None, :]).all()

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = DenseNodeModel(n_max, 2).to(dtype)

        def forward(self, x, a, m):
            return self.inner(x, a) * m[..., None]

    base = Masked()
    assert _error(base, sym, (x, a, mask)) > 1e-2
    fa = st.FrameAveraging(base, sym, frames=[frame])
    assert _error(fa, sym, (x, a, mask)) < (1e-5 if dtype == torch.float32 else 1e-12)
    # without the automorphisms (the canonical order alone) node outputs are not equivariant
    broken = st.FrameAveraging(base, sym, frames=[_CanonicalOrderOnly(frame)])
    assert _error(broken, sym, (x, a, mask)) > 1e-2


class _CanonicalOrderOnly(Frame):
    """A wrong frame: the first element of the minimal frame, automorphisms dropped."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, factor, symmetry, x, context):
        g, w = self.inner(factor, symmetry, x, context)
        b, k = w.shape
        return g.reshape(b, k, -1)[:, 0], torch.ones(b, 1, dtype=w.dtype)


def test_generic_graphs_one_element_and_weighted_edges(dtype):
    rng = np.random.default_rng(3)
    graphs = [random_graph(9, 0.4, rng, colours=3) for _ in range(4)]
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency"), "nodes")
    x, a, _ = _dense_batch(graphs, 9, dtype, feats=torch.randn(4, 9, 2, dtype=dtype))
    counting = Counting(DenseNodeModel(9, 2).to(dtype))
    fa = st.FrameAveraging(counting, sym, frames=[MinimalPermutationFrame()])
    fa(x, a)
    assert counting.rows == 4
    assert _error(fa, sym, (x, a)) < (1e-5 if dtype == torch.float32 else 1e-12)


# --- PyG batches --------------------------------------------------------------------------
def test_pyg_batch_of_symmetric_and_generic_graphs(dtype):
    from torch_geometric.data import Batch, Data
    from torch_geometric.utils import to_dense_adj

    rng = np.random.default_rng(0)
    graphs = [cycle(12), SYMMETRIC["petersen"][0], random_graph(7, 0.5, rng), complete(5)]
    data = []
    for e in graphs:
        ei = torch.as_tensor(np.stack(np.nonzero(e)), dtype=torch.long)
        data.append(Data(x=torch.ones(len(e), 1, dtype=dtype), edge_index=ei, num_nodes=len(e)))
    batch = Batch.from_data_list(data)
    sym = st.Symmetry("S_n", st.actions.create_action("graph", positions=()), st.actions.create_action("graph_nodes"))
    weights = torch.randn(12, 12, dtype=dtype)

    def base(g):  # reads nodes by their slot in each graph: not equivariant
        dense = to_dense_adj(g.edge_index, g.batch, max_num_nodes=12).to(dtype)
        h = (dense @ weights).sum(-1)  # [B, 12]
        sizes = (g.ptr[1:] - g.ptr[:-1]).tolist()
        return torch.cat([h[i, :m] for i, m in enumerate(sizes)])[:, None]

    assert _error(base, sym, batch) > 1e-2
    frame = MinimalPermutationFrame()
    _, w = frame(sym.group, sym, batch, sym.context(batch))
    expected = [canonical_labelling(e, np.zeros(len(e), dtype=np.int64)).group.order for e in graphs]
    assert [(row > 0).sum().item() for row in w] == expected == [24, 120, expected[2], 120]
    fa = st.FrameAveraging(base, sym, frames=[frame])
    assert _error(fa, sym, batch) < (1e-5 if dtype == torch.float32 else 1e-12)
    # frames of different sizes in one batch: each graph runs as often as its own frame
    # has elements (265 graphs), not the batch's largest (4 × 120 = 480)
    calls = []

    def counted(g):
        calls.append(g.num_graphs)
        return base(g)

    st.FrameAveraging(counted, sym, frames=[frame])(batch)
    assert sum(calls) == sum(expected)


# --- products with rotations --------------------------------------------------------------
PRODUCTS = ["S_n x O3", "S_n x E3", "S_n x SO3"]


@pytest.mark.parametrize("group", PRODUCTS)
def test_products_generic_one_call_and_degenerate_exact(group, dtype):
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    n, b = 5, 6
    sym = st.Symmetry(group, Fields("points", "vectors"), "points")
    x, v = torch.randn(b, n, 3, dtype=dtype), torch.randn(b, n, 3, dtype=dtype)
    base = Counting(PointModel(n).to(dtype))
    assert _error(base, sym, (x, v)) > 1e-2
    fa = st.FrameAveraging(base, sym, frames=[MinimalPermutationFrame(), QRFrame()])
    base.rows = 0
    fa(x, v)
    assert base.rows == b  # one call per generic n-body input
    assert _error(fa, sym, (x, v)) < tol
    # degenerate: a square (D4 in the plane), a regular tetrahedron, repeated points
    square = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], dtype=dtype)
    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=dtype)
    repeated = torch.tensor([[1.0, 2, 0], [1, 2, 0], [0, 0, 1], [0, 0, 1]], dtype=dtype)
    pts = torch.stack([square, tetra, repeated]) + (3.0 if "E" in group else 0.0)
    vel = torch.zeros_like(pts)
    sym4 = st.Symmetry(group, Fields("points", "vectors"), "points")
    fa4 = st.FrameAveraging(PointModel(4).to(dtype), sym4, frames=[MinimalPermutationFrame(), QRFrame()])
    _, w = fa4.weighted_elements((pts, vel), sym4.context((pts, vel)))
    # centred, the repeated pairs are ±c: under E(3) swapping the pairs is a symmetry too
    assert [(row > 0).sum().item() for row in w] == [8, 24, 8 if "E" in group else 4]
    assert _error(fa4, sym4, (pts, vel), samples=4) < tol
    counting = Counting(PointModel(4).to(dtype))
    st.FrameAveraging(counting, sym4, frames=[MinimalPermutationFrame(), QRFrame()])(pts, vel)
    assert counting.rows == int((w > 0).sum())  # not 3 × 24: padded copies are not run


def test_gram_rounding_is_an_option_with_checked_values():
    sym = st.Symmetry("S_n x O3", Fields("points", "vectors"), "points")
    x = torch.tensor([[[1.0, 0, 0], [0, 1.02, 0], [0, 0, 0.99]]], dtype=torch.float64)
    v = torch.zeros_like(x)
    coarse = MinimalPermutationFrame(gram_round=0.1)
    fine = MinimalPermutationFrame(gram_round=1e-3)
    ctx = sym.context((x, v))
    assert coarse(sym.group.factors[0], sym, (x, v), ctx)[1].shape[1] == 6  # near-ties merged
    assert fine(sym.group.factors[0], sym, (x, v), ctx)[1].shape[1] == 1
    with pytest.raises(st.registry.ArgumentError, match="gram_round"):
        MinimalPermutationFrame(gram_round=0)
    with pytest.raises(st.registry.ArgumentError, match="backend"):
        MinimalPermutationFrame(backend="bliss")


# --- beyond the limit ---------------------------------------------------------------------
def test_large_automorphism_groups_are_sampled_and_said_so():
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency"), "nodes")
    n = 9  # K_9: 362880 automorphisms
    x = torch.ones(2, n, 1, dtype=torch.float64)
    a = torch.as_tensor(complete(n), dtype=torch.float64).expand(2, n, n).clone()
    frame = MinimalPermutationFrame(max_elements=100, samples=16, generator=torch.Generator().manual_seed(0))
    with pytest.warns(MonteCarloFrameWarning, match="Monte-Carlo"):
        g, w = frame(sym.group, sym, (x, a), sym.context((x, a)))
    assert w.shape == (2, 16)
    # every sample is a frame element: it maps the input to its canonical form
    moved = sym.act_input(sym.group.inverse(g), (x.repeat_interleave(16, 0), a.repeat_interleave(16, 0)))
    assert torch.equal(moved[1], a.repeat_interleave(16, 0))
    assert len({tuple(p) for p in g.tolist()}) > 8  # drawn, not one element repeated


def test_generic_padded_graphs_take_the_batched_path(dtype):
    """Asymmetric graphs of different sizes: refinement alone labels them (one element
    each, padding in place), exactly."""
    rng = np.random.default_rng(5)
    graphs = [random_graph(m, 0.4, rng, colours=2) for m in (9, 6, 8)]
    feats = torch.randn(3, 9, 2, dtype=dtype)
    x, a, mask = _dense_batch(graphs, 9, dtype, feats=feats)
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency", "mask"), "nodes")
    frame = MinimalPermutationFrame()
    g, w = frame(sym.group, sym, (x, a, mask), sym.context((x, a, mask)))
    assert w.shape == (3, 1)
    assert ((g == torch.arange(9)) | mask).all()

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = DenseNodeModel(9, 2).to(dtype)

        def forward(self, x, a, m):
            return self.inner(x, a) * m[..., None]

    fa = st.FrameAveraging(Masked(), sym, frames=[frame])
    assert _error(fa, sym, (x, a, mask)) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_edge_features_colour_edges(dtype):
    """A 6-cycle whose edges alternate between two types has 6 automorphisms, not 12:
    dense edge features and PyG edge_attr both break the symmetry."""
    from torch_geometric.data import Batch, Data

    n = 6
    typed = torch.zeros(1, n, n, 2, dtype=dtype)
    for i in range(n):
        t = torch.tensor([1.0, 0.0] if i % 2 else [0.0, 1.0], dtype=dtype)
        typed[0, i, (i + 1) % n] = typed[0, (i + 1) % n, i] = t
    frame = MinimalPermutationFrame()
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency"), "nodes")
    x = torch.ones(1, n, 1, dtype=dtype)
    _, w = frame(sym.group, sym, (x, typed), sym.context((x, typed)))
    assert w.shape[1] == 6
    _, w = frame(sym.group, sym, (x, typed.sum(-1)), sym.context((x, typed.sum(-1))))
    assert w.shape[1] == 12
    ei = torch.nonzero(typed[0].sum(-1)).T
    graph = Data(x=torch.ones(n, 1, dtype=dtype), edge_index=ei, edge_attr=typed[0][ei[0], ei[1]], num_nodes=n)
    batch = Batch.from_data_list([graph, graph])
    gsym = st.Symmetry("S_n", st.actions.create_action("graph", positions=()),
                       st.actions.create_action("graph_nodes"))
    _, w = frame(gsym.group, gsym, batch, gsym.context(batch))
    assert w.shape == (2, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_canonical_form_is_the_same_for_relabelled_inputs(backend):
    """g⁻¹·x for the frame's elements is one canonical graph for every relabelling of x
    (both the batched refinement path and the backend's search)."""
    rng = np.random.default_rng(7)
    graphs = [random_graph(10, 0.4, rng, colours=2), cycle(10), SYMMETRIC["petersen"][0],
              random_graph(10, 0.3, rng)]
    sym = st.Symmetry("S_n", Fields("nodes", "adjacency"), "nodes")
    x, a, _ = _dense_batch(graphs, 10, torch.float64,
                           feats=torch.cat([torch.randn(1, 10, 2), torch.ones(3, 10, 2)]).double())
    frame = MinimalPermutationFrame(backend=backend, cache_size=0)

    def canonical(inputs):
        g, w = frame(sym.group, sym, inputs, sym.context(inputs))
        k = w.shape[1]
        reps = tuple(t.repeat_interleave(k, 0) for t in inputs)
        forms = sym.act_input(sym.group.inverse(g), reps)
        return [f.reshape(len(graphs), k, *f.shape[1:]) for f in forms], w

    (fx, fa), w = canonical((x, a))
    for j in range(w.shape[1]):  # every element of an input's frame gives the same form
        real = w[:, j] > 0
        assert torch.equal(fa[real, j], fa[real, 0]) and torch.equal(fx[real, j], fx[real, 0])
    p = torch.stack([torch.randperm(10) for _ in graphs])
    (gx, ga), _ = canonical(sym.act_input(p, (x, a)))
    assert torch.equal(ga[:, 0], fa[:, 0]) and torch.equal(gx[:, 0], fx[:, 0])
