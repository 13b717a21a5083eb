"""Tiny datasets written in their real raw on-disk formats, for torch_geometric's own
``process()`` to read: an MD17 / rMD17 ``.npz`` trajectory of a molecule whose energy
and forces come from a pair potential, ModelNet ``.off`` meshes, the LRGB releases'
``{train,val,test}.pt`` lists of tuples (Peptides-func/-struct, PCQM-Contact) and the GNN
benchmark's ``<NAME>_v2.pt`` (PATTERN, CLUSTER)."""

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


ASPIRIN_ATOMS = np.array([6] * 9 + [8] * 4 + [1] * 8, dtype=np.uint8)
"""Aspirin's composition, C9H8O4: 21 atoms, as in the MD17 file."""


def aspirin_like_geometry(seed: int = 0) -> np.ndarray:
    """A 21-atom geometry ``[21, 3]`` (Å): the nodes of a jittered 3×3×3 grid of 1.4 Å
    spacing (21 of its 27 points), so no two atoms are closer than about 1 Å."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(3.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 1.4
    keep = rng.permutation(27)[:21]
    return grid[keep] + 0.1 * rng.standard_normal((21, 3))


def write_md17(root: Path, molecule: str = "aspirin", frames: int = 48, seed: int = 0,
               atoms: np.ndarray = ATOMS, geometry: np.ndarray = GEOMETRY) -> Path:
    """A trajectory of ``atoms`` (default :data:`ATOMS`, 5 atoms; :data:`ASPIRIN_ATOMS`
    with :func:`aspirin_like_geometry` for aspirin's size) around ``geometry``, written
    where ``MD17(root, molecule)`` reads its raw file, with the keys of the real files
    (``R, z, E, F`` for MD17; ``coords, nuclear_charges, energies, forces, old_*`` for
    rMD17); energy and forces from :func:`pair_energy`. Returns ``root``."""
    from torch_geometric.datasets import MD17

    rng = np.random.default_rng(seed)
    pos = geometry[None] + 0.15 * rng.standard_normal((frames, len(atoms), 3))
    energy, forces = energy_and_forces(torch.from_numpy(pos), torch.from_numpy(atoms.astype(np.int64)))
    energy, forces = energy.numpy(), forces.numpy()
    name = MD17.file_names[molecule]
    if molecule.startswith("revised"):
        file = root / "raw" / "rmd17" / "npz_data" / name
        arrays = dict(nuclear_charges=atoms, coords=pos, energies=energy, forces=forces,
                      old_indices=np.arange(frames), old_energies=energy, old_forces=forces)
    else:
        file = root / molecule / "raw" / name
        arrays = dict(R=pos, z=atoms, E=energy[:, None], F=forces, name=np.array(molecule),
                      theory=np.array("DFT"), type=np.array("d"), md5=np.array("0" * 32))
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **arrays)
    return root


QM9_ELEMENTS = (1, 6, 7, 8, 9)


def qm9_targets(pos: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Nineteen invariant "properties" ``[19]`` of one molecule (``pos [n, 3]``,
    ``z [n]``, real atoms only): fixed combinations of its pair energy, its sum of
    ``exp(−r_ij)``, its atom count and its summed atomic numbers."""
    pos = pos.double()
    energy = pair_energy(pos[None], z.long())[0] - ENERGY_OFFSET
    r = torch.cdist(pos, pos)
    overlap = torch.exp(-r).sum() - len(z)
    features = torch.stack([energy, overlap, torch.tensor(float(len(z)), dtype=pos.dtype),
                            z.double().sum()])
    mix = torch.linspace(-1, 1, 19 * 4, dtype=pos.dtype).reshape(19, 4).cos()
    return mix @ features


def write_qm9(root: Path, molecules: int = 40, seed: int = 0) -> Path:
    """QM9's pre-processed raw file ``root/raw/qm9_v3.pt`` (what PyG's ``QM9`` reads
    without rdkit): a list of per-molecule dicts with the real file's keys (``x [n, 11]``,
    ``edge_index``, ``edge_attr [E, 4]``, ``y [1, 19]``, ``pos [n, 3]``, ``z [n]``,
    ``name``, ``idx``); 3–9 atoms of H, C, N, O, F on a jittered grid, targets
    :func:`qm9_targets`. Returns ``root``."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(3.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 1.4
    out = []
    for i in range(molecules):
        n = int(torch.randint(3, 10, (1,), generator=gen))
        z = torch.tensor(QM9_ELEMENTS)[torch.randint(0, 5, (n,), generator=gen)]
        pos = grid[torch.randperm(27, generator=gen)[:n]] + 0.1 * torch.randn(n, 3, generator=gen)
        row, col = torch.combinations(torch.arange(n)).T
        edge_index = torch.cat([torch.stack([row, col]), torch.stack([col, row])], 1)
        x = torch.zeros(n, 11)
        x[torch.arange(n), [QM9_ELEMENTS.index(int(a)) for a in z]] = 1
        x[:, 5] = z.float()
        edge_attr = torch.zeros(edge_index.shape[1], 4)
        edge_attr[:, 0] = 1
        out.append({"x": x, "edge_index": edge_index, "edge_attr": edge_attr,
                    "y": qm9_targets(pos, z).float()[None], "pos": pos.float(), "z": z.long(),
                    "name": f"gdb_{i + 1}", "idx": i})
    (root / "raw").mkdir(parents=True, exist_ok=True)
    torch.save(out, root / "raw" / "qm9_v3.pt")
    return root


MODELNET10 = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa",
              "table", "toilet")
"""The class folders PyG's ``ModelNet`` checks for under ``raw/`` (for ModelNet40 too)."""

CUBE_FACES = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def box_mesh(extent: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """A box with half-extents ``extent [3]``: 8 vertices, 6 quads split into one
    triangle pair (the first) and five quads (as real ModelNet files mix both)."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    faces = [[f[0], f[1], f[2]] for f in CUBE_FACES[:1]] + [[f[0], f[2], f[3]] for f in CUBE_FACES[:1]]
    return corners * extent, faces + CUBE_FACES[1:]


def write_off(file: Path, vertices: np.ndarray, faces: list[list[int]]) -> None:
    """An OFF mesh as ModelNet ships them: ``OFF``, counts, vertices, ``n i j k …`` faces."""
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in vertices]
    lines += [" ".join(str(i) for i in [len(f), *f]) for f in faces]
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("\n".join(lines) + "\n")


def write_modelnet(root: Path, classes: tuple[str, ...] = MODELNET10, train: int = 6, test: int = 3,
                   seed: int = 0) -> Path:
    """Raw ModelNet meshes ``root/raw/<class>/{train,test}/<class>_0001.off``: boxes whose
    proportions set the class (jittered, so no two meshes are equal). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        base = np.array([1.0, 0.35 + 0.06 * k, 0.15 + 0.02 * k])
        for split, count in (("train", train), ("test", test)):
            for i in range(count):
                extent = base * (1 + 0.03 * rng.standard_normal(3))
                vertices, faces = box_mesh(extent)
                write_off(root / "raw" / name / split / f"{name}_{i + 1:04d}.off", vertices, faces)
    return root


ATOM_DIMS = (119, 5, 12, 12, 10, 6, 6, 2, 2)  # OGB get_atom_feature_dims()
BOND_DIMS = (5, 6, 2)  # OGB get_bond_feature_dims()
LRGB_SPLITS = {"train": 48, "val": 16, "test": 16}


def molecule(rng: np.random.Generator, nodes: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """A random molecule-like graph: a chain (the backbone) with side branches, atom codes
    ``x [n, 9]`` and bond codes ``edge_attr [2m, 3]`` (int64, OGB ranges, a few atom types),
    ``edge_index [2, 2m]`` with both directions, as LRGB stores them."""
    n = int(rng.integers(nodes[0], nodes[1] + 1))
    parent = [i - 1 if rng.random() < 0.75 else int(rng.integers(0, i)) for i in range(1, n)]
    x = np.zeros((n, len(ATOM_DIMS)), dtype=np.int64)
    x[:, 0] = rng.choice([5, 6, 7, 15], size=n)             # C, N, O, S (atomic number - 1)
    x[:, 2] = rng.integers(1, 5, size=n)                      # degree code
    x[:, 7] = rng.integers(0, 2, size=n)                      # aromatic
    bonds = np.stack([np.arange(1, n), np.array(parent)], 0)
    attr = np.zeros((n - 1, len(BOND_DIMS)), dtype=np.int64)
    attr[:, 0] = rng.integers(0, 4, size=n - 1)
    attr[:, 2] = rng.integers(0, 2, size=n - 1)
    edge_index = np.concatenate([bonds, bonds[::-1]], 1)
    edge_attr = np.concatenate([attr, attr], 0)
    return torch.from_numpy(x), torch.from_numpy(edge_attr), torch.from_numpy(edge_index.copy())


def peptide_targets(x: torch.Tensor, edge_index: torch.Tensor, name: str) -> torch.Tensor:
    """Targets ``[1, T]`` that the graph determines: Peptides-func's 10 labels say whether
    an atom type / aromatic share exceeds a threshold; Peptides-struct's 11 values are
    size and composition statistics."""
    share = torch.stack([(x[:, 0] == z).float().mean() for z in (5, 6, 7, 15)] + [x[:, 7].float().mean()])
    if name == "peptides-func":
        return torch.cat([share > 0.25, share > 0.2]).float()[None]
    size = torch.tensor([x.shape[0] / 20.0, edge_index.shape[1] / 40.0])
    return torch.cat([share, share[:4].pow(2), size]).float()[None]


def write_lrgb(root: Path, name: str = "peptides-func", nodes: tuple[int, int] = (8, 14),
               sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """The raw files ``root/<name>/raw/{train,val,test}.pt`` of an LRGB dataset
    (``peptides-func``, ``peptides-struct`` or ``pcqm-contact``) as the release ships
    them: ``torch.save`` of a list of tuples ``(x, edge_attr, edge_index, y)`` (Peptides)
    or ``(x, edge_attr, edge_index, edge_label_index, edge_label)`` (PCQM-Contact, the
    contacts being the pairs at graph distance 3, both directions, labels all ones).
    Returns ``root``."""
    from torch_geometric.utils import to_dense_adj

    rng = np.random.default_rng(seed)
    folder = root / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (sizes or LRGB_SPLITS).items():
        graphs = []
        for _ in range(count):
            x, edge_attr, edge_index = molecule(rng, nodes)
            if name == "pcqm-contact":
                adj = to_dense_adj(edge_index, max_num_nodes=x.shape[0])[0]
                hops = [torch.eye(x.shape[0])]
                for _ in range(3):
                    hops.append(((hops[-1] @ adj) > 0).float())
                reach = [h > 0 for h in hops]
                exact3 = reach[3] & ~reach[2] & ~reach[1] & ~reach[0]
                label_index = exact3.nonzero().T.contiguous()
                graphs.append((x, edge_attr, edge_index, label_index, torch.ones(label_index.shape[1])))
            else:
                graphs.append((x, edge_attr, edge_index, peptide_targets(x, edge_index, name)))
        torch.save(graphs, folder / f"{split}.pt")
    return root


def sbm_clusters(count: int, gen: torch.Generator, communities: int = 6, size: tuple[int, int] = (2, 4),
                 p: float = 0.9, q: float = 0.05):
    """CLUSTER-style graphs (dense, padded): ``communities`` blocks of random sizes, edges
    with probability ``p`` inside a block and ``q`` across, nodes in random order; labels
    the block, features one-hot ``[N, communities + 1]`` of the block on one node per
    block and of ``communities`` (unlabelled) elsewhere."""
    from symtrain.data.graphs import DenseGraphs

    n_max = communities * size[1]
    adjs, feats, masks, ys = [], [], [], []
    for _ in range(count):
        per = torch.randint(size[0], size[1] + 1, (communities,), generator=gen)
        block = torch.repeat_interleave(torch.arange(communities), per)
        block = block[torch.randperm(len(block), generator=gen)]
        n = len(block)
        prob = torch.where(block[:, None] == block[None], p, q)
        upper = (torch.rand(n, n, generator=gen) < prob).float().triu(1)
        token = torch.full((n,), communities)
        for c in range(communities):
            token[(block == c).nonzero()[0]] = c
        pad = n_max - n
        adjs.append(torch.nn.functional.pad(upper + upper.T, (0, pad, 0, pad)))
        feats.append(torch.nn.functional.pad(torch.nn.functional.one_hot(token, communities + 1).float(),
                                             (0, 0, 0, pad)))
        masks.append(torch.arange(n_max) < n)
        ys.append(torch.nn.functional.pad(block, (0, pad), value=-1))
    return DenseGraphs(torch.stack(adjs), torch.stack(feats), torch.stack(masks), torch.stack(ys))


def write_gnn_benchmark(root: Path, name: str = "PATTERN", sizes: dict[str, int] | None = None,
                        seed: int = 0) -> Path:
    """The raw file ``root/<name>/raw/<name>_v2.pt`` of PyG's GNN benchmark release:
    ``torch.save`` of ``[train, val, test]``, each a list of dicts ``x`` (float one-hot
    node features), ``edge_index``, ``edge_attr`` (ones), ``y`` (node labels). PATTERN:
    small SBM graphs with a planted pattern (``x`` 3 tokens, ``y`` in the pattern or
    not); CLUSTER: 6 communities, ``x [n, 7]`` one-hot of the community on one node per
    community and 6 ("unlabelled") elsewhere, ``y`` the community. Returns ``root``."""
    from symtrain.data.graphs import sbm_pattern

    gen = torch.Generator().manual_seed(seed)
    out = []
    for count in (sizes or {"train": 48, "val": 16, "test": 16}).values():
        graphs = []
        if name == "PATTERN":
            g = sbm_pattern(count, communities=2, community_size=(3, 4), pattern_size=3, generator=gen)
            feats, labels = g.features, g.labels
        else:
            g = sbm_clusters(count, gen)
            feats, labels = g.features, g.labels
        for adj, x, mask, y in zip(g.adjacency, feats, g.mask, labels, strict=False):
            n = int(mask.sum())
            edge_index = adj[:n, :n].nonzero().T.contiguous()
            graphs.append({"x": x[:n].float(), "edge_index": edge_index,
                           "edge_attr": torch.ones(edge_index.shape[1]), "y": y[:n].long()})
        out.append(graphs)
    folder = root / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(out, folder / f"{name}_v2.pt")
    return root


WRITERS = {"md17": write_md17, "modelnet40": write_modelnet,
           "peptides_func": lambda root: write_lrgb(root, "peptides-func"),
           "peptides_struct": lambda root: write_lrgb(root, "peptides-struct"),
           "pcqm_contact": lambda root: write_lrgb(root, "pcqm-contact"),
           "pattern": lambda root: write_gnn_benchmark(root, "PATTERN"),
           "cluster": lambda root: write_gnn_benchmark(root, "CLUSTER"),
           "qm9": write_qm9}
"""Datasets read from a local root, by registered name: the fixture writer of each."""


def local_data(dataset: str, root: Path) -> list[str]:
    """The ``data.path=…`` override pointing a recipe of ``dataset`` at a fixture root
    written under ``root`` (nothing for datasets that need no local files)."""
    if dataset not in WRITERS:
        return []
    return [f"data.path={WRITERS[dataset](root / dataset)}"]
