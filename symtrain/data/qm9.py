"""The ``qm9`` dataset: QM9's small organic molecules (up to 29 atoms of H, C, N, O, F)
through torch_geometric's own :class:`~torch_geometric.datasets.QM9` class, group
S_n × E(3), one invariant regression target.

**Layout.** Molecules have different sizes, so they are padded to the dataset's largest
(``N = 29`` on the real data): inputs ``(pos [B, N, 3], z [B, N])``, with atomic number
``0`` marking padding and padded positions set to the molecule's centroid (the mean of
its real atoms). The centroid moves with the molecule, so a rotated, translated or
permuted molecule gives exactly the rotated, translated or permuted padded input; the
molecule models mask ``z = 0`` out, and the symmetry reads ``z`` through the ``atoms``
action (:mod:`symtrain.actions.atoms`), whose ``z = 0`` pattern is the node mask: S_n
permutes real atoms only (padding stays last), and frames, canonical labellings and
interfaces see real atoms only (without it, the 9 padded slots of a 20-atom molecule
in a 29-slot batch are 9 identical "atoms" whose 9! permutations a minimal frame would
average over). Target ``[B]``: one of PyG's 19 targets (trivial
action: invariant), standardised with the training split's mean and standard
deviation; the loss is the mean squared error of the standardised target.

**Targets and units** (:data:`TARGETS`, ``data.target``; default ``U0``): as PyG stores
them: energies in eV (HOMO, LUMO, gap, ZPVE, U0, U, H, G and the atomisation
energies), μ in D, α in a₀³, ⟨R²⟩ in a₀², c_v in cal/(mol K), rotational constants in
GHz. The metric ``mae`` is in those units (e.g. eV for U0; ×1000 for the meV usually
quoted).

**Splits.** A seeded random permutation: ``train`` / ``val`` molecules, then ``test``
(default: all the rest), as in SchNet and DimeNet (110,000 / 10,000 / the rest).

**Data.** ``data.path`` is the ``root`` one would pass to ``QM9(root)``. Without rdkit
(as here) PyG reads the pre-processed ``<root>/raw/qm9_v3.pt`` (a list of per-molecule
dicts, from ``https://data.pyg.org/datasets/qm9_v3.zip``); with rdkit it reads
``gdb9.sdf``, ``gdb9.sdf.csv`` and ``uncharacterized.txt`` instead. Either way PyG's own
``QM9.process()`` writes ``<root>/processed/data_v3.pt``, which is read as it is next
time; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..overrides import ConfigError
from .md17 import _split
from .registry import register_dataset
from .task import Task, TensorData

TARGETS = {"mu": 0, "alpha": 1, "homo": 2, "lumo": 3, "gap": 4, "r2": 5, "zpve": 6, "U0": 7,
           "U": 8, "H": 9, "G": 10, "cv": 11, "U0_atom": 12, "U_atom": 13, "H_atom": 14,
           "G_atom": 15, "A": 16, "B": 17, "C": 18}
"""PyG's QM9 target columns by name (``data.target`` takes a name or the column)."""


def _describe(raw: list[str], processed: list[str]) -> str:
    return (f"data.path: QM9 not found: expected the raw file(s) {', '.join(raw)} or the processed "
            f"file {processed[0]}. On a machine with network access run "
            "torch_geometric.datasets.QM9(root) (without rdkit it fetches "
            "https://data.pyg.org/datasets/qm9_v3.zip) and copy the root here, or set data.download=true")


def target_column(target: str | int) -> int:
    """The column of ``target`` (a name of :data:`TARGETS` or an index 0–18)."""
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise ConfigError(f"data.target: a QM9 target name or column, got {target!r}")
    if isinstance(target, int):
        if not 0 <= target < len(TARGETS):
            raise ConfigError(f"data.target: QM9 has target columns 0-{len(TARGETS) - 1}, got {target}")
        return target
    if target not in TARGETS:
        raise ConfigError(f"data.target: unknown QM9 target {target!r}; known: {', '.join(TARGETS)}")
    return TARGETS[target]


