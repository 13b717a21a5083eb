"""The real graph benchmarks (LRGB Peptides-func/-struct, PCQM-Contact; PATTERN, CLUSTER)
on tiny fixtures written in each release's raw on-disk format and processed by PyG's own
``process()``: loading, splits, missing files, the declared symmetry, the metrics on
hand-made cases, the GINE baseline's equivariance and model selection on a split metric."""

import json
import math
from pathlib import Path

import pytest
import torch
from pyg_fixtures import WRITERS, write_gnn_benchmark, write_lrgb

from symtrain.data import create_dataset
from symtrain.data.benchmark_graphs import one_hot_columns, weighted_node_cross_entropy
from symtrain.data.benchmark_metrics import (
    AveragePrecision,
    contact_ranking_metrics,
    mae_metrics,
    multilabel_average_precision,
    weighted_accuracy_metrics,
)
from symtrain.data.pyg import DenseGraphData
from symtrain.overrides import ConfigError

torch.set_num_threads(1)
BENCHMARKS = ["peptides_func", "peptides_struct", "pcqm_contact", "pattern", "cluster"]
FOLDER = {"peptides_func": "peptides-func", "peptides_struct": "peptides-struct", "pcqm_contact": "pcqm-contact",
          "pattern": "PATTERN", "cluster": "CLUSTER"}
LEVEL = {"peptides_func": "graph", "peptides_struct": "graph", "pcqm_contact": "edge", "pattern": "node",
         "cluster": "node"}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Each benchmark's raw-only root, written once (the tests that process it copy it)."""
    base = tmp_path_factory.mktemp("raw")
    return {name: WRITERS[name](base / name) for name in BENCHMARKS}


def _copy(root: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(root, tmp_path / root.name))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_raw_only_root_is_processed_by_pyg_then_read_as_processed(name, roots, tmp_path):
    root = _copy(roots[name], tmp_path)
    task = create_dataset(name, path=str(root), max_nodes=None)
    assert [len(task.train), len(task.val), len(task.test)] == [48, 16, 16]
    processed = sorted(p.name for p in (root / FOLDER[name] / "processed").glob("*.pt"))
    assert {"train.pt", "val.pt", "test.pt"} <= set(processed) or \
        {"train_data.pt", "val_data.pt", "test_data.pt"} <= set(processed)
    (adj, x, mask), y = task.train.__getitems__([0, 1, 2])
    n = task.info["max_nodes"]
    assert adj.shape[:3] == (3, n, n) and x.shape[:2] == (3, n) and mask.shape == (3, n)
    assert int(mask.sum(1).max()) == n or name in ("pattern", "cluster")
    # the raw files gone, the processed ones are read as they are, with the same graphs
    import shutil

    shutil.rmtree(root / FOLDER[name] / "raw")
    again = create_dataset(name, path=str(root), max_nodes=None, train=5)
    assert len(again.train) == 5
    (adj2, x2, mask2), y2 = again.train.__getitems__([0, 1, 2])
    assert torch.equal(adj, adj2) and torch.equal(x, x2) and torch.equal(mask, mask2)
    assert torch.equal(y.nan_to_num(), y2.nan_to_num())


