"""A new model in one file, trained from a recipe of your own with ``symtrain train``.

``particle_deepsets``: a DeepSets model over the particles of an n-body system. Each
particle's ``(x_i, v_i, q_i)`` is embedded, the embeddings are mean-pooled, and the pooled
vector is fed back to every particle, which predicts its displacement. It is
permutation-equivariant by construction but sees raw coordinates, so it is not
E(3)-equivariant; the recipe below makes it so with Monte-Carlo group averaging.

Registering the class is all it takes: its constructor's keyword arguments are what a
recipe's ``model`` section may set (``space_dim`` and ``charge_dim`` are filled in from
the dataset when the recipe leaves them out).

    python examples/new_model.py          # writes the recipe below and trains it (smoke)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from symtrain.models import register_model

RECIPE = """\
description: n-body, DeepSets + Monte-Carlo group averaging over S_n x E(3) (example)
data: {name: nbody, batch_size: 16, eval_batch_size: 32, train: 64, val: 32, test: 32}
model: {name: particle_deepsets, hidden: 32, layers: 2}
symmetrization: {method: group_averaging, samples: 2, eval_samples: 2, test_samples: 4, equivariance_samples: 2}
optim: {lr: 3.0e-3}
train: {steps: 10, log_every: 5, eval_every: 5, checkpoint_every: 5, threads: 1}
"""


@register_model("particle_deepsets")
class ParticleDeepSets(nn.Module):
    """``forward(pos (B, n, d), vel (B, n, d), charge (B, n, c)) -> (B, n, d)``: positions
    ``pos + Δ`` with ``Δ`` from a DeepSets network.

    Args:
        hidden: width; layers: depth of the per-particle MLPs (each ≥ 1);
        space_dim: ``d``; charge_dim: ``c``.
    """

    def __init__(self, hidden: int = 64, layers: int = 2, space_dim: int = 3, charge_dim: int = 1):
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
        self.embed = mlp(2 * space_dim + charge_dim, hidden, hidden, layers)
        self.head = mlp(2 * hidden, hidden, space_dim, layers)

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor) -> Tensor:
        h = self.embed(torch.cat([pos, vel, charge.to(pos.dtype)], -1))  # (B, n, hidden)
        pooled = h.mean(1, keepdim=True).expand_as(h)                     # (B, n, hidden)
        return pos + self.head(torch.cat([h, pooled], -1))


def mlp(inputs: int, hidden: int, outputs: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers with SiLU between them."""
    widths = [inputs] + [hidden] * (layers - 1) + [outputs]
    mods: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        mods += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*mods[:-1])


def main(argv: list[str] | None = None) -> int:
    """Write :data:`RECIPE` to a temporary folder and train it with ``symtrain train``."""
    from symtrain.cli import main as symtrain

    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "deepsets_ga.yaml"
        recipe.write_text(RECIPE)
        return symtrain(["train", str(recipe), "--import", __file__, "--out", str(Path(folder) / "run"),
                         *(argv or [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
