"""The ``modelnet40`` dataset: ModelNet40 (or ModelNet10) CAD meshes through
torch_geometric's own :class:`~torch_geometric.datasets.ModelNet` class, sampled to point
clouds with PyG's :class:`~torch_geometric.transforms.SamplePoints`; group SO(3), labels
invariant.

**Layout.** Inputs ``[B, P, 3]`` (``P = points`` points sampled uniformly on the mesh
surface, by face area), target the class index ``[B]`` (long).

**Normalisation.** Each cloud is centred (PyG's ``Center``) and divided by its largest
point norm, so it fits the unit ball. PyG's ``NormalizeScale`` is *not* used: it divides
by the largest absolute *coordinate* ``max |x_ij|``, which changes when the cloud
rotates, so ``NormalizeScale(R·x) ≠ R·NormalizeScale(x)`` (``tests/test_modelnet40.py``
shows it); centring and the largest norm commute with rotations, as does
``SamplePoints`` (areas and barycentric draws do not depend on the orientation), so a
rotated mesh gives the rotated cloud and the same label.

**Protocol.** ModelNet's meshes are aligned (upright); training clouds are used as
they are and, with ``test_rotation="so3"`` (default), each test cloud is turned by a
random rotation (seeded): the usual aligned-train / SO(3)-test protocol. The
validation split is a seeded ``val_fraction`` of ModelNet's training meshes.
Each mesh is sampled once, with a seeded RNG, when the task is built.

**Data.** ``data.path`` is the ``root`` one would pass to ``ModelNet(root, "40")``:
``<root>/processed/{training,test}.pt`` is read as it is; a root holding only the raw
meshes ``<root>/raw/<class>/{train,test}/<class>_0001.off`` (``ModelNet40.zip``
unpacked, its ``ModelNet40`` folder renamed ``raw``) is processed by PyG's own
``ModelNet.process()``; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..overrides import ConfigError
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, graph_cross_entropy

TEST_ROTATIONS = ("so3", "none")


def normalize_cloud(pos: Tensor) -> Tensor:
    """``pos [P, 3]`` centred on its mean and divided by its largest point norm (into the
    unit ball); commutes with rotations, unlike PyG's ``NormalizeScale``."""
    pos = pos - pos.mean(0, keepdim=True)
    return pos / pos.norm(dim=-1).max().clamp_min(torch.finfo(pos.dtype).tiny)


def sample_cloud(mesh, points: int, *, normalize: bool = True) -> Tensor:
    """``points`` points ``[points, 3]`` sampled on the faces of ``mesh`` (a PyG ``Data``
    with ``pos [V, 3]`` and ``face [3, F]``) by PyG's ``SamplePoints`` (torch's global
    RNG), then :func:`normalize_cloud` if ``normalize``."""
    from torch_geometric.transforms import SamplePoints

    if mesh.face is None or mesh.face.numel() == 0:
        raise ValueError("a ModelNet mesh without triangular faces cannot be sampled")
    pos = SamplePoints(points)(mesh.clone()).pos
    return normalize_cloud(pos) if normalize else pos


def _describe(name: str):
    def describe(raw: list[str], processed: list[str]) -> str:
        root = Path(processed[0]).parent.parent
        return (f"data.path: ModelNet{name} not found: expected the processed files {processed[0]} "
                f"and {processed[1]}, or the raw meshes {root / 'raw'}/<class>/{{train,test}}/"
                f"<class>_0001.off (ModelNet{name}.zip unpacked, its ModelNet{name} folder renamed "
                f"raw). On a machine with network access run torch_geometric.datasets.ModelNet(root, "
                f"{name!r}) and copy the root here, or set data.download=true")

    return describe


def _clouds(dataset, points: int, normalize: bool, seed: int) -> tuple[Tensor, Tensor]:
    """Every mesh of ``dataset`` sampled once: clouds ``[M, points, 3]`` and labels ``[M]``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        meshes = [dataset[i] for i in range(len(dataset))]
        clouds = torch.stack([sample_cloud(m, points, normalize=normalize) for m in meshes])
    labels = torch.cat([m.y.reshape(1) for m in meshes]).long()
    return clouds, labels


@register_dataset("modelnet40")
def modelnet40_task(path: str | None = None, points: int = 1024, variant: str = "40",
                    val_fraction: float = 0.1, train: int | None = None, test: int | None = None,
                    test_rotation: str = "so3", normalize: bool = True, seed: int = 0,
                    download: bool = False, timeout: float = 60.0) -> Task:
    """ModelNet``variant`` (``"40"`` or ``"10"``) from the local root ``path`` as point clouds
    ``[B, points, 3]`` with class labels ``[B]``, group SO(3) (labels invariant).
    ``train`` / ``test`` keep that many meshes (a seeded random subset) before the
    validation split; ``test_rotation`` is ``"so3"`` (random rotations) or ``"none"``."""
    from torch_geometric.datasets import ModelNet

    from ..actions import create_action
    from ..symmetry import Symmetry
    from .pyg import open_pyg_dataset

    if path is None:
        raise ConfigError("data.path: ModelNet is read from a local torch_geometric ModelNet root; "
                          "set data.path to it (or to an empty folder with data.download=true)")
    if variant not in ("40", "10"):
        raise ConfigError(f"data.variant: ModelNet is '40' or '10', got {variant!r}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction: a fraction in (0, 1), got {val_fraction!r}")
    if test_rotation not in TEST_ROTATIONS:
        raise ConfigError(f"data.test_rotation: one of {', '.join(TEST_ROTATIONS)}, got {test_rotation!r}")
    if not isinstance(points, int) or points < 1:
        raise ConfigError(f"data.points: a positive number of points per cloud, got {points!r}")
    splits = {}
    for split, limit in (("train", train), ("test", test)):
        ds = open_pyg_dataset(ModelNet, path, _describe(variant), download=download,
                              timeout=timeout, name=variant, train=split == "train")
        if limit is not None:
            if not isinstance(limit, int) or limit < 1:
                raise ConfigError(f"data.{split}: a positive number of meshes, got {limit!r}")
            keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed + 11))[:limit]
            ds = ds[keep]
        splits[split] = _clouds(ds, points, normalize, seed + (split == "test"))
    n_train = splits["train"][0].shape[0]
    n_val = max(1, round(n_train * val_fraction))
    if n_val >= n_train:
        raise ConfigError(f"data.val_fraction: {val_fraction} leaves no training mesh of {n_train}")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 7919))
    fit, val = order[n_val:], order[:n_val]
    sym = Symmetry("SO3", input=create_action("points"), output=create_action("trivial"))
    x_test, y_test = splits["test"]
    if test_rotation == "so3":
        context = sym.context(x_test)
        g = sym.sample(context, generator=torch.Generator().manual_seed(seed + 3), dtype=x_test.dtype)
        x_test = sym.act_input(g, x_test, context)
    x, y = splits["train"]
    num_classes = int(max(y.max(), y_test.max())) + 1
    return Task(TensorData(x[fit], y[fit]), TensorData(x[val], y[val]), TensorData(x_test, y_test),
                sym, graph_cross_entropy, accuracy_metrics, "accuracy",
                {"num_classes": num_classes, "in_features": 3, "num_points": points})
