"""The ``md17`` dataset: MD17 and revised MD17 molecular-dynamics trajectories through
torch_geometric's own :class:`~torch_geometric.datasets.MD17` class, group S_n × E(3).

Each example is one frame of one molecule's trajectory: atom positions (Å) and atomic
numbers in, total energy (kcal/mol) and the forces on the atoms (kcal/mol/Å) out.

**Layout.** All frames of one molecule have the same atoms in the same order, so the
fields are dense with no padding or mask (``N`` atoms, e.g. 21 for aspirin):

- inputs ``(pos [B, N, 3], z [B, N])``: positions (points: rotated, translated and
  permuted) and atomic numbers (``long``, per-node scalars: permuted only);
- target ``(energy [B], forces [B, N, 3])``: energy invariant (trivial action), forces
  vectors (rotated and permuted, not translated).

**Units.** Targets are standardised with the training split's statistics:
``energy = (E − mean) / scale`` and ``forces = F / scale`` with ``scale`` the training
energies' standard deviation, so ``F = −∇E`` still holds between the two fields and the
loss (mean squared error of energy plus that of forces, the same sum whether it is
taken on the tuple or field by field as REMUL's loss does) weighs them evenly. The
metrics ``energy_mae`` (kcal/mol) and ``force_mae`` (kcal/mol/Å, mean over atoms and
components; the main metric) are in the dataset's own units.

**Data.** ``data.path`` is the ``root`` one would pass to ``MD17(root, name)``; the
molecule is PyG's name (``aspirin``, ``revised aspirin``, …; :data:`MOLECULES`).
A root holding the processed ``<root>/<molecule>/processed/data.pt`` is read as it is;
one holding only the raw ``.npz`` (``<root>/<molecule>/raw/md17_aspirin.npz``, or for
the revised set ``<root>/raw/rmd17/npz_data/rmd17_aspirin.npz``) is processed by PyG's
own ``MD17.process()``; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..overrides import ConfigError
from .registry import register_dataset
from .task import Task, TensorData

SOURCES = {"md17": "http://quantum-machine.org/gdml/data/npz",
           "rmd17": "https://archive.materialscloud.org/record/file?filename=rmd17.tar.bz2&record_id=466"}


def molecules() -> list[str]:
    """PyG's names of the MD17 (``aspirin``, …) and rMD17 (``revised aspirin``, …)
    trajectories this loader reads (the CCSD(T) and FHI-aims sets, which come with their
    own splits or layout, are not among them)."""
    from torch_geometric.datasets import MD17

    return [name for name in MD17.file_names if "CCSD" not in name and "FHI" not in name]


def md17_loss(pred, y) -> Tensor:
    """Mean squared error of ``(energy [B], forces [B, N, 3])`` summed over the two fields,
    or of one field alone (REMUL's loss takes the fields one at a time: same sum)."""
    import torch.nn.functional as F

    if isinstance(pred, tuple):
        return sum(F.mse_loss(p.float(), t.float()) for p, t in zip(pred, y, strict=False))
    return F.mse_loss(pred.float(), y.float())


def md17_metrics(scale: float):
    """Per-example metrics ``energy_mae`` (``[B]``, kcal/mol) and ``force_mae`` (``[B]``,
    kcal/mol/Å, mean over atoms and components) of standardised ``(energy, forces)``
    predictions, ``scale`` being the standardisation's divisor."""

    def metrics(pred, y) -> dict[str, tuple[Tensor, Tensor]]:
        (energy, forces), (true_energy, true_forces) = pred, y
        e = (energy.float() - true_energy.float()).abs() * scale
        f = (forces.float() - true_forces.float()).abs().flatten(1).mean(1) * scale
        ones = torch.ones_like(e)
        return {"energy_mae": (e, ones), "force_mae": (f, ones)}

    return metrics


def _describe(molecule: str):
    source = "rmd17" if molecule.startswith("revised") else "md17"

    def describe(raw: list[str], processed: list[str]) -> str:
        return (f"data.path: MD17 {molecule!r} not found: expected the raw file {raw[0]} or the "
                f"processed file {processed[0]}. On a machine with network access run "
                f"torch_geometric.datasets.MD17(root, {molecule!r}) (it fetches {SOURCES[source]}) "
                "and copy the root here, or set data.download=true")

    return describe


def load_md17(path: str | Path, molecule: str = "aspirin", *, download: bool = False,
              timeout: float = 60.0) -> dict[str, Tensor]:
    """One molecule's whole trajectory from an MD17 root: ``pos [T, N, 3]`` (float32, Å),
    ``z [T, N]`` (long), ``energy [T]`` (kcal/mol) and ``forces [T, N, 3]`` (kcal/mol/Å),
    read through ``torch_geometric.datasets.MD17`` (processed by its own ``process()``
    if only the raw ``.npz`` is there)."""
    from torch_geometric.datasets import MD17

    from .pyg import open_pyg_dataset

    if molecule not in molecules():
        raise ConfigError(f"data.molecule: unknown MD17 molecule {molecule!r}; known: "
                          f"{', '.join(molecules())}")
    ds = open_pyg_dataset(MD17, path, _describe(molecule), download=download, timeout=timeout,
                          name=molecule)
    data, slices = ds._data, ds.slices
    frames = len(ds)
    atoms = data.z.shape[0] // frames
    if data.pos.shape[0] != frames * atoms or not torch.equal(slices["z"].diff(), torch.full((frames,), atoms)):
        raise ValueError(f"MD17 {molecule!r} under {path}: frames do not all have {atoms} atoms")
    return {"pos": data.pos.reshape(frames, atoms, 3), "z": data.z.reshape(frames, atoms),
            "energy": data.energy.reshape(frames).float(), "forces": data.force.reshape(frames, atoms, 3)}


def _split(frames: int, sizes: dict[str, int], seed: int) -> dict[str, Tensor]:
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"data.{name}: a positive number of frames, got {size!r}")
    if sum(sizes.values()) > frames:
        raise ConfigError(f"data.train/val/test: {sum(sizes.values())} frames asked for "
                          f"({', '.join(f'{k}={v}' for k, v in sizes.items())}) but the trajectory "
                          f"has {frames}")
    order = torch.randperm(frames, generator=torch.Generator().manual_seed(seed))
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = order[start:start + size]
        start += size
    return out


