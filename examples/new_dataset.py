"""A new dataset in one file, trained from a provided recipe with ``symtrain train``.

``harmonic``: particles tethered by springs to the frame that moves with their mean
position and velocity; the spring of particle ``i`` has angular frequency
``ω_i = ω (1 + q_i / 2)`` for its charge ``q_i = ±1``. Positions after time ``T`` have a
closed form (no simulation):

    x_i(T) = c + v̄ T + (x_i − c) cos ω_i T + (v_i − v̄) / ω_i · sin ω_i T,

with ``c`` and ``v̄`` the mean position and velocity. The map ``(x, v, q) ↦ x(T)`` is
exactly S_n × E(3)-equivariant, the symmetry the task declares. Inputs are laid out as
n-body's (``pos``, ``vel``, ``charge``), so the n-body recipes train on it unchanged:

    symtrain train nbody_ga --import examples/new_dataset.py --budget smoke \\
        --set data.name=harmonic

or ``python examples/new_dataset.py`` (that run, into a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile

import torch
import torch.nn.functional as F

from symtrain import Symmetry
from symtrain.actions import create_action
from symtrain.data import register_dataset
from symtrain.data.task import Task, TensorData, mse_metrics


def harmonic_positions(pos: torch.Tensor, vel: torch.Tensor, charge: torch.Tensor,
                       omega: float = 1.0, time: float = 1.0) -> torch.Tensor:
    """Positions at ``time`` ``[B, N, 3]`` from ``pos``, ``vel`` ``[B, N, 3]`` and
    ``charge`` ``[B, N, 1]`` (the closed form above)."""
    w = omega * (1 + charge.to(pos.dtype) / 2)
    c, v_mean = pos.mean(1, keepdim=True), vel.mean(1, keepdim=True)
    return (c + v_mean * time + (pos - c) * torch.cos(w * time)
            + (vel - v_mean) / w * torch.sin(w * time))


def harmonic_systems(count: int, particles: int, omega: float, time: float,
                     generator: torch.Generator) -> TensorData:
    """``count`` random systems with their targets."""
    pos = torch.randn(count, particles, 3, generator=generator)
    vel = 0.5 * torch.randn(count, particles, 3, generator=generator)
    charge = torch.randint(0, 2, (count, particles, 1), generator=generator).float() * 2 - 1
    return TensorData((pos, vel, charge), harmonic_positions(pos, vel, charge, omega, time))


@register_dataset("harmonic")
def harmonic_task(train: int = 1000, val: int = 200, test: int = 200, seed: int = 0,
                  particles: int = 5, omega: float = 1.0, time: float = 1.0) -> Task:
    """Spring-tethered particles (closed form), group S_n × E(3); metric MSE."""
    if omega <= 0 or time <= 0:
        raise ValueError(f"omega and time must be positive, got omega={omega}, time={time}")
    gen = torch.Generator().manual_seed(seed)
    splits = [harmonic_systems(n, particles, omega, time, gen) for n in (train, val, test)]
    sym = Symmetry("S_n x E3", input=create_action("fields", "points", "vectors", "nodes"), output="points")
    return Task(*splits, sym, F.mse_loss, mse_metrics, "mse",
                {"space_dim": 3, "charge_dim": 1, "num_nodes": particles})


def main(argv: list[str] | None = None) -> int:
    """``symtrain train nbody_ga --import <this file> --set data.name=harmonic`` (smoke)."""
    from symtrain.cli import main as symtrain

    with tempfile.TemporaryDirectory() as out:
        return symtrain(["train", "nbody_ga", "--import", __file__, "--budget", "smoke", "--out", out,
                         "--set", "data.name=harmonic", *(argv or [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
