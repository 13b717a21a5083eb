"""Tiny datasets written in their real raw on-disk formats, for torch_geometric's own
``process()`` to read: an MD17 / rMD17 ``.npz`` trajectory of a molecule whose energy
and forces come from a pair potential, and ModelNet ``.off`` meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# A five-atom "molecule" (C, C, O, H, H) near a fixed geometry (Å).
ATOMS = np.array([6, 6, 8, 1, 1], dtype=np.uint8)
GEOMETRY = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [2.2, 1.1, 0.0], [-0.6, 0.9, 0.3],
                     [-0.5, -0.9, -0.4]])
ENERGY_OFFSET = -97_000.0  # kcal/mol, of the order of real MD17 totals


def pair_energy(pos: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A rotation-, translation- and permutation-invariant energy ``[T]`` (kcal/mol) of
    positions ``[T, N, 3]`` with atomic numbers ``z [N]`` (or ``[T, N]``): harmonic
    springs between all pairs, stiffness and rest length set by the two elements."""
    z = z.to(pos.dtype).expand(pos.shape[:2])
    diff = pos[:, :, None, :] - pos[:, None, :, :]
    r = (diff.pow(2).sum(-1) + torch.eye(pos.shape[1], dtype=pos.dtype)).sqrt()
    zz = z[:, :, None] * z[:, None, :]
    stiffness = 0.5 + 0.01 * zz
    rest = 0.8 + 0.02 * (z[:, :, None] + z[:, None, :])
    off = 1 - torch.eye(pos.shape[1], dtype=pos.dtype)
    return 0.5 * (off * stiffness * (r - rest).pow(2)).sum((1, 2)) + ENERGY_OFFSET


def energy_and_forces(pos: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``pair_energy`` ``[T]`` and the forces ``−∇E`` ``[T, N, 3]`` (autograd, float64)."""
    pos = pos.detach().double().requires_grad_(True)
    energy = pair_energy(pos, z)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad


def write_md17(root: Path, molecule: str = "aspirin", frames: int = 48, seed: int = 0) -> Path:
    """A trajectory of :data:`ATOMS` written where ``MD17(root, molecule)`` reads its raw
    file, with the keys of the real files (``R, z, E, F`` for MD17;
    ``coords, nuclear_charges, energies, forces, old_*`` for rMD17). Returns ``root``."""
    from torch_geometric.datasets import MD17

    rng = np.random.default_rng(seed)
    pos = GEOMETRY[None] + 0.15 * rng.standard_normal((frames, len(ATOMS), 3))
    energy, forces = energy_and_forces(torch.from_numpy(pos), torch.from_numpy(ATOMS.astype(np.int64)))
    energy, forces = energy.numpy(), forces.numpy()
    name = MD17.file_names[molecule]
    if molecule.startswith("revised"):
        file = root / "raw" / "rmd17" / "npz_data" / name
        arrays = dict(nuclear_charges=ATOMS, coords=pos, energies=energy, forces=forces,
                      old_indices=np.arange(frames), old_energies=energy, old_forces=forces)
    else:
        file = root / molecule / "raw" / name
        arrays = dict(R=pos, z=ATOMS, E=energy[:, None], F=forces, name=np.array(molecule),
                      theory=np.array("DFT"), type=np.array("d"), md5=np.array("0" * 32))
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **arrays)
    return root
