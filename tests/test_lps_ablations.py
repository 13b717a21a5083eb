"""The LPS settings beyond PS: the Laplacian-eigenvector frame (PATTERN's FA ablation),
interface dropout, the ViT's padding modes and patch dropout (Peptides), early stopping on
a validation quantity, and PCQM-Contact's loss over the contacts and sampled negatives."""

import itertools
import math

import pytest
import torch
from models import MaskedAdjacencyMLP
from torch import nn

import symtrain as st
from symtrain.actions import Adjacency, Fields, Mask, Nodes
from symtrain.symmetrize.laplacian_frame import LaplacianFrame, LaplacianFrameAveraging, laplacian_keys

torch.set_num_threads(1)
SYM = st.Symmetry("S_n", Fields(Adjacency(), Mask()), "trivial")
NODE_SYM = st.Symmetry("S_n", Fields(Adjacency(), Mask()), Nodes())


def graph(edges, n, size=None):
    """A dense 0/1 adjacency ``[1, size, size]`` (padding after ``n`` real nodes) and mask."""
    size = size or n
    adj = torch.zeros(1, size, size)
    for i, j in edges:
        adj[0, i, j] = adj[0, j, i] = 1
    return adj, torch.arange(size)[None] < n


# a star with a tail (leaves 1, 2, 3 tied), a 6-cycle (every node tied), a path (ends tied),
# and a random graph (generically no ties)
STAR = graph([(0, 1), (0, 2), (0, 3), (0, 4), (4, 5)], 6, size=8)
CYCLE = graph([(i, (i + 1) % 6) for i in range(6)], 6)
PATH = graph([(0, 1), (1, 2), (2, 3)], 4, size=5)


def random_graph(n=9, p=0.4, seed=1):
    g = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.rand(n, n, generator=g) < p, 1).float()
    return (upper + upper.T)[None], torch.ones(1, n, dtype=torch.bool)


def permute(adj, mask, p):
    """The input moved by the S_n element ``p`` (node ``j`` goes to position ``p[j]``)."""
    return SYM.act_input(p[None], (adj, mask), SYM.context((adj, mask)))


