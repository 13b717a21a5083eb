"""Every action is a left action (act(g, act(h, x)) = act(g∘h, x)) and agrees with the
group's matrix representation; shape and group mismatches raise clear errors."""


import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_adj, to_dense_batch

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, GraphNodes, Image, Mask, Nodes, Points, Vectors

B = 5


def smooth_images(b, c, n):
    """Band-limited images that vanish at the border, so resampling is accurate."""
    lin = torch.linspace(-1, 1, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    freq = torch.randn(b, c, 2, 1, 1, dtype=torch.float64)
    wave = torch.cos(2 * freq[:, :, 0] * xx + 2 * freq[:, :, 1] * yy + torch.randn(b, c, 1, 1, dtype=torch.float64))
    return wave * torch.exp(-4 * (xx ** 2 + yy ** 2))


def data_for(action, group_name):
    if isinstance(action, Image) and action.interpolation:
        return smooth_images(B, 2, 33)
    if isinstance(action, Image):
        return torch.randn(B, 2 * (8 if action.fiber == "regular" else 1), 7, 7, dtype=torch.float64)
    if isinstance(action, (Points, Vectors)):
        d = 2 if group_name in ("C4", "D4", "SO2", "O2", "E2") else 3
        return torch.randn(B, 6, d, dtype=torch.float64)
    if isinstance(action, Adjacency):
        return torch.randn(B, 6, 6, 2, dtype=torch.float64)
    return torch.randn(B, 6, 4, dtype=torch.float64)


CASES = [
    (Points(), "SO3"), (Points(), "O3"), (Points(), "E3"), (Points(), "SE3"), (Points(), "S_n x E3"),
    (Points(), "C4"), (Points(), "D4"), (Points(), "O2"), (Vectors(), "E3"), (Vectors(), "S_n x O3"),
    (Nodes(), "S_n"), (Adjacency(), "S_n"), (Nodes(), "S_n x SO3"),
    (Image(), "C4"), (Image(), "D4"), (Image(), "D2"), (Image(fiber="regular"), "D4"),
    (Image(interpolation="bilinear"), "SO2"),
]


@pytest.mark.parametrize("action,group_name", CASES, ids=lambda v: repr(v) if not isinstance(v, str) else v)
def test_left_action(action, group_name):
    group = st.create_group(group_name)
    x = data_for(action, group_name)
    sym = st.Symmetry(group, input=action)
    ctx = sym.context(x)
    g, h = sym.sample(ctx, 1, dtype=torch.float64), sym.sample(ctx, 1, dtype=torch.float64)
    lhs = sym.act_input(g, sym.act_input(h, x, ctx), ctx)
    rhs = sym.act_input(group.compose(g, h), x, ctx)
    if isinstance(action, Image) and action.interpolation:
        # Resampling twice is not resampling once: close on smooth images only.
        assert (lhs - rhs).abs().max() < 0.02 * rhs.abs().max()
    else:
        torch.testing.assert_close(lhs, rhs)
    e = group.identity(B, context=ctx, dtype=torch.float64)
    torch.testing.assert_close(sym.act_input(e, x, ctx), x)
    assert not torch.allclose(sym.act_input(g, x, ctx), x)


@pytest.mark.parametrize("group_name", ["C4", "D4"])
def test_image_grid_action_matches_matrix_on_pixel_coordinates(group_name):
    """The pixel at coordinates p (x right, y up, centred) moves to R p."""
    group = st.create_group(group_name)
    n = 5
    img = torch.zeros(group.order, 1, n, n, dtype=torch.float64)
    img[:, 0, 0, 3] = 1.0  # row 0 (top), column 3
    g = group.elements()
    out = Image().act(group, g, img)
    p = torch.tensor([3 - 2, 2 - 0], dtype=torch.float64)  # (x, y) of that pixel
    q = group.matrix(g, torch.float64) @ p
    rows = (2 - q[:, 1]).round().long()
    cols = (q[:, 0] + 2).round().long()
    for i in range(group.order):
        assert out[i, 0, rows[i], cols[i]] == 1.0


def test_interpolated_rotation_agrees_with_rot90():
    x = torch.randn(3, 2, 9, 9, dtype=torch.float64)
    quarter = st.groups.SO(2).identity(3, dtype=torch.float64)
    quarter[:] = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    approx = Image(interpolation="bilinear").act(st.groups.SO(2), quarter, x)
    exact = Image().act(st.groups.Cyclic(4), torch.ones(3, dtype=torch.long), x)
    torch.testing.assert_close(approx, exact)


def test_regular_fiber_shifts_channels_with_rotation():
    group = st.groups.Cyclic(4)
    x = torch.randn(2, 8, 5, 5)
    g = torch.tensor([1, 3])
    out = Image(fiber="regular").act(group, g, x)
    spatial = Image().act(group, g, x)
    # channel block of field 0 is [0..3]; g=1 moves f(h) to f(g h) = channel (h + 1) mod 4
    torch.testing.assert_close(out[0, 1], spatial[0, 0])
    torch.testing.assert_close(out[1, 0], spatial[1, 1])


def _graphs():
    g1 = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), pos=torch.randn(4, 3))
    g2 = Data(x=torch.randn(6, 3), edge_index=torch.tensor([[0, 1, 5, 2], [1, 0, 4, 2]]), pos=torch.randn(6, 3))
    g3 = Data(x=torch.randn(3, 3), edge_index=torch.tensor([[0, 2], [2, 1]]), pos=torch.randn(3, 3))
    return Batch.from_data_list([g1, g2, g3])


