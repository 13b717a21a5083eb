"""Grid diagnostics: per-layer verdicts for rot90/flip and shifts, and the p4 input-size
rule (exact at n ≡ 1 mod 2^L, not at even sizes) on an escnn p4 ResNet."""

import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.errors import SymmetryError
from symtrain.metrics.grid import Shift, fourier_shift, input_size_check, layer_equivariance, sampling_offsets
from symtrain.models.p4_resnet import p4_resnet


@pytest.fixture(scope="module")
def p4net():
    torch.manual_seed(0)
    return p4_resnet(channels=2, downsamplings=2)


def test_p4_resnet_exact_only_at_sizes_1_mod_4(p4net):
    scan = input_size_check(p4net, range(29, 34), "C4", generator=torch.Generator().manual_seed(0))
    assert scan.exact_sizes == [29, 33]
    assert scan.downsamplings == 2
    for row in scan.rows:
        assert row["predicted_exact"] == row["exact"]
    errors = {r["size"]: r["error"] for r in scan.rows}
    assert errors[33] < 1e-5 and errors[32] > 1e-2
    assert "1 (mod 4)" in scan.explanation


def test_p4_layer_verdicts(p4net):
    x = torch.randn(2, 3, 33, 33)
    rows = layer_equivariance(p4net, x, "C4")
    assert rows[-1].layer == "(output)" and all(r.equivariant for r in rows)
    rows = {r.layer: r for r in layer_equivariance(p4net, torch.randn(2, 3, 32, 32), "C4")}
    assert rows["0"].equivariant and rows["1"].equivariant  # lifting conv and ReLU: stride 1
    assert not rows["2.conv1"].equivariant and not rows["(output)"].equivariant  # first stride-2
    assert [o for _, _, o in sampling_offsets(p4net, x)] == [0.0] * 4


def test_rot90_and_flips_per_layer_on_plain_cnn():
    torch.manual_seed(0)
    sym = st.Symmetry("D4", input=st.actions.Image(), output=st.actions.Image())
    pointwise = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(2, 3, 8, 8)
    assert all(r.equivariant for r in layer_equivariance(pointwise, x, sym))
    spatial = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    rows = layer_equivariance(spatial, x, sym)
    assert not rows[0].equivariant and rows[0].max > 1e-2 and not rows[-1].equivariant


def test_integer_fractional_and_strided_shifts():
    torch.manual_seed(0)
    circ = dict(padding=1, padding_mode="circular")
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3, **circ), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, **circ),
                        nn.ReLU(), nn.Conv2d(4, 4, 3, **circ))
    x = torch.randn(2, 3, 16, 16)
    one = {r.layer: r for r in layer_equivariance(cnn, x, [Shift(1, 0), Shift(0, 1)])}
    assert one["0"].equivariant and one["1"].equivariant
    assert not one["2"].equivariant  # stride 2: a 1-pixel shift is half a pixel there
    assert all(r.equivariant for r in layer_equivariance(cnn, x, [Shift(2, 0), Shift(-2, 4)]))
    half = {r.layer: r for r in layer_equivariance(cnn, x, [Shift(0.5, 0)])}
    assert half["0"].equivariant and not half["1"].equivariant  # ReLU aliases fractional shifts
    zero_pad = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    assert not layer_equivariance(zero_pad, x, [Shift(1, 0)])[0].equivariant


def test_fourier_shift_is_a_shift():
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    torch.testing.assert_close(fourier_shift(x, 2.0, -3.0), torch.roll(x, (2, -3), (-2, -1)))
    odd = torch.randn(2, 3, 11, 13, dtype=torch.float64)  # no Nyquist term: shifts compose
    twice = fourier_shift(fourier_shift(odd, 0.5, 0.25), 0.5, 0.25)
    torch.testing.assert_close(twice, fourier_shift(odd, 1.0, 0.5))


def test_bad_transforms():
    with pytest.raises(SymmetryError, match="list of Shift"):
        layer_equivariance(nn.Conv2d(3, 3, 1), torch.randn(1, 3, 4, 4), [(1, 0)])
    with pytest.raises(SymmetryError, match="shift mode"):
        Shift(1, 0, mode="reflect")


def test_permutation_verdicts_with_layer_actions():
    torch.manual_seed(0)
    sym = st.Symmetry("S5", input=st.actions.Nodes(), output=st.actions.Trivial())
    nodes = {"0": st.actions.Nodes(), "1": st.actions.Nodes()}

    class SumPool(nn.Module):
        def forward(self, h):
            return h.sum(1)

    x = torch.randn(2, 5, 3)
    good = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), SumPool())
    rows = layer_equivariance(good, x, sym, layer_actions=nodes, samples=6)
    assert [r.layer for r in rows] == ["0", "1", "2", "(output)"] and all(r.equivariant for r in rows)
    bad = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Flatten(), nn.Linear(20, 2))  # mixes node order
    rows = {r.layer: r for r in layer_equivariance(bad, x, sym, layer_actions=nodes, samples=6)}
    assert rows["0"].equivariant and rows["1"].equivariant
    assert rows["2"].equivariant is False and not rows["(output)"].equivariant