@pytest.mark.parametrize("name", BENCHMARKS)
def test_missing_or_incomplete_files_give_one_line_and_touch_nothing(name, roots, tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(ConfigError) as info:
        create_dataset(name, path=str(empty))
    message = str(info.value)
    assert "\n" not in message and message.startswith("data.path: ")
    assert FOLDER[name] in message and "raw" in message and "processed" in message
    assert "network access" in message and "data.download=true" in message
    assert not empty.exists()
    if name in ("pattern", "cluster"):
        return
    partial = _copy(roots[name], tmp_path)
    (partial / FOLDER[name] / "raw" / "val.pt").unlink()
    with pytest.raises(ConfigError, match=r"val\.pt"):
        create_dataset(name, path=str(partial))
    with pytest.raises(ConfigError, match="data.path: .* local torch_geometric root"):
        create_dataset(name)


def test_max_nodes_and_limits_are_checked(roots, tmp_path):
    with pytest.raises(ConfigError, match="data.max_nodes: Peptides-func has graphs of"):
        create_dataset("peptides_func", path=str(_copy(roots["peptides_func"], tmp_path)), max_nodes=3)
    with pytest.raises(ConfigError, match="data.train: a positive number of graphs"):
        create_dataset("peptides_struct", path=str(_copy(roots["peptides_struct"], tmp_path)), train=0)


def _permuted(graph, p: torch.Tensor):
    """``graph`` with node ``j`` renamed ``p[j]`` (the S_n element convention)."""
    inv = torch.argsort(p)
    out = graph.clone()
    out.x = graph.x[inv]
    out.edge_index = p[graph.edge_index]
    if getattr(graph, "edge_label_index", None) is not None:
        out.edge_label_index = p[graph.edge_label_index]
    if graph.y is not None and graph.y.dim() == 1 and graph.y.shape[0] == graph.num_nodes:
        out.y = graph.y[inv]
    return out


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_node_permutation_moves_inputs_and_targets_as_the_task_declares(name, roots, tmp_path):
    task = create_dataset(name, path=str(_copy(roots[name], tmp_path)), max_nodes=None)
    data = task.train
    n, count = data.max_nodes, 6
    graphs = [data.graphs[i] for i in range(count)]
    gen = torch.Generator().manual_seed(1)
    p = torch.arange(n).repeat(count, 1)
    for b, g in enumerate(graphs):
        p[b, :g.num_nodes] = torch.randperm(g.num_nodes, generator=gen)
    assert not torch.equal(p, torch.arange(n).repeat(count, 1))
    moved = DenseGraphData([_permuted(g, p[b, :g.num_nodes]) for b, g in enumerate(graphs)], n, data.level,
                           data.node_encode, data.edge_encode)
    x, y = data.__getitems__(list(range(count)))
    gx, gy = moved.__getitems__(list(range(count)))
    sym = task.symmetry
    assert sym.group.permutes_nodes
    for have, want in zip(sym.act_input(p, x), gx, strict=False):
        assert torch.equal(have, want)
    assert torch.equal(sym.act_output(p, y).nan_to_num(), gy.nan_to_num())
    if LEVEL[name] == "graph":
        assert torch.equal(gy, y)                      # invariant targets
    else:
        assert not torch.equal(gy, y)                  # the targets moved with the nodes


def test_one_hot_columns_are_the_ogb_encoders():
    codes = torch.tensor([[0, 2], [1, 0]])
    assert torch.equal(one_hot_columns(codes, (2, 3)), torch.tensor([[1., 0, 0, 0, 1], [0, 1, 1, 0, 0]]))
    # a bias-free linear map of the one-hots is the sum of per-column embeddings
    tables = [torch.randn(2, 4), torch.randn(3, 4)]
    linear = torch.cat(tables)
    assert torch.allclose(one_hot_columns(codes, (2, 3)) @ linear, tables[0][codes[:, 0]] + tables[1][codes[:, 1]])
    with pytest.raises(ConfigError, match="column 1 has a value outside"):
        one_hot_columns(torch.tensor([[0, 3]]), (2, 3))


# --- metrics on hand-made cases -----------------------------------------------------------


def test_average_precision_over_tasks_by_hand_and_against_torchmetrics():
    from torchmetrics.classification import MultilabelAveragePrecision

    # task 0: labels 1,0,1,0 at scores .9,.8,.7,.1 -> precision at the positives 1/1, 2/3 -> AP 5/6
    # task 1: labels 0,1,0,NaN at .2,.6,.4,.9 -> the NaN row left out; positive ranked first -> AP 1
    # task 2: no positive label -> left out of the mean (OGB/LRGB eval_ap)
    pred = torch.tensor([[.9, .2, .3], [.8, .6, .1], [.7, .4, .5], [.1, .9, .2]])
    y = torch.tensor([[1., 0, 0], [0, 1, 0], [1, 0, 0], [0, float("nan"), 0]])
    expected = (5 / 6 + 1) / 2
    assert multilabel_average_precision(pred, y).item() == pytest.approx(expected)
    ap = AveragePrecision()
    ap.update(pred[:2], y[:2])
    ap.update(pred[2:], y[2:])
    assert ap.compute().item() == pytest.approx(expected)
    # torchmetrics' macro average keeps the task without positives (AP 0): the benchmark's differs
    known = y.nan_to_num(-1).long()
    macro = MultilabelAveragePrecision(num_labels=3, average="macro", ignore_index=-1)
    with pytest.warns(UserWarning):
        value = macro(pred, known).item()
    assert value == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert value != pytest.approx(expected)


def test_mae_matches_torchmetrics():
    from torchmetrics.regression import MeanAbsoluteError

    pred, y = torch.randn(5, 11), torch.randn(5, 11)
    num, den = mae_metrics(pred, y)["mae"]
    assert (num.sum() / den.sum()).item() == pytest.approx(MeanAbsoluteError()(pred, y).item(), rel=1e-6)


def test_contact_ranking_by_hand_raw_filtered_no_self():
    # one graph of 4 nodes; contacts (0, 2) and (0, 3); row 0 scores: self 5, 1: 4, 2: 3, 3: 2
    scores = torch.zeros(1, 4, 4)
    scores[0, 0] = torch.tensor([5., 4, 3, 2])
    y = torch.zeros(1, 4, 4)
    y[0, 0, 2] = y[0, 0, 3] = 1
    m = {k: (num / den).item() for k, (num, den) in contact_ranking_metrics(scores, y).items()}
    # raw: (0,2) beaten by self and 1 -> rank 3; (0,3) by self, 1, 2 -> rank 4
    assert m["mrr"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert m["hits@3"] == pytest.approx(0.5) and m["hits@1"] == 0 and m["hits@10"] == 1
    # filtered: the other contact leaves the row -> ranks 3 and 3
    assert m["mrr_filtered"] == pytest.approx(1 / 3) and m["hits@3_filtered"] == 1
    # filtered, no self: ranks 2 and 2
    assert m["mrr_filtered_noself"] == pytest.approx(1 / 2)
    assert m["hits@1_filtered_noself"] == 0 and m["hits@3_filtered_noself"] == 1
    # per graph, then over graphs: a second graph (padded, 2 nodes, its contact first) counts once
    second = torch.full((1, 4, 4), -1.0)
    second[0, :2, :2] = 0
    second[0, 0, 1] = 1
    s2 = torch.zeros(1, 4, 4)
    s2[0, 0, 1] = 9.0
    both = contact_ranking_metrics(torch.cat([scores, s2]), torch.cat([y, second]))
    num, den = both["mrr_filtered"]
    assert den.tolist() == [1, 1] and (num.sum() / den.sum()).item() == pytest.approx((1 / 3 + 1) / 2)
    # a graph without contacts: 0 of 1 in the raw average, left out of the filtered ones (LPS code)
    none = torch.zeros(1, 4, 4)
    three = contact_ranking_metrics(torch.cat([scores, s2, none]), torch.cat([y, second, none]))
    raw, filtered = three["mrr"], three["mrr_filtered"]
    assert raw[1].tolist() == [1, 1, 1] and raw[0][2] == 0 and filtered[1].tolist() == [1, 1, 0]
    # ties count half: all scores equal, filtered, no self -> the contact shares rank with node 1
    flat = contact_ranking_metrics(torch.zeros(1, 4, 4), y)
    key = "mrr_filtered_noself"
    assert (flat[key][0] / flat[key][1]).item() == pytest.approx(1 / 1.5)


def test_weighted_accuracy_is_per_batch_then_over_batches():
    # batch 1: class 0 has 3 nodes (2 right), class 1 one node (right) -> 100 * (2/3 + 1) / 2
    # batch 2: class 0 one node (wrong), class 1 one node (right) -> 100 * (0 + 1) / 2
    def logits(guess):
        return torch.nn.functional.one_hot(torch.tensor(guess), 2).float()

    b1 = (logits([[0, 0, 1, 1]]), torch.tensor([[0, 0, 0, 1]]))
    b2 = (logits([[1, 1, 0, 0], [0, 0, 0, 0]]), torch.tensor([[0, 1, -1, -1], [-1, -1, -1, -1]]))
    parts = [weighted_accuracy_metrics(*b)["weighted_accuracy"] for b in (b1, b2)]
    num = sum(p[0].sum() for p in parts)
    den = sum(p[1].sum() for p in parts)
    per_batch = (100 * (2 / 3 + 1) / 2 + 100 * (0 + 1) / 2) / 2
    assert (num / den).item() == pytest.approx(per_batch)
    # the recall over the whole split (class 0: 2 of 4, class 1: 2 of 2) is another number
    assert per_batch != pytest.approx(100 * (2 / 4 + 2 / 2) / 2)
    # the loss weights a class by the share of the others: (V - n_c) / V
    pred = torch.randn(1, 4, 2)
    loss = weighted_node_cross_entropy(pred, b1[1])
    weight = torch.tensor([1 / 4, 3 / 4])
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(pred[0], b1[1][0], weight=weight).item())


# --- the GINE baseline is equivariant, the plain ViT is not ----------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("readout", ["graph", "node", "edge"])
def test_gine_is_permutation_equivariant_and_the_plain_graph_vit_is_not(dtype, readout):
    from symtrain.data.benchmark_graphs import graph_symmetry
    from symtrain.models import create_model

    torch.manual_seed(0)
    b, n, e, f = 3, 7, 4, 5
    upper = (torch.rand(b, n, n) < 0.4).to(dtype).triu(1)
    adj = (upper + upper.transpose(1, 2))[..., None] * torch.rand(b, n, n, e, dtype=dtype)
    adj = (adj + adj.transpose(1, 2)) / 2
    x = torch.randn(b, n, f, dtype=dtype)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, 5:] = False
    adj = adj * (mask[:, :, None] & mask[:, None, :])[..., None]
    x = x * mask[..., None]
    sym = graph_symmetry(readout)
    g = sym.sample(sym.context((adj, x, mask)), generator=torch.Generator().manual_seed(3))
    gine = create_model("gine", num_classes=2, in_features=f, edge_dim=e, readout=readout, hidden=16,
                        layers=2).to(dtype).eval()
    vit = create_model("graph_vit", max_nodes=n, num_classes=2, in_features=f, edge_dim=e, readout=readout,
                       img_size=32, patch_size=8, depth=1).to(dtype).eval()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for model, equivariant in ((gine, True), (vit, False)):
        with torch.no_grad():
            moved = model(*sym.act_input(g, (adj, x, mask)))
            expected = sym.act_output(g, model(adj, x, mask))
        err = (moved - expected).abs().max().item()
        assert (err < tol) == equivariant, (type(model).__name__, readout, err)


