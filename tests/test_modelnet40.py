"""ModelNet through torch_geometric's own ModelNet class on tiny meshes written as real
OFF files: offline loading, splits, the missing-files error, and the declared SO(3)
symmetry: sampling and normalising a rotated mesh gives the rotated cloud (PyG's
NormalizeScale does not), labels do not change."""

import pytest
import torch
from pyg_fixtures import MODELNET10, box_mesh, write_modelnet

from symtrain.data import create_dataset
from symtrain.data.modelnet40 import normalize_cloud, sample_cloud
from symtrain.data.pyg import MissingDataError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def modelnet_root(tmp_path_factory):
    return write_modelnet(tmp_path_factory.mktemp("modelnet"))


def random_rotations(n, dtype, seed=0):
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, dtype=dtype, generator=torch.Generator().manual_seed(seed)))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    return q * torch.linalg.det(q)[:, None, None]  # det +1


def test_raw_meshes_are_processed_by_pyg_into_clouds_splits_and_labels(modelnet_root):
    task = create_dataset("modelnet40", path=str(modelnet_root), points=64, val_fraction=0.2)
    assert (modelnet_root / "processed" / "training.pt").is_file()
    assert [len(task.train), len(task.val), len(task.test)] == [48, 12, 30]
    assert task.info["num_classes"] == len(MODELNET10)
    x, y = task.train.__getitems__(list(range(48)))
    assert x.shape == (48, 64, 3) and y.dtype == torch.long
    # centred clouds in the unit ball, touching its sphere
    torch.testing.assert_close(x.mean(1), torch.zeros(48, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.norm(dim=-1).amax(1), torch.ones(48), atol=1e-5, rtol=0)
    # each class has 6 training meshes (sorted folder names give the labels)
    _, yv = task.val.__getitems__(list(range(12)))
    assert torch.bincount(torch.cat([y, yv]), minlength=10).tolist() == [6] * 10
    # the test clouds are randomly rotated: their axis-aligned extents are no longer the boxes'
    plain = create_dataset("modelnet40", path=str(modelnet_root), points=64, test_rotation="none")
    xt, yt = task.test.__getitems__(list(range(30)))
    xp, yp = plain.test.__getitems__(list(range(30)))
    assert torch.equal(yt, yp)
    torch.testing.assert_close(torch.linalg.svdvals(xt), torch.linalg.svdvals(xp), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(xt, xp, atol=1e-2)
    # fewer meshes on request, reproducibly
    small = create_dataset("modelnet40", path=str(modelnet_root), points=16, train=20, test=10)
    again = create_dataset("modelnet40", path=str(modelnet_root), points=16, train=20, test=10)
    assert len(small.train) + len(small.val) == 20 and len(small.test) == 10
    assert torch.equal(small.train.inputs, again.train.inputs)


def test_sampling_a_rotated_mesh_gives_the_rotated_cloud_but_normalize_scale_does_not(dtype):
    """The mesh → cloud pipeline commutes with random rotations (same RNG state for both
    draws); PyG's NormalizeScale (divides by the largest |coordinate|) breaks it."""
    from torch_geometric.data import Data
    from torch_geometric.transforms import NormalizeScale

    vertices, faces = box_mesh(torch.tensor([1.0, 0.5, 0.2]).numpy())
    tri = [f if len(f) == 3 else f[:3] for f in faces] + [[f[0], f[2], f[3]] for f in faces if len(f) == 4]
    mesh = Data(pos=torch.tensor(vertices, dtype=dtype), face=torch.tensor(tri).T.contiguous())
    for rot in random_rotations(4, dtype, seed=1):
        turned = Data(pos=mesh.pos @ rot.T, face=mesh.face)
        torch.manual_seed(5)
        a = sample_cloud(mesh, 128)
        torch.manual_seed(5)
        b = sample_cloud(turned, 128)
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(b, a @ rot.T, atol=tol, rtol=0)
        # NormalizeScale: the rotated cloud is scaled differently
        torch.manual_seed(5)
        c = NormalizeScale()(Data(pos=sample_cloud(mesh, 128, normalize=False))).pos
        torch.manual_seed(5)
        d = NormalizeScale()(Data(pos=sample_cloud(turned, 128, normalize=False))).pos
        assert (d - c @ rot.T).abs().max() > 100 * tol + 1e-3  # far above rounding
        torch.testing.assert_close(normalize_cloud(d), normalize_cloud(c) @ rot.T, atol=tol, rtol=0)


def test_declared_symmetry_moves_clouds_and_keeps_labels(modelnet_root, dtype):
    task = create_dataset("modelnet40", path=str(modelnet_root), points=32)
    sym = task.symmetry
    x, y = task.train.__getitems__(list(range(8)))
    x = x.to(dtype)
    context = sym.context(x)
    g = sym.sample(context, generator=torch.Generator().manual_seed(0), dtype=dtype)
    gx = sym.act_input(g, x, context)
    assert not torch.allclose(gx, x, atol=1e-3)
    torch.testing.assert_close(gx.norm(dim=-1), x.norm(dim=-1))  # rotations about the centroid
    assert torch.equal(sym.act_output(g, y, context), y)
    # an invariant feature (sorted point norms) is unchanged, a non-invariant one (the
    # mean of the first coordinate over the points with positive z) is not
    torch.testing.assert_close(gx.norm(dim=-1).sort(1)[0], x.norm(dim=-1).sort(1)[0])
    def not_invariant(c):
        return (c[..., 0] * (c[..., 2] > 0)).sum(1)
    assert not torch.allclose(not_invariant(gx), not_invariant(x), atol=1e-2)


def test_missing_files_give_one_line_naming_them_and_touch_nothing(tmp_path):
    with pytest.raises(MissingDataError) as err:
        create_dataset("modelnet40", path=str(tmp_path / "absent"))
    text = str(err.value)
    assert "\n" not in text and text.startswith("data.path: ModelNet40 not found")
    assert str(tmp_path / "absent" / "processed" / "training.pt") in text and "_0001.off" in text
    assert "ModelNet(root, '40')" in text and "data.download=true" in text
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("args, key", [({"variant": "41"}, "data.variant"),
                                       ({"test_rotation": "z"}, "data.test_rotation"),
                                       ({"points": 0}, "data.points"),
                                       ({"val_fraction": 1.5}, "data.val_fraction")])
def test_bad_settings_name_the_key(modelnet_root, args, key):
    with pytest.raises(ValueError, match=f"^{key}"):
        create_dataset("modelnet40", path=str(modelnet_root), **args)
