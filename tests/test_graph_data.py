"""Synthetic graphs: CSL, EXP-style 1-WL-equivalent pairs, SBM PATTERN."""

import pytest
import torch

from symtrain.data import csl_graphs, exp_pairs, sbm_pattern


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def wl_histograms(adjs, rounds=None):
    """1-WL colour refinement run jointly on several graphs (shared colour names);
    returns each graph's sorted colour list after every round."""
    nbrs = [[a[i].nonzero().flatten().tolist() for i in range(a.shape[0])] for a in adjs]
    colors = [[0] * a.shape[0] for a in adjs]
    out = []
    for _ in range(rounds or max(a.shape[0] for a in adjs)):
        names = {}
        colors = [[names.setdefault((c[i], tuple(sorted(c[j] for j in nb[i]))), len(names))
                   for i in range(len(c))] for c, nb in zip(colors, nbrs, strict=False)]
        out.append([sorted(c) for c in colors])
    return out


def _components(adj):
    lap = torch.diag(adj.sum(1)) - adj
    return int((torch.linalg.eigvalsh(lap.double()) < 1e-8).sum())


def _spectrum(adj):
    return torch.linalg.eigvalsh(adj.double())


def test_csl_graphs_are_regular_distinct_classes_and_seeded():
    data = csl_graphs(generator=_gen())
    assert data.adjacency.shape == (150, 41, 41) and data.num_classes == 10
    assert torch.equal(torch.bincount(data.labels), torch.full((10,), 15))
    adj = data.adjacency
    assert torch.equal(adj, adj.transpose(1, 2)) and adj.diagonal(dim1=1, dim2=2).abs().sum() == 0
    assert bool((adj.sum(2) == 4).all())  # 4-regular: 1-WL gives every node one colour
    spectra = torch.stack([_spectrum(a) for a in adj])
    first = spectra[::15]  # one graph per class
    assert torch.allclose(spectra, first.repeat_interleave(15, 0), atol=1e-8)  # relabelled copies
    gaps = (first[:, None] - first[None]).abs().amax(-1) + torch.eye(10)
    assert bool((gaps > 1e-3).all())  # but the classes are not isomorphic
    assert not torch.equal(adj[0], adj[1])  # node orders are random
    assert torch.equal(csl_graphs(generator=_gen()).adjacency, adj)
    with pytest.raises(ValueError, match="skip lengths"):
        csl_graphs(skips=(1, 3))


def test_exp_pairs_are_wl_equivalent_and_not_isomorphic():
    data = exp_pairs(12, base_nodes=6, generator=_gen(1))
    adj = data.adjacency
    assert adj.shape == (24, 12, 12) and data.labels.tolist() == [0, 1] * 12
    assert torch.equal(adj, adj.transpose(1, 2)) and adj.diagonal(dim1=1, dim2=2).abs().sum() == 0
    for i in range(12):
        a, b = adj[2 * i], adj[2 * i + 1]
        hists = wl_histograms([a, b])
        assert all(h[0] == h[1] for h in hists)  # 1-WL cannot tell them apart
        assert _components(a) == 2 and _components(b) == 1  # yet they are not isomorphic
    # the same WL check does tell graphs of different pairs apart (it is able to fail)
    differs = [any(h[0] != h[1] for h in wl_histograms([adj[0], adj[2 * j + 1]])) for j in range(1, 12)]
    assert sum(differs) >= 8


def test_sbm_pattern_node_labels_mask_and_densities():
    data = sbm_pattern(20, community_size=(4, 8), pattern_size=6, generator=_gen(2))
    adj, mask, labels = data.adjacency, data.mask, data.labels
    n = mask.sum(1)
    assert bool(((n >= 5 * 4 + 6) & (n <= 5 * 8 + 6)).all())
    assert bool((mask[:, :-1] >= mask[:, 1:]).all())  # real nodes first
    assert torch.equal((labels == 1).sum(1), torch.full((20,), 6))
    assert bool((labels[~mask] == -1).all()) and bool((labels[mask] >= 0).all())
    pair = mask[:, :, None] & mask[:, None, :]
    assert adj[~pair].abs().sum() == 0 and torch.equal(adj, adj.transpose(1, 2))
    assert torch.allclose(data.features.sum(-1), mask.float())  # one-hot tokens on real nodes
    pat = (labels == 1).float()
    pp = pat[:, :, None] * pat[:, None, :] * (1 - torch.eye(adj.shape[1]))
    assert abs(float((adj * pp).sum() / pp.sum()) - 0.5) < 0.1
    first_pattern = (labels == 1).float().argmax(1)
    assert len(set(first_pattern.tolist())) > 3  # the pattern is not at a fixed position


def test_pyg_form_matches_dense_form():
    data = sbm_pattern(3, community_size=(2, 4), pattern_size=3, generator=_gen(3))
    graphs = data.to_pyg()
    for g, adj, mask, y in zip(graphs, data.adjacency, data.mask, data.labels, strict=False):
        assert g.num_nodes == int(mask.sum()) and g.edge_index.shape[1] == int(adj.sum())
        assert torch.equal(g.y, y[mask])
    csl = csl_graphs(2, generator=_gen())[:3].to_pyg()
    assert [int(g.y) for g in csl] == [0, 0, 1] and csl[0].x.shape == (41, 1)


def test_unicyclic_exp_pairs_differ_only_in_long_cycles():
    """With cycle=c the two lifts have equal closed-walk counts tr(A^k) for k < c (no
    short-subgraph statistic separates them) and differ at k = c."""
    data = exp_pairs(6, base_nodes=8, cycle=5, generator=_gen(4))
    adj = data.adjacency.double()
    for i in range(6):
        a, b = adj[2 * i], adj[2 * i + 1]
        assert all(h[0] == h[1] for h in wl_histograms([a, b]))
        assert _components(a) == 2 and _components(b) == 1
        walks = [(torch.trace(torch.matrix_power(a, k)), torch.trace(torch.matrix_power(b, k)))
                 for k in range(1, 6)]
        assert all(float(x) == float(y) for x, y in walks[:4]) and float(walks[4][0]) > float(walks[4][1])
    with pytest.raises(ValueError, match="cycle"):
        exp_pairs(2, base_nodes=4, cycle=5)