def dense_molecules(pos: Tensor, z: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenated atoms (``pos [A, 3]``, ``z [A]``, ``counts [M]`` atoms per molecule)
    as padded ``pos [M, N, 3]`` and ``z [M, N]`` with ``N = max(counts)``: padding has
    ``z = 0`` and sits at its molecule's centroid."""
    from torch_geometric.utils import to_dense_batch

    batch = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    dense_z, mask = to_dense_batch(z.long(), batch, fill_value=0)
    dense_pos, _ = to_dense_batch(pos, batch)
    centroid = dense_pos.sum(1) / counts[:, None].to(pos.dtype)
    dense_pos = torch.where(mask[..., None], dense_pos, centroid[:, None, :])
    return dense_pos, dense_z


def load_qm9(path: str | Path, *, download: bool = False, timeout: float = 60.0) -> dict[str, Tensor]:
    """All molecules of a QM9 root, padded: ``pos [M, N, 3]`` (Å), ``z [M, N]`` (long, 0 =
    padding) and the targets ``y [M, 19]`` (PyG's units), read through
    ``torch_geometric.datasets.QM9`` (processed by its own ``process()`` if only the raw
    files are there)."""
    from torch_geometric.datasets import QM9

    from .pyg import open_pyg_dataset

    ds = open_pyg_dataset(QM9, path, _describe, download=download, timeout=timeout)
    data, slices = ds._data, ds.slices
    counts = slices["z"].diff()
    if int(counts.min()) < 1:
        raise ValueError(f"QM9 under {path}: a molecule without atoms")
    pos, z = dense_molecules(data.pos.float(), data.z, counts)
    return {"pos": pos, "z": z, "y": data.y.reshape(len(ds), -1).float()}


def qm9_loss(pred: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of the standardised target."""
    import torch.nn.functional as F

    return F.mse_loss(pred.float(), y.float())


@register_dataset("qm9")
def qm9_task(path: str | None = None, target: str | int = "U0", train: int = 110_000, val: int = 10_000,
             test: int | None = None, seed: int = 0, download: bool = False, timeout: float = 60.0) -> Task:
    """QM9 molecules from the local root ``path``: disjoint random ``train`` / ``val`` /
    ``test`` molecules (seeded; ``test=None``: all the rest), inputs ``(pos [B, N, 3],
    z [B, N])`` padded with ``z = 0``, standardised ``target`` ``[B]``, group S_n × E(3)
    (the target invariant), metric ``mae`` in the target's units."""
    from ..actions import create_action
    from ..symmetry import Symmetry

    if path is None:
        raise ConfigError("data.path: QM9 is read from a local torch_geometric QM9 root; set "
                          "data.path to it (or to an empty folder with data.download=true)")
    column = target_column(target)
    mols = load_qm9(path, download=download, timeout=timeout)
    total = mols["pos"].shape[0]
    if test is None:
        test = total - (train if isinstance(train, int) else 0) - (val if isinstance(val, int) else 0)
        if test < 1:
            raise ConfigError(f"data.train/val: {train} + {val} molecules leave none of {total} for the test split")
    index = _split(total, {"train": train, "val": val, "test": test}, seed)
    y = mols["y"][:, column].double()
    mean = float(y[index["train"]].mean())
    scale = float(y[index["train"]].std()) if train > 1 else 1.0
    scale = scale if scale > 0 else 1.0
    standard = ((y - mean) / scale).float()

    def metrics(pred: Tensor, true: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        err = (pred.float() - true.float()).abs() * scale
        return {"mae": (err, torch.ones_like(err))}

    make = {k: TensorData((mols["pos"][i], mols["z"][i]), standard[i]) for k, i in index.items()}
    sym = Symmetry("S_n x E3", input=create_action("fields", "points", "atoms"), output=create_action("trivial"))
    return Task(make["train"], make["val"], make["test"], sym, qm9_loss, metrics, "mae",
                {"num_nodes": mols["pos"].shape[1], "space_dim": 3, "target_mean": mean,
                 "target_scale": scale, "target_column": column})