def random_perm(n, real, seed):
    """A random permutation of the first ``real`` nodes (padding left in place)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randperm(real, generator=g), torch.arange(real, n)])


@pytest.mark.parametrize("case", ["star", "cycle", "path", "random"])
def test_the_criterion_moves_with_the_nodes_even_on_repeated_eigenvalues(case, dtype):
    adj, mask = {"star": STAR, "cycle": CYCLE, "path": PATH, "random": random_graph()}[case]
    adj = adj.to(dtype)
    real = int(mask.sum())
    keys = laplacian_keys(adj, mask)
    for seed in range(4):
        p = random_perm(adj.shape[1], real, seed)
        moved_adj, moved_mask = permute(adj, mask, p)
        moved = laplacian_keys(moved_adj, moved_mask)
        inv = torch.argsort(p)
        assert torch.equal(moved[0], keys[0][inv]), case  # row p[j] of S(P·G) is row j of S(G)
    if case == "cycle":  # vertex-transitive: every row equal (LPS's exact-equality grouping would split them)
        assert torch.equal(keys[0], keys[0][:1].expand(6, -1))


def test_rounding_and_grouping_follow_the_lps_rule():
    keys = laplacian_keys(*PATH)
    # P4 eigenvalues 0, 2-√2, 2, 2+√2 are simple: |v| rounded to 2 decimals; the padded node is ignored
    assert keys[0, 0, 0] == 0.5 and keys[0, 0, 4] == 0
    assert torch.equal(keys[0, 0], keys[0, 3]) and torch.equal(keys[0, 1], keys[0, 2])
    assert not torch.equal(keys[0, 0], keys[0, 1])
    assert torch.equal(keys * 100, torch.round(keys * 100))
    # a degree-3 star: eigenvalue 1 has multiplicity 2; the leaves get the eigenspace's row norm sqrt(2/3)
    star = laplacian_keys(*graph([(0, 1), (0, 2), (0, 3)], 4))
    assert star[0, 1:, 1].tolist() == [0.82] * 3 and star[0, 0, 1] == 0


def frame_set(adj, mask):
    g, w = LaplacianFrame()(SYM.group, SYM, (adj, mask), SYM.context((adj, mask)))
    return {tuple(e) for e in g[w.reshape(-1) > 0].tolist()}


@pytest.mark.parametrize("case", ["star", "path", "random"])
def test_the_frame_is_equivariant_as_a_set(case):
    adj, mask = {"star": STAR, "path": PATH, "random": random_graph()}[case]
    frame = frame_set(adj, mask)
    assert len(frame) == {"star": 6, "path": 4, "random": 1}[case]  # 3! and 2!·2! orderings of the ties
    real = int(mask.sum())
    for seed in range(3):
        p = random_perm(adj.shape[1], real, seed)
        moved = frame_set(*permute(adj, mask, p))
        expected = {tuple(SYM.group.compose(p[None], torch.tensor([e]))[0].tolist()) for e in frame}
        assert moved == expected


def test_sampled_tie_breaks_are_uniform_on_the_frame_and_move_with_the_input():
    """Equivariant in distribution: the law of the drawn element at P·G is the law at G
    moved by P (uniform on F(P·G) = P·F(G))."""
    adj, mask = STAR
    frame = LaplacianFrame(samples=600, generator=torch.Generator().manual_seed(0))
    p = random_perm(8, 6, 5)
    counts = {}
    for x, shift in (((adj, mask), p), (permute(adj, mask, p), None)):
        g, _ = frame(SYM.group, SYM, x, SYM.context(x))
        if shift is not None:
            g = SYM.group.compose(shift[None].expand_as(g), g)
        counts[shift is None] = {k: len(list(v)) for k, v in itertools.groupby(sorted(map(tuple, g.tolist())))}
    support = {tuple(SYM.group.compose(p[None], torch.tensor([e]))[0].tolist()) for e in frame_set(adj, mask)}
    for c in counts.values():
        assert set(c) == support
        assert all(60 <= v <= 140 for v in c.values()), c  # 100 expected each; ±4 sigma


class FeatureMLP(nn.Module):
    """``(adj [B, N, N], x [B, N, F], mask) -> [B, 3]``: reads node order (not equivariant)."""

    def __init__(self, n, f):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n * n + n * f, 32), nn.Tanh(), nn.Linear(32, 3))

    def forward(self, adj, x, mask):
        return self.net(torch.cat([adj.flatten(1), (x * mask[..., None]).flatten(1)], 1))


def test_the_wrapper_is_exact_over_the_whole_frame_and_in_distribution_when_sampled(dtype):
    """On the star the tied leaves carry different node features (as PATTERN's nodes do:
    the LPS frame reads the graph only), so the order of the tie matters."""
    torch.manual_seed(0)
    sym = st.Symmetry("S_n", Fields(Adjacency(), Nodes(), Mask()), "trivial")
    base = FeatureMLP(8, 2).to(dtype)
    adj, mask = STAR
    x = (adj.to(dtype), torch.randn(1, 8, 2, dtype=dtype), mask)
    exact = LaplacianFrameAveraging(base, sym).eval()
    assert st.equivariance_error(exact, sym, x, samples=8).max < (1e-10 if dtype == torch.float64 else 1e-5)
    assert st.equivariance_error(base, sym, x, samples=8).max > 1e-2  # the same check fails unwrapped
    one = LaplacianFrameAveraging(base, sym, samples=1, eval_samples=1).eval()
    assert one.stochastic
    # a single draw is not equivariant on a graph with ties ...
    p = random_perm(8, 6, 3)
    moved = sym.act_input(p[None], x, sym.context(x))
    with torch.no_grad():
        singles = torch.stack([one(*x) for _ in range(200)])
        singles_moved = torch.stack([one(*moved) for _ in range(200)])
    assert (singles - singles_moved).abs().max() > 1e-3
    # ... but its law is: the mean over draws converges to the exact frame average at both inputs
    with torch.no_grad():
        target = exact(*x)
    spread = singles.std(0).max()
    for draws in (singles, singles_moved):
        assert (draws.mean(0) - target).abs().max() < 5 * spread / math.sqrt(200) + 1e-6


def test_the_cache_gives_the_uncached_orders_and_decomposes_each_graph_once(monkeypatch):
    import symtrain.symmetrize.laplacian_frame as lf

    adj = torch.cat([STAR[0], PATH[0].new_zeros(1, 8, 8), random_graph(8, seed=2)[0]])
    adj[1, :5, :5] = PATH[0][0]
    mask = torch.stack([STAR[1][0], torch.arange(8) < 4, torch.ones(8, dtype=torch.bool)])
    x = (adj, mask)
    plain = LaplacianFrame(cache_size=0)(SYM.group, SYM, x, SYM.context(x))
    calls = []
    real = lf.laplacian_keys
    monkeypatch.setattr(lf, "laplacian_keys", lambda a, *rest: calls.append(a.shape[0]) or real(a, *rest))
    cached = LaplacianFrame()
    for _ in range(3):
        got = cached(SYM.group, SYM, x, SYM.context(x))
        assert all(torch.equal(u, v) for u, v in zip(got, plain, strict=True))
    assert calls == [3]  # three graphs decomposed once, then read from the cache
    cached(SYM.group, SYM, (adj[[2, 0]], mask[[2, 0]]), SYM.context((adj[[2, 0]], mask[[2, 0]])))
    assert calls == [3]


def test_the_fa_wrapper_refuses_groups_and_inputs_it_cannot_order():
    with pytest.raises(st.UnsupportedGroupError, match="must be S_n"):
        LaplacianFrameAveraging(nn.Identity(), st.Symmetry("S_n x E3", Fields(Adjacency(), Mask()), "trivial"))
    wrapped = LaplacianFrameAveraging(nn.Linear(3, 2), st.Symmetry("S_n", Nodes(), "trivial"))
    with pytest.raises(st.UnsupportedGroupError, match="no adjacency"):
        wrapped(torch.randn(2, 4, 3))
    with pytest.raises(st.DegenerateFrameError):  # 6! orderings of the cycle > max_size
        LaplacianFrameAveraging(MaskedAdjacencyMLP(6), SYM, max_size=100)(*CYCLE)


# --- interface dropout, padding, patch dropout --------------------------------------------
def test_interface_dropout_acts_in_training_only():
    from symtrain.symmetrize.interfaces.permutation import PermutationInterface

    torch.manual_seed(0)
    iface = PermutationInterface(in_features=0, hidden=16, layers=2, dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in iface.modules()) == 2
    assert not any(isinstance(m, nn.Dropout) for m in PermutationInterface(0).modules())
    iface.attach(NODE_SYM)
    adj, mask = random_graph()
    noise = torch.rand(1, 9, 2)
    view_x = (adj, mask)
    iface.eval()
    a, _ = iface.scores(view_x, noise)
    b, _ = iface.scores(view_x, noise)
    assert torch.equal(a, b)
    iface.train()
    c, _ = iface.scores(view_x, noise)
    assert not torch.allclose(a, c)
    with pytest.raises(st.SymmetryError, match="dropout"):
        PermutationInterface(0, dropout=1.0)


def test_padding_modes_and_centering_of_the_graph_vit():
    import torch.nn.functional as F

    from symtrain.models.graph_vit import graph_vit

    torch.manual_seed(0)
    adj, x = torch.rand(2, 10, 10), torch.rand(2, 10, 3)
    kw = dict(max_nodes=10, vit="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, in_features=3)
    plain = graph_vit(readout="graph", **kw)
    image = plain.dense_input(adj, x, None)
    assert image.shape[-1] == 12 and image[..., 10:].abs().sum() == 0  # zero padding at the end
    for mode in ("reflect", "circular", "replicate"):
        m = graph_vit(readout="edge", pad_mode=mode, centering=True, **kw)
        got = m.dense_input(adj, x, None)
        assert torch.equal(got, F.pad(image[..., :10, :10], (1, 1, 1, 1), mode=mode))
        assert m(adj, x).shape == (2, 10, 10, 2)
    with pytest.raises(ValueError, match="pad_mode"):
        graph_vit(readout="graph", pad_mode="mirror", **kw)


def test_patch_dropout_in_training_and_at_evaluation_only_when_asked():
    from symtrain.models.graph_vit import graph_vit

    torch.manual_seed(0)
    adj, x = torch.rand(2, 10, 10), torch.rand(2, 10, 3)
    kw = dict(max_nodes=10, vit="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, in_features=3,
              readout="graph")
    for options, at_eval in (({"patch_dropout": 0.5}, False), ({"max_patch_dropout": 0.5}, False),
                             ({"patch_dropout": 0.5, "patch_dropout_eval": True}, True)):
        m = graph_vit(**kw, **options)
        m.train()
        assert not torch.equal(m(adj, x), m(adj, x)) or "max_patch_dropout" in options
        m.eval()
        assert torch.equal(m(adj, x), m(adj, x)) != at_eval
    with pytest.raises(ValueError, match="graph readout"):
        graph_vit(**{**kw, "readout": "node"}, patch_dropout=0.5)


# --- early stopping -----------------------------------------------------------------------
def test_early_stopping_on_validation_loss(tmp_path):
    from symtrain.train import ConfigError, Trainer, load_recipe
    from symtrain.train.recipes import find_recipe

    overrides = ["train.progress=false", "optim.lr=1e-12", "optim.weight_decay=0", "train.eval_every=1",
                 "train.steps=10", "train.monitor=loss", "train.early_stop=2", "train.select=best_val"]
    recipe = load_recipe(find_recipe("nbody_plain"), overrides, "smoke")
    metrics = Trainer(recipe, tmp_path / "stop").fit()
    # the weights barely move: the validation loss stops improving within a few evaluations
    assert metrics["stopped_step"] == metrics["steps"] < 10
    assert "val/loss" in metrics and metrics["selected_step"] <= metrics["steps"] - 2
    assert (tmp_path / "stop" / "metrics.json").is_file()
    recipe = load_recipe(find_recipe("nbody_plain"), [*overrides, "train.early_stop=100"], "smoke")
    assert "stopped_step" not in Trainer(recipe, tmp_path / "full").fit()
    recipe = load_recipe(find_recipe("nbody_plain"), [*overrides[:-3], "train.monitor=los",
                                                      "train.select=best_val"], "smoke")
    with pytest.raises(ConfigError, match="train.monitor: .*'los'"):
        Trainer(recipe, tmp_path / "bad").fit()


def test_the_count_since_the_best_evaluation_is_checkpointed(tmp_path):
    from symtrain.train.selection import ModelSelection

    sel = ModelSelection("last", "loss", tmp_path / "best.safetensors", patience=2)
    for step, value in enumerate([1.0, 0.5, 0.6, 0.5]):
        sel.observe(value, step)
    assert sel.since_best == 2 and sel.should_stop and sel.best_step == 1  # a tie is no improvement
    again = ModelSelection("last", "loss", tmp_path / "best.safetensors", patience=2)
    again.load_state_dict(sel.state_dict())
    assert again.should_stop
    again.load_state_dict({"best_step": 1, "best_value": 0.5})  # a checkpoint from before early stopping
    assert again.since_best == 0 and not again.should_stop
    assert ModelSelection("best_val", "ap", tmp_path / "b", patience=None).observe(0.1, 1)


# --- PCQM-Contact's loss ------------------------------------------------------------------
def test_pcqm_contact_loss_is_over_contacts_and_sampled_negatives_of_their_rows():
    from symtrain.data.pcqm_contact import pair_bce

    y = torch.zeros(1, 5, 5)
    y[0, 0, 3] = 1                       # one contact in row 0
    y[0, 4, :] = -1
    y[0, :, 4] = -1                      # node 4 is padding
    pred = torch.randn(1, 5, 5, 1)
    seen = set()
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        loss = pair_bce(pred, y, negatives=2, generator=gen)
        # brute force: which two pairs of row 0 reproduce the value?
        logits = pred[0, :, :, 0]
        pos = torch.nn.functional.softplus(-logits[0, 3])
        matches = [(a, b) for a, b in itertools.combinations([0, 1, 2], 2)
                   if torch.isclose(loss, (pos + torch.nn.functional.softplus(logits[0, a])
                                           + torch.nn.functional.softplus(logits[0, b])) / 3)]
        assert len(matches) >= 1
        seen.update(matches)
    assert seen == {(0, 1), (0, 2), (1, 2)}  # every pair of candidates (the node itself included) drawn
    only = pair_bce(pred, y, negatives=0)
    assert torch.isclose(only, torch.nn.functional.softplus(-pred[0, 0, 3, 0]))
    assert pair_bce(pred, y, negatives=10).isfinite()  # fewer candidates than asked: all of them
    assert pair_bce(pred, torch.zeros(1, 5, 5)) == 0


def test_pcqm_contact_loss_on_the_fixture(tmp_path):
    from pyg_fixtures import write_lrgb

    from symtrain.data import create_dataset

    task = create_dataset("pcqm_contact", path=str(write_lrgb(tmp_path, "pcqm-contact")))
    (adj, x, mask), y = task.train.__getitems__(list(range(8)))
    contacts = int((y == 1).sum())
    assert contacts > 0
    pred = torch.zeros(*y.shape, 1)       # logit 0: every labelled pair costs log 2
    assert torch.isclose(task.loss(pred, y), torch.tensor(math.log(2)))
    pred = torch.where((y == 1)[..., None], 30.0, -30.0)  # right on every pair: ~0
    assert task.loss(pred, y) < 1e-10
    zero = create_dataset("pcqm_contact", path=str(tmp_path), negatives=0)
    pred = torch.where((y == 1)[..., None], 30.0, 5.0)  # contacts alone: negatives unseen
    assert zero.loss(pred, y) < 1e-10 < task.loss(pred, y)
