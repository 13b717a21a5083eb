"""timm ViTs on graphs: shapes, weights through timm's real loading path, clear errors,
and exact permutation equivariance once wrapped (and not before)."""

import huggingface_hub
import pytest
import timm
import torch

import symtrain as st
from symtrain.models.graph_vit import GraphViT, PretrainedWeightsUnavailable, create_graph_vit, graph_vit_symmetry
from symtrain.symmetrize import SortFrame

TINY = dict(img_size=32, patch_size=8, depth=2)  # 4×4 token grid, two blocks


def graph_batch(b=3, n=10, f=3, sizes=(10, 7, 9)):
    mask = torch.arange(n)[None] < torch.tensor(sizes[:b])[:, None]
    adj = (torch.rand(b, n, n) < 0.4).float()
    adj = ((adj + adj.transpose(1, 2)) > 0).float() * (mask[:, :, None] & mask[:, None, :])
    x = torch.randn(b, n, f) * mask[..., None]
    return adj, x, mask


@pytest.mark.parametrize("task,shape", [("graph", (3, 2)), ("node", (3, 10, 2)), ("edge", (3, 10, 10, 2))])
def test_readout_shapes(task, shape):
    model = create_graph_vit("vit_tiny_patch16_224", max_nodes=12, node_dim=3, out_dim=2, task=task, **TINY)
    assert model.patch == 3 and model.padded == 12
    assert model(*graph_batch()).shape == shape


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_patch16_224", "vit_small_patch16_224"])
def test_vit_families(name):
    model = create_graph_vit(name, max_nodes=10, node_dim=3, out_dim=2, task="node", img_size=32, patch_size=16,
                             depth=1)
    assert model(*graph_batch()).shape == (3, 10, 2)


@pytest.mark.parametrize("task", ["graph", "node"])
def test_permutation_symmetrized_adapter_is_exact_and_plain_is_not(task):
    torch.manual_seed(0)
    model = create_graph_vit("vit_tiny_patch16_224", max_nodes=10, node_dim=3, out_dim=2, task=task, **TINY).eval()
    sym = graph_vit_symmetry(task)
    inputs = graph_batch()
    assert st.equivariance_error(model, sym, inputs, samples=4).mean > 1e-2
    # Sorting nodes by their (distinct, random) features is an exact frame.
    wrapped = st.FrameAveraging(model, sym, frames=[SortFrame(key=lambda inp: inp[1])]).eval()
    assert st.equivariance_error(wrapped, sym, inputs, samples=4).max < 1e-5


def test_checkpoint_loads_through_timm_path(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224", **TINY)
    path = tmp_path / "vit_tiny_local.pth"
    torch.save(source.state_dict(), path)
    loaded = create_graph_vit("vit_tiny_patch16_224", checkpoint=path, max_nodes=10, node_dim=3, out_dim=2, **TINY)
    fresh = GraphViT(source, max_nodes=10, node_dim=3, out_dim=2)
    for name, p in source.state_dict().items():
        if not name.startswith(("patch_embed", "head")):
            torch.testing.assert_close(loaded.backbone.state_dict()[name], p, rtol=0, atol=0)
    fresh.load_state_dict(loaded.state_dict())
    inputs = graph_batch()
    torch.testing.assert_close(loaded.eval()(*inputs), fresh.eval()(*inputs), rtol=0, atol=0)
    random_init = create_graph_vit("vit_tiny_patch16_224", max_nodes=10, node_dim=3, out_dim=2, **TINY)
    assert not torch.allclose(random_init.backbone.blocks[0].attn.qkv.weight, loaded.backbone.blocks[0].attn.qkv.weight)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        create_graph_vit("vit_tiny_patch16_224", checkpoint=tmp_path / "nope.pth", max_nodes=10, **TINY)


def test_offline_hub_error_points_at_checkpoint(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsUnavailable, match="checkpoint=PATH"):
        create_graph_vit("vit_tiny_patch16_224", pretrained=True, max_nodes=10)


def test_bad_graph_inputs():
    model = create_graph_vit("vit_tiny_patch16_224", max_nodes=8, node_dim=3, **TINY)
    adj, x, mask = graph_batch()
    with pytest.raises(st.ShapeError, match="at most 8"):
        model(adj, x, mask)
    with pytest.raises(st.ShapeError, match="node features"):
        model(adj[:, :8, :8], None, mask[:, :8])
    with pytest.raises(st.ShapeError, match="edge_dim=1"):
        model(torch.zeros(3, 8, 8, 2), x[:, :8], mask[:, :8])
    with pytest.raises(ValueError, match="task"):
        create_graph_vit("vit_tiny_patch16_224", max_nodes=8, task="pixel", **TINY)


def test_parameter_groups_cover_the_model_once():
    model = create_graph_vit("vit_tiny_patch16_224", max_nodes=10, node_dim=3, task="node", **TINY)
    backbone = {id(p) for p in model.backbone_parameters()}
    new = {id(p) for p in model.new_parameters()}
    assert not backbone & new
    assert backbone | new == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("task", ["graph", "node"])
@pytest.mark.parametrize("k", [1, 3])
def test_graph_vit_with_ps_and_fixed_noise_is_exactly_equivariant(task, k):
    from test_probabilistic import fixed_noise_error

    from symtrain.symmetrize.interfaces import PermutationInterface

    torch.manual_seed(0)
    base = create_graph_vit("vit_tiny_patch16_224", max_nodes=10, node_dim=3, out_dim=2, task=task, **TINY)
    model = st.ProbabilisticSymmetrization(base, graph_vit_symmetry(task),
                                           PermutationInterface(in_features=3, hidden=16, max_nodes=10),
                                           samples=k, eval_samples=k).eval()
    inputs = graph_batch()
    assert fixed_noise_error(model, inputs) < 1e-5
    assert st.equivariance_error(base.eval(), graph_vit_symmetry(task), inputs, samples=4).mean > 1e-2
    with pytest.raises(st.ShapeError, match="has 12 nodes"):
        model(*graph_batch(n=12, sizes=(12, 7, 9)))


def test_graph_vit_ps_trains_on_padded_graphs():
    """One optimisation step from padded SBM-style graphs: finite loss and gradients in the
    backbone, the new layers and the interface (through the straight-through path)."""
    from symtrain.symmetrize.interfaces import PermutationInterface

    base = create_graph_vit("vit_tiny_patch16_224", max_nodes=10, node_dim=3, out_dim=2, task="node", **TINY)
    model = st.ProbabilisticSymmetrization(base, graph_vit_symmetry("node"),
                                           PermutationInterface(in_features=3, hidden=16), samples=2).train()
    adj, x, mask = graph_batch()
    out = model(adj, x, mask)
    labels = torch.randint(2, mask.shape)
    loss = torch.nn.functional.cross_entropy(out[mask], labels[mask]) + model.aux_loss()
    loss.backward()
    for part in (base.backbone_parameters(), base.new_parameters(), list(model.interface.parameters())):
        grads = [p.grad for p in part if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
