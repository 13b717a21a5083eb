"""QM9 through torch_geometric's own QM9 class on a tiny pre-processed raw file
(``qm9_v3.pt``, what PyG reads without rdkit): offline loading, padding, splits, units,
the missing-files error, and the declared S_n × E(3) symmetry checked numerically (the
targets of a moved molecule do not change)."""


import pytest
import torch
from pyg_fixtures import qm9_targets, write_qm9

from symtrain.data import create_dataset
from symtrain.data.pyg import MissingDataError
from symtrain.data.qm9 import TARGETS
from symtrain.overrides import ConfigError

torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("rdkit") is not None,
    reason="with rdkit installed PyG's QM9 reads the SDF files, not qm9_v3.pt")


@pytest.fixture(scope="module")
def qm9_root(tmp_path_factory):
    return write_qm9(tmp_path_factory.mktemp("qm9") / "qm9")


def real_atoms(pos, z):
    keep = z > 0
    return pos[keep], z[keep]


def test_raw_root_is_processed_by_pyg_then_read_with_padding_splits_and_units(qm9_root):
    task = create_dataset("qm9", path=str(qm9_root), target="homo", train=24, val=8)
    assert (qm9_root / "processed" / "data_v3.pt").is_file()  # PyG's own process() ran
    assert [len(s) for s in (task.train, task.val, task.test)] == [24, 8, 8]  # test: the rest
    (pos, z), y = task.train.__getitems__(list(range(24)))
    n = task.info["num_nodes"]
    assert pos.shape == (24, n, 3) and z.shape == (24, n) and y.shape == (24,) and z.dtype == torch.long
    mean, scale = task.info["target_mean"], task.info["target_scale"]
    for i in range(24):
        p, zz = real_atoms(pos[i], z[i])
        # the target is PyG's column as stored (float32), standardised with the train split
        expect = float(qm9_targets(p, zz)[TARGETS["homo"]])
        assert abs(float(y[i]) * scale + mean - expect) < 1e-3 * max(1.0, abs(expect))
        # padding: atomic number 0 at the molecule's centroid
        torch.testing.assert_close(pos[i][z[i] == 0], p.mean(0).expand(int((z[i] == 0).sum()), 3))
    assert abs(float(y.mean())) < 1e-5
    mae = task.metrics(y + 0.5, y)["mae"][0]
    torch.testing.assert_close(mae, torch.full((24,), 0.5 * scale))
    # disjoint splits, the same again from the processed file
    seen = torch.cat([s.__getitems__(list(range(len(s))))[0][0].flatten(1) for s in (task.train, task.val, task.test)])
    assert torch.unique(seen, dim=0).shape[0] == 40
    again = create_dataset("qm9", path=str(qm9_root), target=TARGETS["homo"], train=24, val=8)
    torch.testing.assert_close(again.test.__getitems__([0, 1])[1], task.test.__getitems__([0, 1])[1])


def test_targets_do_not_change_under_the_declared_symmetry(qm9_root, dtype):
    """Random S_n × E(3) elements through the dataset's Symmetry: recomputing the targets
    of each moved molecule gives back the declared output action's answer (unchanged);
    a property of raw coordinates is caught by the same check."""
    task = create_dataset("qm9", path=str(qm9_root), train=24, val=8)
    sym = task.symmetry
    (pos, z), y = task.train.__getitems__(list(range(16)))
    x = (pos.to(dtype), z)
    g = sym.sample(sym.context(x), generator=torch.Generator().manual_seed(5), dtype=dtype)
    moved_pos, moved_z = sym.act_input(g, x)
    assert not torch.allclose(moved_pos, x[0]) and not torch.equal(moved_z, z)

    def labels(p, zz, column=TARGETS["U0"]):
        return torch.stack([qm9_targets(*real_atoms(p[i], zz[i]))[column] for i in range(p.shape[0])]).to(dtype)

    expected = sym.act_output(g, labels(*x), sym.context(x))
    tol = dict(atol=1e-3, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-8, rtol=1e-10)
    torch.testing.assert_close(labels(moved_pos, moved_z), expected, **tol)

    def centre_x(p, zz):  # not invariant: the x coordinate of the centroid
        return torch.stack([real_atoms(p[i], zz[i])[0][:, 0].mean() for i in range(p.shape[0])])

    assert not torch.allclose(centre_x(moved_pos, moved_z), sym.act_output(g, centre_x(*x), sym.context(x)), **tol)


def test_missing_files_and_bad_targets_are_one_line_errors(tmp_path, qm9_root):
    with pytest.raises(MissingDataError) as err:
        create_dataset("qm9", path=str(tmp_path / "absent"))
    text = str(err.value)
    assert "\n" not in text and text.startswith("data.path: QM9 not found")
    assert "qm9_v3.pt" in text and "data.download=true" in text
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ConfigError, match="data.target: unknown QM9 target 'u0'"):
        create_dataset("qm9", path=str(qm9_root), target="u0", train=8, val=4)
    with pytest.raises(ConfigError, match="data.target: QM9 has target columns 0-18"):
        create_dataset("qm9", path=str(qm9_root), target=19, train=8, val=4)
    with pytest.raises(ConfigError, match="leave none"):
        create_dataset("qm9", path=str(qm9_root), train=30, val=10)


def test_padding_is_declared_to_the_group_so_frames_see_real_atoms_only(qm9_root):
    """The symmetry reads the padding from ``z = 0`` (the ``atoms`` action): the context's
    mask is the real atoms, sampled permutations keep padding last, and minimal frame
    averaging makes one backbone call per (generic) molecule, not an average over the
    padded slots' permutations."""
    from symtrain import FrameAveraging

    task = create_dataset("qm9", path=str(qm9_root), train=24, val=8)
    sym = task.symmetry
    (pos, z), _ = task.train.__getitems__(list(range(16)))
    assert bool((z == 0).any())  # the fixture has padding
    assert torch.equal(sym.context((pos, z)).mask, z != 0)
    g = sym.sample(sym.context((pos, z)), generator=torch.Generator().manual_seed(1))
    assert torch.equal(sym.act_input(g, (pos, z))[1] != 0, z != 0)
    calls = []

    def base(p, zz):
        calls.append(p.shape[0])
        return (p.norm(dim=-1) * (zz != 0)).sum(1) + p[:, 0, 0]

    model = FrameAveraging(base, sym)
    model(pos.double(), z)
    assert sum(calls) == 16
