"""MD17 / rMD17 through torch_geometric's own MD17 class on a tiny trajectory written in
the real raw format: offline loading, splits, units, the missing-files error, and the
declared S_n × E(3) symmetry checked against the physics (forces rotate, energy does
not change)."""

from pathlib import Path

import pytest
import torch
from pyg_fixtures import ATOMS, energy_and_forces, write_md17

from symtrain.actions import create_action
from symtrain.data import create_dataset
from symtrain.data.pyg import MissingDataError
from symtrain.symmetry import Symmetry

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def md17_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("md17")
    write_md17(root, "aspirin")
    write_md17(root, "revised aspirin", seed=1)
    return root


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("molecule", ["aspirin", "revised aspirin"])
def test_raw_root_is_processed_by_pyg_then_read_back_with_splits_and_units(md17_root, molecule):
    task = create_dataset("md17", path=str(md17_root), molecule=molecule, train=20, val=8, test=12)
    assert (md17_root / molecule / "processed" / "data.pt").is_file()  # PyG's own process() ran
    sizes = [len(s) for s in (task.train, task.val, task.test)]
    assert sizes == [20, 8, 12]
    (pos, z), (energy, forces) = task.train.__getitems__(list(range(20)))
    assert pos.shape == (20, 5, 3) and z.shape == (20, 5) and z.dtype == torch.long
    assert energy.shape == (20,) and forces.shape == (20, 5, 3)
    assert torch.equal(z[0], torch.from_numpy(ATOMS.astype("int64")))
    # standardised targets: back in kcal/mol they are the pair potential's energy and forces
    mean, scale = task.info["energy_mean"], task.info["energy_scale"]
    true_e, true_f = energy_and_forces(pos.double(), z[0])
    # PyG stores float32: energies near 1e5 kcal/mol keep about 0.01 kcal/mol
    torch.testing.assert_close(energy.double() * scale + mean, true_e, atol=2e-2, rtol=0)
    torch.testing.assert_close(forces.double() * scale, true_f, atol=1e-4, rtol=1e-5)
    assert abs(float(energy.mean())) < 1e-5 and abs(float(energy.std()) - 1) < 1e-5
    # the splits are disjoint frames
    frames = torch.cat([s.__getitems__(list(range(len(s))))[0][0].flatten(1)
                        for s in (task.train, task.val, task.test)])
    assert torch.unique(frames, dim=0).shape[0] == 40
    # the second time the processed file is read, with the same split
    again = create_dataset("md17", path=str(md17_root), molecule=molecule, train=20, val=8, test=12)
    torch.testing.assert_close(again.train.__getitems__([0, 1])[1][1], task.train.__getitems__([0, 1])[1][1])


def test_processed_root_is_read_without_raw_files(tmp_path):
    import shutil

    write_md17(tmp_path, "aspirin")
    first = create_dataset("md17", path=str(tmp_path), train=10, val=5, test=5)
    shutil.rmtree(tmp_path / "aspirin" / "raw")
    before = tree(tmp_path)
    second = create_dataset("md17", path=str(tmp_path), train=10, val=5, test=5)
    assert tree(tmp_path) == before
    torch.testing.assert_close(second.test.__getitems__([0, 1, 2])[0][0], first.test.__getitems__([0, 1, 2])[0][0])


def test_metrics_are_in_kcal_per_mol(md17_root):
    task = create_dataset("md17", path=str(md17_root), train=20, val=8, test=12)
    _, (energy, forces) = task.test.__getitems__([0, 1, 2])
    scale = task.info["energy_scale"]
    m = task.metrics((energy + 0.5, forces - 0.25), (energy, forces))
    torch.testing.assert_close(m["energy_mae"][0], torch.full((3,), 0.5 * scale))
    torch.testing.assert_close(m["force_mae"][0], torch.full((3,), 0.25 * scale))
    # the loss is the same sum on the tuple and field by field (as REMUL takes it)
    pred = (energy + 0.5, forces - 0.25)
    whole = task.loss(pred, (energy, forces))
    torch.testing.assert_close(whole, task.loss(pred[0], energy) + task.loss(pred[1], forces))


def test_declared_symmetry_matches_the_physics(md17_root, dtype):
    """For random S_n × E(3) elements g: the labels of the moved molecule g·x are g acting
    on the labels of x (energy unchanged, forces rotated and permuted, not translated);
    declaring the forces invariant fails the same check."""
    task = create_dataset("md17", path=str(md17_root), train=20, val=8, test=12)
    sym = task.symmetry
    (pos, z), _ = task.train.__getitems__(list(range(16)))
    x = (pos.to(dtype), z)
    gen = torch.Generator().manual_seed(3)
    g = sym.sample(sym.context(x), generator=gen, dtype=dtype)
    moved_pos, moved_z = sym.act_input(g, x)
    assert not torch.allclose(moved_pos, x[0])

    def labels(p, zz):  # the pair potential's energy and forces, atom by atom
        e = torch.stack([energy_and_forces(p[i:i + 1], zz[i])[0][0] for i in range(p.shape[0])])
        f = torch.cat([energy_and_forces(p[i:i + 1], zz[i])[1] for i in range(p.shape[0])])
        return e.to(dtype), f.to(dtype)

    y = labels(*x)
    expected = sym.act_output(g, y, sym.context(x))
    got = labels(moved_pos, moved_z)
    tol = dict(atol=1e-3, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-6, rtol=1e-8)
    torch.testing.assert_close(got[0], expected[0], **tol)
    torch.testing.assert_close(got[1], expected[1], **tol)
    wrong = Symmetry(sym.group, input=sym.input, output=create_action("fields", "trivial", "trivial"))
    assert not torch.allclose(got[1], wrong.act_output(g, y, sym.context(x))[1], **tol)


def test_missing_files_give_one_line_naming_them_and_touch_nothing(tmp_path):
    with pytest.raises(MissingDataError) as err:
        create_dataset("md17", path=str(tmp_path / "absent"), molecule="revised ethanol")
    text = str(err.value)
    assert "\n" not in text and text.startswith("data.path: MD17 'revised ethanol' not found")
    assert "rmd17_ethanol.npz" in text and str(tmp_path / "absent") in text
    assert "MD17(root, 'revised ethanol')" in text and "data.download=true" in text
    assert not (tmp_path / "absent").exists()


def test_failed_download_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    from torch_geometric.datasets import MD17

    monkeypatch.setattr(MD17, "gdml_url", "http://127.0.0.1:9/npz")  # a closed local port
    (tmp_path / "kept.txt").write_text("x")
    with pytest.raises(MissingDataError, match="Downloading them failed"):
        create_dataset("md17", path=str(tmp_path), molecule="ethanol", download=True, timeout=5)
    assert tree(tmp_path) == ["kept.txt"]


@pytest.mark.parametrize("args, key", [({"molecule": "aspirine"}, "data.molecule"),
                                       ({"train": 100}, "data.train/val/test"),
                                       ({"val": 0}, "data.val"),
                                       ({"timeout": 0, "path": "/nonexistent"}, "data.timeout")])
def test_bad_settings_name_the_key(md17_root, args, key):
    args = {"path": str(md17_root), **args}
    with pytest.raises(ValueError, match=f"^{key}"):
        create_dataset("md17", **args)
