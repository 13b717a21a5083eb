"""Charged n-body dynamics (Kipf et al., NRI; Satorras et al., EGNN), simulated locally.

``n`` particles with charges ±1 in 3-d interact by Coulomb forces
``F_i = Σ_j q_i q_j (x_i − x_j) / ‖x_i − x_j‖³`` (like charges repel), each component
clipped to ``±max_force`` (the generator's softening of close encounters), integrated
by leapfrog (position drift, then velocity kick) with ``dt = 0.001``. The clipping is
per component, so the dynamics are exactly S_n × E(3)-equivariant only while it does
not act (close encounters, rare). Initial
positions are ``N(0, loc_std²)``, initial velocities random directions of norm
``vel_norm``. As in EGNN's ``nbody_small`` set, the input is the state after
``burn_in`` steps (positions, velocities, charges) and the target the positions
``horizon = 1000`` steps later.

All simulations of a split run at once as one batched tensor program (float64).
Datasets are cached as ``.pt`` files keyed by their settings under ``cache_dir``
(default ``$SYMTRAIN_CACHE`` or ``~/.cache/symtrain``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .registry import register_dataset
from .task import Task, TensorData, mse_metrics

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class NBodySettings:
    """Simulation settings (EGNN/NRI defaults)."""

    particles: int = 5
    dim: int = 3
    loc_std: float = 1.0
    vel_norm: float = 0.5
    interaction: float = 1.0
    dt: float = 1e-3
    max_force: float = 100.0
    burn_in: int = 3000
    horizon: int = 1000


def default_cache_dir() -> Path:
    """``$SYMTRAIN_CACHE`` or ``~/.cache/symtrain``."""
    return Path(os.environ.get("SYMTRAIN_CACHE", Path.home() / ".cache" / "symtrain"))


def coulomb_forces(pos: Tensor, charges: Tensor, settings: NBodySettings) -> Tensor:
    """Clipped Coulomb forces ``[S, n, d]`` on particles at ``pos`` ``[S, n, d]`` with
    ``charges`` ``[S, n]``."""
    diff = pos[:, :, None, :] - pos[:, None, :, :]                    # x_i − x_j
    dist3 = diff.pow(2).sum(-1).pow(1.5)
    eye = torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)
    strength = settings.interaction * charges[:, :, None] * charges[:, None, :]
    size = torch.where(eye, torch.zeros_like(dist3), strength / torch.where(eye, torch.ones_like(dist3), dist3))
    force = (size[..., None] * diff).sum(2)
    return force.clamp(-settings.max_force, settings.max_force)


def integrate(pos: Tensor, vel: Tensor, charges: Tensor, steps: int,
              settings: NBodySettings = NBodySettings(), *, record: int | None = None
              ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """Leapfrog as in the reference generator: a first velocity kick, then per step a
    position drift followed by a kick (states are read after the drift).

    ``pos``, ``vel``: ``[S, n, d]``; ``charges``: ``[S, n]``. Returns the positions
    after ``steps`` drifts, the velocity after the last kick, and (if ``record``) the
    ``(pos, vel)`` read after drift number ``record``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small steps: threading costs more than it gives
    state = None
    try:
        vel = vel + settings.dt * coulomb_forces(pos, charges, settings)
        for step in range(1, steps + 1):
            pos = pos + settings.dt * vel
            if step == record:
                state = (pos.clone(), vel.clone())
            vel = vel + settings.dt * coulomb_forces(pos, charges, settings)
    finally:
        torch.set_num_threads(threads)
    return pos, vel, state


def simulate(num: int, settings: NBodySettings = NBodySettings(), *,
             generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Simulate ``num`` systems. Returns float32 tensors ``pos``, ``vel`` ``[num, n, d]``
    (the state after ``burn_in`` steps), ``charge`` ``[num, n, 1]`` and ``target``
    ``[num, n, d]`` (positions ``horizon`` steps later)."""
    n, d = settings.particles, settings.dim
    f64 = dict(dtype=torch.float64)
    charges = torch.randint(0, 2, (num, n), generator=generator).to(torch.float64) * 2 - 1
    pos = torch.randn(num, n, d, generator=generator, **f64) * settings.loc_std
    vel = torch.randn(num, n, d, generator=generator, **f64)
    vel = vel * settings.vel_norm / vel.norm(dim=-1, keepdim=True)
    pos, _, (start_pos, start_vel) = integrate(pos, vel, charges, settings.burn_in + settings.horizon,
                                               settings, record=settings.burn_in)
    return {"pos": start_pos.float(), "vel": start_vel.float(),
            "charge": charges[..., None].float(), "target": pos.float()}


def nbody_dataset(train: int = 3000, val: int = 2000, test: int = 2000, *, seed: int = 0,
                  settings: NBodySettings = NBodySettings(), cache_dir: str | Path | None = None,
                  path: str | Path | None = None) -> dict[str, dict[str, Tensor]]:
    """The three splits ``{"train"|"val"|"test": {"pos", "vel", "charge", "target"}}``.

    Each split is simulated from its own seed (``seed``, split name), so changing one
    split's size leaves the others unchanged. With ``path`` the file is loaded (a
    ``torch.save`` of this dict) and nothing is simulated; otherwise the result is
    cached under ``cache_dir``.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"n-body data file {str(path)!r} does not exist (data.path); "
                                    "remove data.path to simulate the data locally")
        return torch.load(path, weights_only=True)
    sizes = {"train": train, "val": val, "test": test}
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive number of systems, got {size!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = {}
    for index, name in enumerate(SPLITS):
        key = json.dumps({"split": name, "size": sizes[name], "seed": seed, **asdict(settings)},
                         sort_keys=True)
        file = cache / "nbody" / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
        if file.is_file():
            out[name] = torch.load(file, weights_only=True)
            continue
        gen = torch.Generator().manual_seed(1_000_003 * seed + index)
        out[name] = simulate(sizes[name], settings, generator=gen)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp{os.getpid()}")
        torch.save(out[name], tmp)
        os.replace(tmp, file)  # atomic: concurrent writers leave one complete file
    return out


@register_dataset("nbody")
def nbody_task(train: int = 3000, val: int = 2000, test: int = 2000, seed: int = 0,
               particles: int = 5, cache_dir: str | None = None, path: str | None = None) -> Task:
    """Charged n-body dynamics as a task: inputs ``(pos [B, N, 3], vel [B, N, 3],
    charge [B, N, 1])``, target positions ``[B, N, 3]``, group S_n × E(3)."""
    import torch.nn.functional as F

    from ..actions import create_action
    from ..symmetry import Symmetry

    splits = nbody_dataset(train, val, test, seed=seed, settings=NBodySettings(particles=particles),
                           cache_dir=cache_dir, path=path)
    make = {k: TensorData((v["pos"], v["vel"], v["charge"]), v["target"]) for k, v in splits.items()}
    sym = Symmetry("S_n x E3", input=create_action("fields", "points", "vectors", "nodes"), output="points")
    return Task(make["train"], make["val"], make["test"], sym, F.mse_loss, mse_metrics, "mse",
                {"space_dim": 3, "charge_dim": 1, "num_nodes": particles})
