import torch

from symtrain.data.images import SHAPE_CLASSES, shapes_dataset


def test_shapes_are_seeded_balanced_and_learnable_signal():
    x1, y1 = shapes_dataset(600, size=32, generator=torch.Generator().manual_seed(0))
    x2, y2 = shapes_dataset(600, size=32, generator=torch.Generator().manual_seed(0))
    assert x1.shape == (600, 3, 32, 32) and torch.equal(x1, x2) and torch.equal(y1, y2)
    counts = torch.bincount(y1, minlength=len(SHAPE_CLASSES))
    assert counts.min() > 60
    # Classes differ in how much of the image the shape covers (rings and crosses less than
    # disks): a label-dependent statistic, so the task carries signal.
    contrast = (x1 - x1.mean((2, 3), keepdim=True)).abs().mean((1, 2, 3))
    means = torch.stack([contrast[y1 == c].mean() for c in range(len(SHAPE_CLASSES))])
    assert means.max() - means.min() > 0.05
