"""The straight-through gradient of learned probabilistic symmetrization, against autograd
through the paper's soft form (Kim et al. 2023), linearised at the hard element:

    inputs  g⁻¹·x ↦ P_stᵀ x  (P_stᵀ A P_st on adjacency)
    outputs g·ŷ   ↦ P_st ŷ   (P_st Ŷ P_stᵀ)
    with P_st = P_hard + S − stopgrad(S);

and for a finite factor with probabilities π over its elements e_j:
    inputs Σ_j π_st,j e_j⁻¹·x,  outputs Σ_j π_st,j e_j·ŷ,  π_st = onehot(g) + π − stopgrad(π).

An interface with a fixed hard element and a soft part that is a leaf tensor lets us read
the gradient that reaches the interface, for every action with a node axis.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.actions import create_action
from symtrain.groups import SymmetricGroup
from symtrain.symmetrize.interfaces import Interface, RelaxedElement

B, N, F = 3, 5, 2


pytestmark = pytest.mark.usefixtures("float64")


class _Relaxed(Interface):
    """Returns a fixed hard element and a fixed soft part (leaves we take gradients of)."""

    def __init__(self, group, element, soft, noise_action="nodes"):
        super().__init__(group)
        self.element, self.soft = element, soft
        self.noise_action = create_action(noise_action)

    def sample_noise(self, x, context, scale, generator=None):
        return torch.zeros(context.batch_size, 1)

    def relaxed(self, x, noise, context=None, soft=False):
        parts = self.soft if isinstance(self.soft, tuple) else (self.soft,)
        if not soft:
            parts = tuple(None for _ in parts)
        return RelaxedElement(self.element, parts, torch.zeros(()))


class DenseMLP(nn.Module):
    """A non-equivariant map on the flattened tensor, reshaped back."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        size = int(torch.tensor(shape).prod())
        self.net = nn.Sequential(nn.Linear(size, 32), nn.Tanh(), nn.Linear(32, size))

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape[0], *self.shape)


def random_soft(b, n):
    """A doubly-stochastic-ish matrix near a random permutation, as a leaf."""
    logits = torch.randn(b, n, n) * 2
    return torch.softmax(logits, -1).requires_grad_()


def perm_matrix(p):
    return SymmetricGroup().matrix(p, torch.float64)


def on_nodes(m, x):
    return torch.einsum("bij,bj...->bi...", m, x)


def gradient_of_soft(model, interface, x, weights):
    model.train()
    out = model(x)
    if isinstance(out, tuple):
        loss = sum((o * w).sum() for o, w in zip(out, weights, strict=True))
    else:
        loss = (out * weights).sum()
    (grad,) = torch.autograd.grad(loss, interface.soft[0] if isinstance(interface.soft, tuple) else interface.soft)
    return out, grad


KINDS = {
    # name: (input shape per sample, how P acts in the soft form)
    "nodes": ((N, F), "rows"),
    "vectors": ((N, 3), "rows"),
    "points": ((N, 3), "rows"),
    "adjacency": ((N, N), "both"),
}


def soft_act(mode, m, x):
    return on_nodes(m, x) if mode == "rows" else on_nodes(m, on_nodes(m, x).transpose(1, 2)).transpose(1, 2)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_node_inputs_and_outputs_match_the_soft_form(kind):
    torch.manual_seed(0)
    shape, mode = KINDS[kind]
    sym = st.Symmetry("S_n", input=kind, output=kind)
    p = SymmetricGroup().sample(B, context=st.groups.GroupContext(num_nodes=N))
    soft = random_soft(B, N)
    iface = _Relaxed("S_n", p, soft)
    base = DenseMLP(shape)
    model = st.ProbabilisticSymmetrization(base, sym, iface, samples=1)
    x = torch.randn(B, *shape)
    w = torch.randn(B, *shape)
    out, grad = gradient_of_soft(model, iface, x, w)

    hard = perm_matrix(p)
    p_st = hard + soft - soft.detach()
    ref = soft_act(mode, p_st, base(soft_act(mode, p_st.transpose(1, 2), x)))
    ref_grad, = torch.autograd.grad((ref * w).sum(), soft)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-10), (grad - ref_grad).abs().max()

    # The check can fail: the former output term P_hardᵀ S P_hard ŷ gives another gradient.
    if mode == "rows":
        wrong = on_nodes(hard.transpose(1, 2) @ p_st @ hard, base(soft_act(mode, p_st.transpose(1, 2), x)))
        wrong_out = on_nodes(hard, wrong)
        wrong_grad, = torch.autograd.grad((wrong_out * w).sum(), soft)
        assert (wrong_grad - ref_grad).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["nodes", "adjacency"])
