"""Interface networks of learned probabilistic symmetrization: each is exactly
equivariant, interface(h·x, h·ε) = h·interface(x, ε), for random h; the soft parts agree
with the hard elements; bad inputs give clear errors."""

import pytest
import torch
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, Mask, Nodes
from symtrain.groups.base import element_repeat
from symtrain.symmetrize.interfaces import (PermutationInterface, log_sinkhorn, permutation_entropy,
                                            soft_sort_logits)

from test_wrappers import padded_adjacency, pyg_batch


def check_interface(interface, sym, x, k=3, atol=1e-5, exact=False):
    """interface(h·x, h·ε) == h∘interface(x, ε) for k noise draws and random h."""
    interface.attach(sym)
    ctx = sym.context(x)
    xs = sym.input.repeat(x, k, ctx)
    ctx_k = ctx.repeat(k)
    noise = interface.sample_noise(xs, ctx_k, 1.0)
    h = element_repeat(sym.sample(ctx, 1), k)
    g = interface(xs, noise, ctx_k)
    hx = sym.act_input(h, xs, ctx_k)
    g_h = interface(hx, interface.noise_action.act(sym.group, h, noise, ctx_k), sym.context(hx))
    expected = sym.group.compose(h, g)
    ok = sym.group.allclose(g_h, expected, atol=0.0 if exact else atol)
    assert bool(ok.all()), f"interface not equivariant on {int((~ok).sum())} of {ok.numel()} inputs"
    # Not trivially so: without transforming the noise the element is not h∘g.
    return g


def test_permutation_interface_nodes_is_equivariant():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    g = check_interface(PermutationInterface(in_features=4, hidden=16), sym, torch.randn(4, 6, 4), exact=True)
    assert g.dtype == torch.long and g.shape == (12, 6)


def test_permutation_interface_padded_graphs_is_equivariant_and_keeps_padding():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), st.actions.Trivial())
    adj, mask = padded_adjacency()
    g = check_interface(PermutationInterface(in_features=0, hidden=16), sym, (adj, mask), exact=True)
    mask_k = mask.repeat_interleave(3, 0)
    ar = torch.arange(mask.shape[1]).expand_as(mask_k)
    assert torch.equal(g[~mask_k], ar[~mask_k])


def test_permutation_interface_pyg_graph_is_equivariant():
    sym = st.Symmetry("S_n", Graph(positions=()), st.actions.GraphNodes())
    check_interface(PermutationInterface(in_features=3, hidden=16), sym, pyg_batch(), exact=True)


def test_interface_fails_when_noise_is_not_transformed():
    """The check above can fail: the same noise for h·x gives a different element."""
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    itf = PermutationInterface(in_features=1, hidden=16).attach(sym)
    x = torch.randn(8, 6, 1)
    ctx = sym.context(x)
    noise = itf.sample_noise(x, ctx, 1.0)
    h = sym.sample(ctx)
    g_h = itf(sym.act_input(h, x), noise, ctx)
    assert not bool(sym.group.allclose(g_h, sym.group.compose(h, itf(x, noise, ctx))).all())


def test_soft_permutation_matches_hard_and_is_doubly_stochastic():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), st.actions.Trivial())
    adj, mask = padded_adjacency()
    itf = PermutationInterface(in_features=0, hidden=16, tau=0.01).attach(sym)
    ctx = sym.context((adj, mask))
    rel = itf.relaxed((adj, mask), itf.sample_noise((adj, mask), ctx, 1.0), ctx, soft=True)
    soft = rel.soft[0]
    hard = sym.group.matrix(rel.element)
    assert torch.allclose(soft.sum(-1), torch.ones(4, 7), atol=1e-5)  # last normalisation (transposed)
    assert torch.allclose(soft.sum(-2), torch.ones(4, 7), atol=2e-2)  # 20 iterations
    assert rel.aux_loss.dim() == 0 and float(rel.aux_loss.detach()) >= 0
    # Without Sinkhorn, SoftSort peaks exactly at the hard permutation.
    itf.sinkhorn_iterations = 0
    rel = itf.relaxed((adj, mask), itf.sample_noise((adj, mask), ctx, 1.0), ctx, soft=True)
    assert torch.equal(rel.soft[0].argmax(-2), sym.group.matrix(rel.element).argmax(-2))


def test_sinkhorn_and_entropy_on_known_matrices():
    scores = torch.tensor([[0.3, -1.0, 2.0]])
    sort = log_sinkhorn(soft_sort_logits(scores, tau=1e-3))
    assert torch.allclose(sort, torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]]), atol=1e-6)
    assert float(permutation_entropy(sort)) < 1e-6
    uniform = torch.full((1, 3, 3), 1 / 3)
    assert float(permutation_entropy(uniform)) == pytest.approx(2 * torch.log(torch.tensor(3.0)).item(), rel=1e-5)


def test_permutation_interface_errors():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    itf = PermutationInterface(in_features=2, hidden=8, max_nodes=5).attach(sym)
    x = torch.randn(2, 6, 2)
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="max_nodes"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    x = torch.randn(2, 4, 3)
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="in_features"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    x = torch.randn(2, 4, 2)
    x[0, 1, 0] = float("nan")
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="NaN"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    with pytest.raises(st.SymmetryError, match="O3"):
        PermutationInterface(in_features=3).attach(st.Symmetry("O3", st.actions.Points(), st.actions.Points()))
    with pytest.raises(ValueError, match="attach"):
        PermutationInterface(in_features=2)(torch.randn(2, 4, 2))
