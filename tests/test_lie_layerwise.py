"""Layer-wise attribution sums to the end-to-end Lie derivative; exactly equivariant layers
get zero; timm ViT units; the report and the ``symtrain lie`` command."""

import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

from symtrain.cli import main
from symtrain.lie.layerwise import default_units, layerwise_lie
from symtrain.lie.report import WeightsUnavailableError, lie_report, load_timm_model


def sequential_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, padding_mode="circular"),  # equivariant to circular shifts
        nn.Tanh(),                                                # pointwise: aliasing, not exact
        nn.Conv2d(6, 6, 3, padding=1),                            # zero padding: not equivariant
        nn.Softplus(),
        nn.Conv2d(6, 4, 3, padding=1, padding_mode="circular"),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def test_contributions_add_up_and_equivariant_layers_get_zero():
    net = sequential_net().double()
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    res = layerwise_lie(net, x, "translation_x", probes=1000, padding="circular",
                        generator=torch.Generator().manual_seed(0), method="jvp")
    assert res.names == [str(i) for i in range(8)]
    total = res.end_to_end
    assert bool((total > 0).all())
    # exact split (one VJP with cotangent L f): sums to ‖L f‖², nothing left over
    torch.testing.assert_close(res.contribution.sum(1), total, rtol=1e-8, atol=0)
    assert res.residual.abs().max() < 1e-10 * total.max()
    # random-probe estimate: the same up to probe noise
    probe_sum = res.contribution_probe.sum(1).mean()
    assert abs(probe_sum - total.mean()) < 0.15 * total.mean()
    scale = res.norm_probe.max()
    for i in (0, 4, 5, 6, 7):  # circular convs, global pooling, flatten, linear: exactly equivariant
        assert res.norm_probe[:, i].max() < 1e-12 * scale
        assert res.contribution[:, i].abs().max() < 1e-10 * scale
    for i in (1, 2):  # tanh (aliasing of a pointwise nonlinearity), zero-padded conv
        assert res.norm_probe[:, i].mean() > 1e-2 * scale


def test_vit_units_and_residual():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                            depth=2, num_classes=5).eval()
    names = [n for n, _ in default_units(vit)]
    assert names[0] == "patch_embed" and "blocks.0.attn" in names and "blocks.1.mlp" in names
    x = torch.randn(2, 3, 32, 32)
    res = layerwise_lie(vit, x, "rotation", probes=5, output_fn=lambda y: y.softmax(-1))
    assert not res.skipped
    torch.testing.assert_close(res.contribution.sum(1) + res.residual, res.end_to_end)
    table = res.table()
    assert table[-1]["layer"] == "(residual)"
    patch = res.norm_probe[:, 0].mean()
    assert patch > 0 and patch == res.norm_probe.mean(0).max()  # the patch embedding dominates
    assert vit.blocks[0].attn.fused_attn


def test_report_files(tmp_path):
    net = sequential_net().eval()
    data = [(torch.randn(2, 3, 12, 12), torch.zeros(2)), (torch.randn(1, 3, 12, 12), torch.zeros(1))]
    rep = lie_report(net, data, ["translation_x", "rotation", "brightness"], layerwise=True,
                     layerwise_transforms=["rotation"], probes=4, out_dir=tmp_path)
    assert len(rep.per_example) == 3 * 3
    assert [r["generator"] for r in rep.summary] == ["translation_x", "rotation", "brightness"]
    for name in ("lie_per_example.csv", "lie_summary.csv", "lie_layerwise.csv", "lie_report.json",
                 "lie_summary.png", "lie_layerwise_rotation.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "lie_report.json").read_text())
    assert saved["summary"][1]["squared_mean"] == pytest.approx(rep.summary[1]["squared_mean"])


def test_cli_synthetic_resnet(tmp_path, capsys):
    code = main(["lie", "--model", "resnet10t", "--no-pretrained", "--synthetic", "2", "--image-size", "32",
                 "--transforms", "translation_x,rotation", "--layerwise", "--layerwise-transforms",
                 "rotation", "--probes", "3", "--model-arg", "num_classes=7", "--no-progress",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "rotation" in out and "layer-wise rotation" in out
    assert (tmp_path / "lie_layerwise_rotation.png").exists()
    assert json.loads((tmp_path / "lie_report.json").read_text())["meta"]["model"] == "resnet10t"


def test_checkpoint_goes_through_timm(tmp_path):
    kwargs = dict(img_size=32, patch_size=8, depth=1, num_classes=3)
    torch.manual_seed(1)
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs)
    path = tmp_path / "weights.pth"
    torch.save(src.state_dict(), path)
    model = load_timm_model("vit_tiny_patch16_224", checkpoint=path, **kwargs)
    torch.testing.assert_close(model.head.weight, src.head.weight)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_timm_model("vit_tiny_patch16_224", checkpoint=tmp_path / "missing.pth", **kwargs)


def test_missing_weights_offline_points_at_checkpoint(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "symtrain", "lie", "--model", "resnet10t", "--synthetic", "1",
                           "--image-size", "32", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "could not load pretrained weights" in proc.stderr and "--checkpoint" in proc.stderr