def test_invariant_output_gets_the_input_term_only(kind):
    torch.manual_seed(1)
    shape, mode = KINDS[kind]
    sym = st.Symmetry("S_n", input=kind, output="trivial")
    p = SymmetricGroup().sample(B, context=st.groups.GroupContext(num_nodes=N))
    soft = random_soft(B, N)
    iface = _Relaxed("S_n", p, soft)
    base = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), 4))
    model = st.ProbabilisticSymmetrization(base, sym, iface, samples=1)
    x, w = torch.randn(B, *shape), torch.randn(B, 4)
    _, grad = gradient_of_soft(model, iface, x, w)
    p_st = perm_matrix(p) + soft - soft.detach()
    ref_grad, = torch.autograd.grad((base(soft_act(mode, p_st.transpose(1, 2), x)) * w).sum(), soft)
    assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_pyg_graph_input_and_graph_node_output():
    from torch_geometric.data import Batch, Data

    torch.manual_seed(2)
    graphs = [Data(x=torch.randn(N, F), edge_index=torch.randint(0, N, (2, 7))) for _ in range(B)]
    batch = Batch.from_data_list(graphs)
    sym = st.Symmetry("S_n", input=st.actions.Graph(positions=()), output=st.actions.GraphNodes())
    p = SymmetricGroup().sample(B, context=st.groups.GroupContext(num_nodes=N))
    soft = random_soft(B, N)
    iface = _Relaxed("S_n", p, soft)
    dense = DenseMLP((N, F))

    class OnGraph(nn.Module):
        def forward(self, g):
            return dense(g.x.reshape(-1, N, F)).reshape(-1, F)

    model = st.ProbabilisticSymmetrization(OnGraph(), sym, iface, samples=1)
    w = torch.randn(B * N, F)
    out, grad = gradient_of_soft(model, iface, batch, w)
    p_st = perm_matrix(p) + soft - soft.detach()
    x = batch.x.reshape(B, N, F)
    ref = on_nodes(p_st, dense(on_nodes(p_st.transpose(1, 2), x))).reshape(-1, F)
    ref_grad, = torch.autograd.grad((ref * w).sum(), soft)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_graph_without_float_node_attributes_is_an_error():
    from torch_geometric.data import Batch, Data

    batch = Batch.from_data_list([Data(edge_index=torch.randint(0, N, (2, 7)), num_nodes=N)] * 2)
    sym = st.Symmetry("S_n", input=st.actions.Graph(positions=()), output="trivial")
    p = SymmetricGroup().sample(2, context=st.groups.GroupContext(num_nodes=N))
    iface = _Relaxed("S_n", p, random_soft(2, N))

    class Count(nn.Module):
        def forward(self, g):
            return torch.zeros(g.num_graphs, 1) + g.edge_index.float().mean()

    model = st.ProbabilisticSymmetrization(Count(), sym, iface, samples=1).train()
    with pytest.raises(st.UnsupportedGroupError, match="no gradient would reach the interface"):
        model(batch)


def test_product_with_rotations_soft_term_acts_on_the_rotated_data():
    torch.manual_seed(3)
    group = st.create_group("S_n x O3")
    sym = st.Symmetry(group, input="points", output="vectors")
    p = SymmetricGroup().sample(B, context=st.groups.GroupContext(num_nodes=N))
    rot = st.groups.O(3).sample(B)
    soft = random_soft(B, N)
    iface = _Relaxed(group, (p, rot), (soft, None))
    base = DenseMLP((N, 3))
    model = st.ProbabilisticSymmetrization(base, sym, iface, samples=1)
    x, w = torch.randn(B, N, 3), torch.randn(B, N, 3)
    out, grad = gradient_of_soft(model, iface, x, w)
    p_st = perm_matrix(p) + soft - soft.detach()
    x_in = on_nodes(p_st.transpose(1, 2), x @ rot)                  # g⁻¹·x = Pᵀ (x R)
    ref = on_nodes(p_st, base(x_in) @ rot.transpose(1, 2))         # g·ŷ = P (ŷ Rᵀ)
    ref_grad, = torch.autograd.grad((ref * w).sum(), soft)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-10)


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_finite_factor_mixture_on_images(group):
    torch.manual_seed(4)
    sym = st.Symmetry(group, input="image", output="image")
    G = sym.group
    elems = G.elements()
    m = elems.shape[0]
    idx = torch.randint(m, (B,))
    probs = torch.softmax(torch.randn(B, m), -1).requires_grad_()
    iface = _Relaxed(group, elems[idx], probs, noise_action="image")
    base = DenseMLP((1, 4, 4))
    model = st.ProbabilisticSymmetrization(base, sym, iface, samples=1)
    x, w = torch.randn(B, 1, 4, 4), torch.randn(B, 1, 4, 4)
    out, grad = gradient_of_soft(model, iface, x, w)

    pi_st = torch.nn.functional.one_hot(idx, m).to(probs.dtype) + probs - probs.detach()
    image = sym.input

    def mix(y, inverse):
        es = G.inverse(elems) if inverse else elems
        moved = torch.stack([image.act(G, es[j:j + 1].expand(B, *es.shape[1:]), y) for j in range(m)], 1)
        return (moved * pi_st[:, :, None, None, None]).sum(1)

    ref = mix(base(mix(x, inverse=True)), inverse=False)
    ref_grad, = torch.autograd.grad((ref * w).sum(), probs)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_action_without_soft_permute_is_an_error_not_a_silent_zero_gradient():
    class Tensor2(st.actions.Nodes.__mro__[1]):  # a new node type that declares no soft_permute
        def soft_permute(self, x, matrix, context=None):
            return st.actions.Action.soft_permute(self, x, matrix, context)

    sym = st.Symmetry("S_n", input="nodes", output=Tensor2())
    p = SymmetricGroup().sample(B, context=st.groups.GroupContext(num_nodes=N))
    iface = _Relaxed("S_n", p, random_soft(B, N))
    model = st.ProbabilisticSymmetrization(DenseMLP((N, F)), sym, iface, samples=1).train()
    with pytest.raises(st.UnsupportedGroupError, match="Tensor2.*soft permutation"):
        model(torch.randn(B, N, F))
    model.eval()  # no soft term in evaluation: no error
    assert model(torch.randn(B, N, F)).shape == (B, N, F)
