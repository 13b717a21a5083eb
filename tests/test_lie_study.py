"""symtrain lie-study: layer types, outputs (features, submodules, dict keys), resume, a
failing model, the CLI at smoke size."""

from __future__ import annotations

import csv
import json

import pytest
import timm
import torch
from torch import nn

from symtrain.cli import main
from symtrain.errors import SymmetryError
from symtrain.lie import lie_derivatives
from symtrain.scaling.lie_study import (
    OutputOf,
    StudySpec,
    layer_shares,
    layer_type,
    load_study,
    run_study,
    spearman,
    study_units,
)

TINY = dict(models=["test_resnet"], pretrained=False, images={"synthetic": 2, "size": 32},
            generators=["translation_x", "rotation"], layerwise=["translation_x"], probes=2, batch_size=2)


class Known(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.LazyLinear(5)

    def forward(self, x):
        return {"logits": self.fc(self.flat(self.pool(self.act(self.norm(self.conv(x)))))),
                "map": self.conv(x)}


def test_layer_types_of_known_layers():
    units = dict(study_units(Known()))
    assert {n: layer_type(m) for n, m in units.items()} == {
        "conv": "convolution", "norm": "normalisation", "act": "pointwise nonlinearity",
        "pool": "pooling/downsampling", "fc": "linear"}  # Flatten: no unit
    vit = timm.create_model("test_vit", pretrained=False)
    kinds = {layer_type(m) for _, m in study_units(vit)}
    assert {"patch embedding", "attention", "linear", "pointwise nonlinearity", "normalisation"} <= kinds
    names = [n for n, _ in study_units(vit)]
    assert "patch_embed" in names and not any(n.startswith("patch_embed.") for n in names)


def test_shares_sum_to_one_and_count_exact_zeros():
    rows = [{"layer": "a", "contribution": 3.0}, {"layer": "b", "contribution": -1.0},
            {"layer": "c", "contribution": 0.0}, {"layer": "(residual)", "contribution": 2.0}]
    shares, zero = layer_shares(rows, {"a": "convolution", "b": "normalisation", "c": "linear"})
    assert shares["convolution"] == 0.75 and shares["normalisation"] == -0.25
    assert shares["outside units (residual adds)"] == 0.5 and abs(sum(shares.values()) - 1) < 1e-12
    assert zero == 1


def test_outputs_dict_key_submodule_and_features():
    x = torch.randn(2, 3, 8, 8)
    known = Known()
    known(x)
    known.eval()
    logits = OutputOf(known, "key:logits")(x)
    assert logits.shape == (2, 5)
    fmap = OutputOf(known, "module:pool")(x)
    assert fmap.shape == (2, 4, 3, 3)
    d = lie_derivatives(OutputOf(known, "module:conv"), x, ["translation_x"])  # an image output: equivariance
    assert d["translation_x"].shape == (2, 4, 6, 6)
    with pytest.raises(SymmetryError, match="key 'nope' is not in the model's output"):
        OutputOf(known, "key:nope")(x)
    with pytest.raises(SymmetryError, match="no submodule 'nowhere'"):
        OutputOf(known, "module:nowhere")
    vit = timm.create_model("test_vit", pretrained=False, img_size=32)
    feats = OutputOf(vit, "features")(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, vit.num_features)


def test_a_study_resumes_and_a_failing_model_is_a_row(tmp_path):
    spec = StudySpec(**{**TINY, "models": ["test_resnet", "no_such_model_xyz"]})
    rows = run_study(spec, tmp_path)
    assert [(r["model"], r["status"]) for r in rows] == [("test_resnet", "ok"), ("no_such_model_xyz", "failed")]
    assert "Unknown model" in rows[1]["error"]
    assert rows[0]["lee_rotation"] > 0 and rows[0]["lee_rotation_ci95"] >= 0 and rows[0]["params"] > 0
    record = tmp_path / "models" / "test_resnet.json"
    stamp = record.stat().st_mtime_ns
    again = run_study(spec, tmp_path)  # finished and failed models are not measured again
    assert record.stat().st_mtime_ns == stamp and again == rows
    with (tmp_path / "results.csv").open() as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["test_resnet", "no_such_model_xyz"]
    detail = json.loads(record.read_text())
    assert detail["layerwise"] and set(detail["units"].values()) <= set(detail["shares"])
    assert (tmp_path / "layerwise" / "test_resnet.png").is_file() and (tmp_path / "lee_vs_params.png").is_file()


def test_the_command_at_smoke_size(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text("models: [test_vit]\npretrained: false\nimages: {dataset: digits, size: 32, limit: 4}\n"
                     "generators: [translation_x]\nlayerwise: []\nnum_classes: 10\nmodel_args: {img_size: 32}\n")
    assert main(["lie-study", str(study), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2:] == ["lie_study_models=1", "lie_study_failed=0"]
    with (tmp_path / "out" / "results.csv").open() as f:
        row = next(csv.DictReader(f))
    assert 0.0 <= float(row["accuracy"]) <= 1.0  # digits have labels


def test_the_command_on_ray_with_one_cpu(tmp_path, capsys, ray_one_cpu):
    """``--backend ray`` at the smallest size (one model, one CPU, 4 digits): the same row
    as the local backend's. Its speed is bench/sweep_ray.py's, not a test's."""
    study = tmp_path / "s.yaml"
    study.write_text("models: [test_vit]\npretrained: false\nimages: {dataset: digits, size: 32, limit: 4}\n"
                     "generators: [translation_x]\nlayerwise: []\nprobes: 1\nnum_classes: 10\n"
                     "model_args: {img_size: 32}\n")
    rows = {}
    for backend in ("ray", "local"):
        out = tmp_path / backend
        assert main(["lie-study", str(study), "--out", str(out), "--backend", backend]
                    + (["--num-cpus", "1"] if backend == "ray" else [])) == 0
        assert capsys.readouterr().out.strip().splitlines()[-2:] == ["lie_study_models=1", "lie_study_failed=0"]
        with (out / "results.csv").open() as f:
            rows[backend] = next(csv.DictReader(f))
    assert rows["ray"]["status"] == "ok" and float(rows["ray"]["lee_translation_x"]) > 0
    assert float(rows["ray"]["lee_translation_x"]) == pytest.approx(float(rows["local"]["lee_translation_x"]),
                                                                  rel=1e-3)  # float32, other threads


def test_study_files_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [resnet18]\nimages: {synthetic: 0}\n")
    with pytest.raises(SymmetryError, match=r"images.synthetic: Input should be greater than 0"):
        load_study(bad)
    bad.write_text("models: [resnet18]\nimages: {synthetic: 2, folder: x}\n")
    with pytest.raises(SymmetryError, match="exactly one of synthetic, folder, dataset"):
        load_study(bad)
    assert load_study(__import__("symtrain.scaling.lie_study", fromlist=["find_study"]).find_study(
        "lie_deriv_paper")).pretrained is True


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_a_builder_that_ignores_weights_files_is_named(tmp_path):
    """A timm model registered without timm's builder never reads a weights file: that is
    an error, not a model silently left at its random initialisation."""
    from timm.models import build_model_with_cfg, register_model
    from timm.models.mlp_mixer import MlpMixer

    from symtrain.models.timm_loader import WeightsMismatchError, load_timm_model

    def clean(kw):
        return {k: v for k, v in kw.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")}

    @register_model
    def mixer_ignores_weights_test(pretrained=False, **kw):
        return MlpMixer(img_size=16, patch_size=4, num_blocks=1, embed_dim=8, **clean(kw))

    @register_model
    def mixer_loads_weights_test(pretrained=False, **kw):
        return build_model_with_cfg(MlpMixer, "mixer_loads_weights_test", pretrained, img_size=16, patch_size=4,
                                    num_blocks=1, embed_dim=8, **kw)

    trained = timm.create_model("mixer_loads_weights_test", num_classes=3)
    with torch.no_grad():
        trained.head.weight.fill_(0.5)
    path = tmp_path / "w.pth"
    torch.save(trained.state_dict(), path)
    loaded = load_timm_model("mixer_loads_weights_test", checkpoint=path, num_classes=3)
    assert torch.equal(loaded.head.weight, trained.head.weight)  # a default pretrained config is fine
    with pytest.raises(WeightsMismatchError, match="was not loaded: the timm builder of 'mixer_ignores_weights_test'"):
        load_timm_model("mixer_ignores_weights_test", checkpoint=path, num_classes=3)
