"""What groups and actions say they can do agrees with what they do; what they cannot do
raises an error that names them. Loops over the registries, as timm's tests loop over
its models."""

from __future__ import annotations

import pytest
import torch

import symtrain as st
from symtrain.actions import Action, create_action, list_actions
from symtrain.groups import GroupContext, list_groups

CTX = GroupContext(num_nodes=5, batch_size=16)


def sample(group, b=16, dtype=torch.float64):
    return group.sample(b, context=GroupContext(num_nodes=5, batch_size=b), dtype=dtype)


@pytest.mark.parametrize("name", list_groups() + ["SO2", "O2", "E2", "C8", "D3"])
def test_linear_part_is_an_orthogonal_homomorphism(name):
    group = st.create_group(name)
    if group.vector_dim is None:
        with pytest.raises(st.UnsupportedGroupError, match=str(group)):
            group.rotation(sample(group))
        return
    g, h = sample(group), sample(group)
    r = group.rotation(g, torch.float64)
    d = group.vector_dim
    assert r.shape == (16, d, d)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(d, dtype=r.dtype).expand(16, d, d), atol=1e-10)
    assert torch.allclose(group.rotation(group.compose(g, h), torch.float64), r @ group.rotation(h, torch.float64),
                          atol=1e-10)
    if group.is_proper:
        assert torch.allclose(torch.linalg.det(r), torch.ones(16, dtype=r.dtype), atol=1e-10)
    else:  # a group that says it has reflections does reflect, for some element
        assert (torch.linalg.det(group.rotation(sample(group, 256), torch.float64)) < 0).any()
    if group.has_translations:
        back = group.from_parts(r, group.translation(g, torch.float64))
        assert group.allclose(back, g, 1e-12).all()


@pytest.mark.parametrize("name", [n for n in list_groups() if st.create_group(n).is_continuous] + ["SO2", "E2"])
def test_exp_of_the_lie_algebra(name):
    group = st.create_group(name)
    basis = group.lie_algebra(dtype=torch.float64)
    e = group.exp(torch.zeros_like(basis))
    assert group.allclose(e, group.identity(basis.shape[0], dtype=torch.float64), 1e-12).all()
    t = 1e-4
    g = group.exp(t * basis)
    # exp(tξ) exp(−tξ) = identity, and d/dt rotation(exp(tξ)) at 0 is ξ's linear block.
    assert group.allclose(group.compose(g, group.exp(-t * basis)), e, 1e-10).all()
    d = group.vector_dim
    deriv = (group.rotation(g) - group.rotation(group.exp(-t * basis))) / (2 * t)
    assert torch.allclose(deriv, basis[:, :d, :d], atol=1e-6)


@pytest.mark.parametrize("name", ["C4", "D4", "C2", "D2", "C1"])
def test_grid_moves_agree_with_the_rotation(name):
    group = st.create_group(name)
    assert group.acts_on_grid
    g = group.elements()
    quarter, flip = group.grid_moves(g)
    # rot90^q ∘ flip_rows^f as a matrix on (x, y) with y up: flip is (x, y) -> (x, -y).
    c = torch.cos(quarter.double() * torch.pi / 2).round()
    s = torch.sin(quarter.double() * torch.pi / 2).round()
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    diag = torch.ones(g.shape[0], 2, dtype=torch.float64)
    diag[:, 1] = 1 - 2 * flip.double()
    assert torch.allclose(rot * diag[:, None, :], group.rotation(g, torch.float64), atol=1e-12)


@pytest.mark.parametrize("name", ["C8", "SO2", "O3", "S_n"])
def test_groups_off_the_grid_say_so(name):
    group = st.create_group(name)
    assert not group.acts_on_grid
    with pytest.raises(st.UnsupportedGroupError, match="pixel grid"):
        group.grid_moves(sample(group))


def test_default_capabilities_raise_naming_the_group():
    group = st.create_group("C4")
    for call in (lambda: group.permutation(group.elements()), lambda: group.translation(group.elements()),
                 lambda: group.lie_algebra(), lambda: group.exp(torch.zeros(1, 2, 2))):
        with pytest.raises(st.UnsupportedGroupError, match="C4"):
            call()


def test_compatible_sizes():
    assert st.create_group("S5").compatible(st.create_group("S_n"))
    assert not st.create_group("S5").compatible(st.create_group("S4"))
    assert st.create_group("S_n x O3").compatible(st.create_group("S6 x O3"))
    assert not st.create_group("S_n x O3").compatible(st.create_group("S_n x SO3"))


# --- actions ---------------------------------------------------------------------------
class Bare(Action):
    """A data type that declares nothing beyond how it moves."""

    def act_factor(self, factor, g, x, context):
        return x


@pytest.mark.parametrize("method,args", [("node_view", ()), ("points", ()), ("pixels", ()),
                                         ("soft_permute", (torch.eye(3)[None],)), ("scalar_field", None)])
def test_undeclared_action_capabilities_raise_naming_the_action(method, args):
    x = torch.randn(1, 3, 2)
    call = (lambda: getattr(Bare(), method)()) if args is None else (lambda: getattr(Bare(), method)(x, *args))
    with pytest.raises(st.UnsupportedGroupError, match=r"Bare\(\)"):
        call()


@pytest.mark.parametrize("name", list_actions())
def test_every_registered_action_declares_its_data(name):
    action = create_action(name) if name != "fields" else create_action("fields", "points", "nodes")
    samples = {"nodes": torch.randn(2, 5, 3), "mask": torch.ones(2, 5, dtype=torch.bool),
               "adjacency": torch.rand(2, 5, 5), "points": torch.randn(2, 5, 3),
               "vectors": torch.randn(2, 5, 3), "trivial": torch.randn(2, 4),
               "image": torch.randn(2, 1, 4, 4), "atoms": torch.tensor([[6, 1, 8, 0, 0], [1, 1, 1, 1, 6]]),
               "fields": (torch.randn(2, 5, 3), torch.randn(2, 5, 1))}
    if name in ("graph", "graph_nodes"):
        from torch_geometric.data import Batch, Data

        g = Batch.from_data_list([Data(x=torch.randn(5, 2), pos=torch.randn(5, 3),
                                       edge_index=torch.randint(0, 5, (2, 6)))] * 2)
        x = g if name == "graph" else torch.randn(10, 2)
    else:
        x = samples[name]
    # Each capability either answers or raises UnsupportedGroupError/ShapeError (never
    # anything else, never a silent fall-through).
    for method in ("points", "pixels"):
        try:
            out = getattr(action, method)(x)
        except st.SymmetryError:
            continue
        assert out is None or isinstance(out, torch.Tensor)
    if name != "graph_nodes":
        try:
            view = action.node_view(x)
        except st.SymmetryError:
            view = None
        assert view is None or isinstance(view, st.actions.NodeView)


def test_symmetry_accepts_action_names():
    sym = st.Symmetry("S_n x O3", input=create_action("fields", "points", "vectors", "nodes"), output="points")
    assert sym.output == st.actions.Points() and not sym.invariant
    with pytest.raises(ValueError, match="unknown action 'pointz'"):
        st.Symmetry("SO3", input="pointz")