def test_best_val_selects_on_average_precision(roots, tmp_path):
    from symtrain.train import Trainer, load_recipe
    from symtrain.train.recipes import find_recipe

    root = _copy(roots["peptides_func"], tmp_path)
    recipe = load_recipe(find_recipe("peptides_func_gine"), ["train.progress=false", f"data.path={root}",
                                                             "train.select=best_val", "train.eval_every=4"],
                         "smoke")
    metrics = Trainer(recipe, tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    import csv

    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        evals = [(int(r["step"]), float(r["val/ap"])) for r in csv.DictReader(f) if r.get("val/ap")]
    best = max(evals, key=lambda s: (s[1], -s[0]))
    assert saved["selected_val"] == pytest.approx(best[1]) and saved["selected_step"] == best[0]
    assert math.isfinite(metrics["test/ap"]) and 0 <= metrics["test/ap"] <= 1


def test_gnn_benchmark_fixture_has_the_release_layout(tmp_path):
    root = write_gnn_benchmark(tmp_path, "CLUSTER", sizes={"train": 2, "val": 1, "test": 1})
    splits = torch.load(root / "CLUSTER" / "raw" / "CLUSTER_v2.pt", weights_only=True)
    assert [len(s) for s in splits] == [2, 1, 1]
    assert set(splits[0][0]) == {"x", "edge_index", "edge_attr", "y"} and splits[0][0]["x"].shape[1] == 7
    root = write_lrgb(tmp_path, "pcqm-contact", sizes={"train": 2})
    graph = torch.load(root / "pcqm-contact" / "raw" / "train.pt", weights_only=True)[0]
    assert len(graph) == 5 and graph[0].shape[1] == 9 and graph[1].shape[1] == 3 and torch.all(graph[4] == 1)


@pytest.mark.parametrize("name", ["peptides_func", "cluster"])
def test_a_download_only_when_asked_that_fails_or_stalls_is_an_error_and_leaves_nothing(name, tmp_path,
                                                                                      monkeypatch):
    import socket
    import time

    from torch_geometric.datasets import GNNBenchmarkDataset, LRGBDataset

    silent = socket.socket()                        # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/data.zip"
    if name == "cluster":
        monkeypatch.setitem(GNNBenchmarkDataset.urls, "CLUSTER", url)
    else:
        monkeypatch.setitem(LRGBDataset.urls, "peptides-func", url)
    (tmp_path / "kept.txt").write_text("x")
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match="Downloading them failed"):
            create_dataset(name, path=str(tmp_path), download=True, timeout=1)
    finally:
        silent.close()
    assert time.perf_counter() - start < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_the_benchmark_runs_a_recipe_on_data_it_writes_in_the_raw_format(tmp_path, capsys, monkeypatch):
    import importlib.util

    monkeypatch.delenv("SYMTRAIN_LRGB_ROOT", raising=False)
    path = Path(__file__).resolve().parents[1] / "bench" / "lrgb.py"
    spec = importlib.util.spec_from_file_location("bench_lrgb", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "SIZES", {"train": 24, "val": 8, "test": 8})
    assert bench.main(["--steps", "2", "--recipes", "pattern_gine", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "lrgb_rows=1"
    row = lines[-2].split()
    assert row[:2] == ["pattern_gine", "weighted_accuracy"] and 0 <= float(row[2]) <= 100
    assert (tmp_path / "out" / "data" / "PATTERN" / "processed").is_dir()
    assert not (tmp_path / "out" / "data" / "CLUSTER").exists()
    with pytest.raises(SystemExit):
        bench.main(["--out", str(tmp_path / "out")])       # never written over
