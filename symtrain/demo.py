"""``symtrain demo``: take non-equivariant models, wrap them with each symmetrizer, and
print the equivariance error before and after. Built-in random data, no downloads."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from .metrics import equivariance_error
from .symmetrize import Canonicalization, FrameAveraging, GroupAveraging
from .symmetry import Symmetry


class _PointMLP(nn.Module):
    def __init__(self, n: int, d: int):
        super().__init__()
        self.n, self.d = n, d
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * d, 64), nn.Tanh(), nn.Linear(64, n * d))

    def forward(self, x):
        return self.net(x).reshape(-1, self.n, self.d)


def _cases():
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    yield ("CNN, D4 on 16x16 images -> invariant logits",
           Symmetry("D4", "image", "trivial"), cnn, torch.randn(8, 3, 16, 16),
           {"GroupAveraging (exact, 8 elements)": lambda m, s: GroupAveraging(m, s)})
    mlp = _PointMLP(12, 3)
    yield ("MLP, SO(3) on 12-point clouds -> points",
           Symmetry("SO3", "points", "points"), mlp, torch.randn(8, 12, 3),
           {"GroupAveraging (Monte-Carlo, 32)": lambda m, s: GroupAveraging(m, s, samples=32),
            "GroupAveraging (Monte-Carlo, 512)": lambda m, s: GroupAveraging(m, s, samples=512),
            "FrameAveraging (PCA, 4 frames)": lambda m, s: FrameAveraging(m, s),
            "Canonicalization (PCA + skew)": lambda m, s: Canonicalization(m, s)})
    mlp = _PointMLP(8, 3)
    yield ("MLP, S_n x E(3) on 8-point clouds -> points",
           Symmetry("S_n x E3", "points", "points"), mlp, torch.randn(8, 8, 3) + 2.0,
           {"GroupAveraging (Monte-Carlo, 64)": lambda m, s: GroupAveraging(m, s, samples=64),
            "FrameAveraging (sort x PCA)": lambda m, s: FrameAveraging(m, s),
            "Canonicalization": lambda m, s: Canonicalization(m, s)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=16, help="group elements per input in the check")


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    print("Relative equivariance error ||f(g.x) - g.f(x)|| / ||g.f(x)||, mean and max over inputs "
          "and group elements\n")
    for title, sym, model, x, wrappers in _cases():
        print(title)
        err = equivariance_error(model, sym, x, samples=args.samples)
        print(f"  {'base model':<36} mean {err.mean:9.2e}   max {err.max:9.2e}")
        for name, make in wrappers.items():
            wrapped = make(model, sym).eval()
            err = equivariance_error(wrapped, sym, x, samples=args.samples)
            print(f"  {name:<36} mean {err.mean:9.2e}   max {err.max:9.2e}")
        print()
    return 0
