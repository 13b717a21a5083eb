"""scikit-learn's real handwritten digits, upsampled for ViTs: shapes, a disjoint
deterministic split, standardisation, and a signal a linear model can read."""

import pytest
import torch

from symtrain.data.digits import NUM_DIGITS, digits_dataset


def test_shapes_split_and_standardisation():
    splits = digits_dataset(16, val_fraction=0.1, test_fraction=0.2, seed=0)
    sizes = {k: len(v[1]) for k, v in splits.items()}
    assert sizes == {"train": NUM_DIGITS - 180 - 359, "val": 180, "test": 359}
    for x, y in splits.values():
        assert x.shape == (len(y), 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
        assert torch.equal(x[:, 0], x[:, 2])  # gray repeated
        assert set(y.unique().tolist()) == set(range(10))
    x_train = splits["train"][0]
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-3


def test_split_is_disjoint_and_deterministic():
    """Same seed: the same tensors; another seed: another split. Images are identified by
    their pixels (the 8×8 originals), so disjointness is checked on content."""
    a, b, c = (digits_dataset(8, seed=s, channels=1) for s in (0, 0, 1))
    for k in a:
        assert torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1])
    assert not torch.equal(a["test"][1], c["test"][1])
    keys = {k: {tuple(img.flatten().tolist()) for img in v[0]} for k, v in a.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"]


def test_upsampling_keeps_the_digit():
    """Bilinear upsampling then average pooling back to 8×8 is close to the original."""
    small = digits_dataset(8, seed=0, channels=1)["test"][0]
    big = digits_dataset(32, seed=0, channels=1)["test"][0]
    pooled = torch.nn.functional.avg_pool2d(big, 4)
    # Both are standardised with their own statistics: compare correlations.
    corr = torch.corrcoef(torch.stack([small.flatten(), pooled.flatten()]))[0, 1]
    assert corr > 0.95


def test_linear_readout_separates_classes():
    """Nearest class mean on the training split reaches > 0.85 held out: the split and the
    labels line up (a shuffled-label bug would give ~0.1)."""
    splits = digits_dataset(8, seed=0, channels=1)
    x, y = splits["train"][0].flatten(1), splits["train"][1]
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    xt, yt = splits["test"][0].flatten(1), splits["test"][1]
    pred = torch.cdist(xt, means).argmin(1)
    assert (pred == yt).float().mean() > 0.85


def test_bad_arguments():
    with pytest.raises(ValueError, match="sum below 1"):
        digits_dataset(8, val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="positive"):
        digits_dataset(0)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install symtrain\[digits\]"):
        digits_dataset(8)