@register_dataset("md17")
def md17_task(path: str | None = None, molecule: str = "aspirin", train: int = 950, val: int = 50,
              test: int = 1000, seed: int = 0, download: bool = False, timeout: float = 60.0) -> Task:
    """MD17 / rMD17 frames of ``molecule`` from the local root ``path``: disjoint random
    ``train``/``val``/``test`` frames (seeded; the usual protocol trains on 950 + 50),
    inputs ``(pos [B, N, 3], z [B, N])``, standardised target ``(energy [B],
    forces [B, N, 3])``, group S_n × E(3) (energy invariant, forces equivariant)."""
    from ..actions import create_action
    from ..symmetry import Symmetry

    if path is None:
        raise ConfigError("data.path: MD17 is read from a local torch_geometric MD17 root; set "
                          "data.path to it (or to an empty folder with data.download=true)")
    traj = load_md17(path, molecule, download=download, timeout=timeout)
    index = _split(traj["pos"].shape[0], {"train": train, "val": val, "test": test}, seed)
    energy = traj["energy"].double()
    mean = float(energy[index["train"]].mean())
    scale = float(energy[index["train"]].std()) if train > 1 else 1.0
    scale = scale if scale > 0 else 1.0
    target_energy = ((energy - mean) / scale).float()
    target_forces = (traj["forces"].double() / scale).float()
    make = {k: TensorData((traj["pos"][i], traj["z"][i]), (target_energy[i], target_forces[i]))
            for k, i in index.items()}
    sym = Symmetry("S_n x E3", input=create_action("fields", "points", "nodes"),
                   output=create_action("fields", "trivial", "vectors"))
    atoms = traj["pos"].shape[1]
    return Task(make["train"], make["val"], make["test"], sym, md17_loss, md17_metrics(scale),
                "force_mae", {"num_nodes": atoms, "space_dim": 3, "energy_mean": mean,
                              "energy_scale": scale})