def test_graph_action_matches_dense_actions():
    batch = _graphs()
    before = batch.x.clone(), batch.edge_index.clone(), batch.pos.clone()
    group = st.create_group("S_n x SO3")
    sym = st.Symmetry(group, input=Graph())
    ctx = sym.context(batch)
    g = sym.sample(ctx, 1)
    out = sym.act_input(g, batch, ctx)
    dense_x, mask = to_dense_batch(batch.x, batch.batch)
    dense_pos, _ = to_dense_batch(batch.pos, batch.batch)
    adj = to_dense_adj(batch.edge_index, batch.batch)
    dense = Fields(Nodes(), Points(), Adjacency(), Mask())
    exp_x, exp_pos, exp_adj, exp_mask = dense.act(group, g, (dense_x, dense_pos, adj, mask), ctx)
    got_x, got_mask = to_dense_batch(out.x, out.batch)
    torch.testing.assert_close(got_x, exp_x)
    torch.testing.assert_close(to_dense_batch(out.pos, out.batch)[0], exp_pos * exp_mask[..., None])
    torch.testing.assert_close(to_dense_adj(out.edge_index, out.batch), exp_adj)
    assert torch.equal(got_mask, exp_mask)
    # the caller's batch is untouched
    for old, new in zip(before, (batch.x, batch.edge_index, batch.pos), strict=True):
        assert torch.equal(old, new)


def test_graph_nodes_repeat_and_mean_round_trip():
    batch = _graphs()
    sym = st.Symmetry("S_n", input=Graph(), output=GraphNodes())
    ctx = sym.context(batch)
    y = torch.randn(batch.num_nodes, 2)
    rep = sym.output.repeat(y, 3, ctx)
    assert rep.shape == (3 * batch.num_nodes, 2)
    w = torch.full((3, 3), 1 / 3)
    torch.testing.assert_close(sym.output.mean(rep, w, ctx), y)


@pytest.mark.parametrize("action,x,match", [
    (Points(), torch.randn(4, 5), r"\(B, N, d\)"),
    (Points(), torch.randn(4, 5, 2), "3-dimensional vectors"),
    (Image(), torch.randn(4, 3, 8, 9), "square image"),
    (Image(), torch.randn(3, 8, 8), r"\(B, C, H, W\)"),
    (Mask(), torch.ones(2, 5), "bool mask"),
    (Adjacency(), torch.randn(2, 5, 4), "equal node axes"),
])
def test_shape_errors(action, x, match):
    group = "C4" if isinstance(action, Image) else ("S_n" if isinstance(action, (Mask, Adjacency)) else "SO3")
    sym = st.Symmetry(group, input=action)
    with pytest.raises(st.ShapeError, match=match):
        sym.check_input(x)


def test_group_action_mismatch_errors():
    with pytest.raises(st.UnsupportedGroupError, match="Image\\(interpolation='bilinear'\\)"):
        st.Symmetry("C8", input=Image())
    with pytest.raises(st.UnsupportedGroupError, match="arbitrary rotations"):
        st.Symmetry("SO2", input=Image())
    with pytest.raises(st.UnsupportedGroupError, match="planar rotations"):
        st.Symmetry("S_n", input=Image())
    with pytest.raises(st.UnsupportedGroupError, match="no node axis"):
        st.Symmetry("S_n", input=Vectors(nodes=False))
    with pytest.raises(st.ShapeError, match="keys"):
        st.Symmetry("SO3", input=Fields(pos=Points())).check_input({"x": torch.randn(2, 3, 3)})
    sym = st.Symmetry("C8", input=Image(interpolation="bilinear"))  # opting in works
    assert str(sym.group) == "C8"
