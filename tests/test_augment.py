"""Augment(symmetry): random (g·x, g·y) with one g per example."""

import pytest
import torch
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, GraphNodes, Nodes, Points, Trivial, Vectors
from symtrain.augment import Augment


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_input_and_target_move_with_the_same_element():
    """For an equivariant labelling y = h(x), augmented pairs stay consistent,
    gy == h(gx); a labelling that is not equivariant is caught by the same check."""
    sym = st.Symmetry("S_n x E3", input=Points(), output=Points())
    x = torch.randn(8, 5, 3)

    def h(p):  # equivariant: stretch about the centroid
        c = p.mean(1, keepdim=True)
        return c + 2 * (p - c)

    gx, gy = Augment(sym, generator=_gen())(x, h(x))
    assert torch.allclose(gy, h(gx), atol=1e-5)
    assert not torch.allclose(gx, x, atol=1e-3)

    def not_equivariant(p):
        return p * torch.tensor([1.0, 2.0, 3.0])

    gx, gy = Augment(sym, generator=_gen())(x, not_equivariant(x))
    assert (gy - not_equivariant(gx)).abs().max() > 1e-2


def test_one_random_element_per_example_and_reproducible():
    sym = st.Symmetry("S_n", input=Nodes(), output=Trivial())
    x = torch.arange(6.0).expand(16, 6)[..., None]
    a, b = Augment(sym, generator=_gen(1))(x), Augment(sym, generator=_gen(1))(x)
    assert torch.equal(a, b)
    assert len({tuple(row.flatten().tolist()) for row in a}) > 8  # different g per example
    assert torch.equal(a.sort(1).values, x)  # only permuted
    y = torch.randn(16, 2)
    _, gy = Augment(sym, generator=_gen(1))(x, y)
    assert torch.equal(gy, y)  # invariant targets are left alone


def test_isometries_preserve_geometry_and_translations_are_random():
    sym = st.Symmetry("E3", input=Fields(Points(), Vectors()), output=Trivial())
    pos, vel = torch.randn(4, 6, 3), torch.randn(4, 6, 3)
    gpos, gvel = Augment(sym, generator=_gen(2))((pos, vel))
    assert torch.allclose(torch.cdist(gpos, gpos), torch.cdist(pos, pos), atol=1e-5)
    assert torch.allclose(gvel.norm(dim=-1), vel.norm(dim=-1), atol=1e-5)
    shift = (gpos.mean(1) - pos.mean(1)).norm(dim=-1)
    assert bool((shift > 1e-3).all())  # centroids move (not merely recentred)


def test_caller_data_is_not_modified():
    sym = st.Symmetry("S_n", input=Fields(Adjacency(), Nodes()), output=Nodes())
    adj = (torch.rand(3, 5, 5) < 0.5).float()
    feat, y = torch.randn(3, 5, 2), torch.randn(3, 5)
    copies = [t.clone() for t in (adj, feat, y)]
    (gadj, gfeat), gy = Augment(sym, generator=_gen())((adj, feat), y)
    for t, c in zip((adj, feat, y), copies, strict=True):
        assert torch.equal(t, c)
    # the same permutation on adjacency, features and node targets: P A Pᵀ, P x, P y
    order = torch.argsort(gy, dim=1)
    ref = torch.argsort(y, dim=1)
    def take(t, idx):
        return t.gather(1, idx[..., None].expand(-1, -1, t.shape[-1]))

    assert torch.allclose(take(gfeat, order), take(feat, ref))


def test_pyg_transform_keeps_the_graph_and_moves_node_labels():
    edge_index = torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]])
    data = Data(x=torch.arange(4.0)[:, None], y_node=10 + torch.arange(4.0), edge_index=edge_index)
    aug = Augment(st.Symmetry("S_n", input=Graph(positions=()), output=GraphNodes()), generator=_gen(3))
    outs = [aug(data) for _ in range(6)]
    assert all(isinstance(o, Data) and not isinstance(o, Batch) for o in outs)
    assert torch.equal(data.x.flatten(), torch.arange(4.0))  # untouched
    for out in outs:
        assert torch.equal(out.y_node, out.x.flatten() + 10)  # node targets moved with x
        edges = {(float(out.x[s]), float(out.x[d])) for s, d in out.edge_index.t().tolist()}
        assert edges == {(float(s), float(d)) for s, d in edge_index.t().tolist()}
    assert any(not torch.equal(o.x, data.x) for o in outs)
    batch = Batch.from_data_list([data, data])
    gb, gy = aug(batch, torch.randn(8))
    assert isinstance(gb, Batch) and gb.num_graphs == 2 and gy.shape == (8,)


def test_repr_and_bad_symmetry():
    aug = Augment(st.Symmetry("SO2", input=Points(), output=Trivial()))
    assert repr(aug).startswith("Augment(symmetry=SO2")
    with pytest.raises(TypeError, match="Symmetry"):
        Augment("SO2")
