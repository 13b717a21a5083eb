"""The demo (``symtrain demo``, ``make demo``), as rows for the command to print.

1. :func:`wrapper_table`: non-equivariant models (a CNN, point MLPs) wrapped with each
   symmetrizer, and the equivariance error of each before and after. Random data,
   seconds.
2. :func:`training_recipe` and :func:`train_case` for each of :data:`TRAINING_CASES`: a
   short n-body run comparing the plain transformer, the transformer trained with data
   augmentation, and the transformer made equivariant by learned probabilistic
   symmetrization (PS), at the same budget. The data (5-body Coulomb simulations) is
   generated locally and cached; the first run simulates it (about a minute), later runs
   reuse it. A finished run in the output folder is not trained again.

>>> table = wrapper_table(samples=2, cases=["CNN"])
>>> [row.name for row in table[0].rows]
['base model', 'GroupAveraging (exact, 8 elements)']
>>> table[0].rows[1].max < 1e-4 < table[0].rows[0].max
True
>>> rows = {row.name: row.max for row in wrapper_table(samples=2, cases=["MLP, SO(3)"])[0].rows}
>>> exact, independent = (rows[f"GroupAveraging (Monte-Carlo, 32), {k}"] for k in ("exact check", "independent draws"))
>>> exact < 1e-4 < independent
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .metrics import equivariance_error
from .symmetrize import Canonicalization, FrameAveraging, GroupAveraging
from .symmetry import Symmetry

#: ``(title, recipe name)`` of the training comparison, in the order they run.
TRAINING_CASES = (("plain transformer", "nbody_plain"), ("transformer + augmentation", "nbody_augment"),
                  ("transformer + PS (LPS)", "nbody_ps"))


@dataclass(frozen=True)
class ErrorRow:
    """The relative equivariance error of one model, mean and max over inputs and elements."""

    name: str
    mean: float
    max: float


@dataclass(frozen=True)
class WrapperCase:
    """One base model: its title, then the base model's row and one row per wrapper."""

    title: str
    rows: list[ErrorRow]


@dataclass(frozen=True)
class TrainingResult:
    """One trained model of the comparison: its test MSE and relative equivariance error
    over random rotations, translations and permutations of the test inputs."""

    title: str
    recipe: str
    test_mse: float
    equivariance_error: float


class _PointMLP(nn.Module):
    """``(B, N, d) -> (B, N, d)`` through a flattening MLP: no symmetry at all."""

    def __init__(self, n: int, d: int):
        super().__init__()
        self.n, self.d = n, d
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * d, 64), nn.Tanh(), nn.Linear(64, n * d))

    def forward(self, x):
        return self.net(x).reshape(-1, self.n, self.d)


Wrap = Callable[[nn.Module, Symmetry], nn.Module]


def _cases() -> Iterator[tuple[str, Symmetry, nn.Module, torch.Tensor, dict[str, Wrap]]]:
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    yield ("CNN, D4 on 16x16 images -> invariant logits",
           Symmetry("D4", "image", "trivial"), cnn, torch.randn(8, 3, 16, 16),
           {"GroupAveraging (exact, 8 elements)": lambda m, s: GroupAveraging(m, s)})
    mlp = _PointMLP(12, 3)
    yield ("MLP, SO(3) on 12-point clouds -> points",
           Symmetry("SO3", "points", "points"), mlp, torch.randn(8, 12, 3),
           {"GroupAveraging (Monte-Carlo, 32)": lambda m, s: GroupAveraging(m, s, samples=32),
            "GroupAveraging (Monte-Carlo, 512)": lambda m, s: GroupAveraging(m, s, samples=512),
            "FrameAveraging (minimal, 1 frame)": lambda m, s: FrameAveraging(m, s),
            "FrameAveraging (PCA, 4 frames)": lambda m, s: FrameAveraging(m, s, frames="pca"),
            "Canonicalization (minimal)": lambda m, s: Canonicalization(m, s)})
    mlp = _PointMLP(8, 3)
    yield ("MLP, S_n x E(3) on 8-point clouds -> points",
           Symmetry("S_n x E3", "points", "points"), mlp, torch.randn(8, 8, 3) + 2.0,
           {"GroupAveraging (Monte-Carlo, 64)": lambda m, s: GroupAveraging(m, s, samples=64),
            "FrameAveraging (sort x PCA)": lambda m, s: FrameAveraging(m, s),
            "Canonicalization": lambda m, s: Canonicalization(m, s)})


def wrapper_table(seed: int = 0, samples: int = 16, cases: Sequence[str] | None = None) -> list[WrapperCase]:
    """Part 1 of the demo: for each base model (a CNN under D4 on images, an MLP under
    SO(3) and one under S_n x E(3) on point clouds), the error of the model and of each
    wrapper (in eval mode), with ``samples`` group elements per input in the check. A
    stochastic wrapper (Monte-Carlo averaging) has two rows: the exact check (its random
    draw moved with the input) and the error with independent draws.
    ``cases`` keeps only the models whose title starts with one of its strings."""
    torch.manual_seed(seed)
    table = []
    for title, sym, model, x, wrappers in _cases():
        if cases is not None and not title.startswith(tuple(cases)):
            continue
        err = equivariance_error(model, sym, x, samples=samples)
        rows = [ErrorRow("base model", err.mean, err.max)]
        for name, make in wrappers.items():
            wrapped = make(model, sym).eval()
            err = equivariance_error(wrapped, sym, x, samples=samples)
            if err.estimate != "fixed draw":
                rows.append(ErrorRow(name, err.mean, err.max))
                continue
            # A stochastic wrapper: exact with its draw moved with the input; with
            # independent draws the error is Monte-Carlo noise, falling with its samples.
            rows.append(ErrorRow(f"{name}, exact check", err.mean, err.max))
            err = equivariance_error(wrapped, sym, x, samples=samples, exact=False)
            rows.append(ErrorRow(f"{name}, independent draws", err.mean, err.max))
        table.append(WrapperCase(title, rows))
    return table


def training_recipe(name: str, budget: str = "cpu") -> Any:
    """The recipe of one :data:`TRAINING_CASES` entry at a budget preset (a
    :class:`symtrain.train.config.Recipe`)."""
    from .train.config import load_recipe
    from .train.recipes import find_recipe

    return load_recipe(find_recipe(name), [], budget)


def train_case(title: str, name: str, recipe: Any, out: str | Path = "runs/demo") -> TrainingResult:
    """Part 2 of the demo, one model: train ``recipe`` (of :func:`training_recipe`) in
    ``out/<name>-<budget>`` (a finished run there is reused) and return its test MSE and
    equivariance error. Raises the trainer's errors (``ConfigError``, ``TrainingDiverged``)."""
    from .train.run_folder import holds_run
    from .train.trainer import Trainer

    folder = Path(out) / f"{name}-{recipe.train.budget}"
    metrics = Trainer(recipe, folder, resume=holds_run(folder)).fit()
    return TrainingResult(title, name, metrics["test/mse"], metrics["test/equivariance_error"])
