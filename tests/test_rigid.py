"""MuJoCo rigid-body scenes: E(3)-equivariance of the simulation, sample layout,
determinism, caching, and the install hint when MuJoCo is missing."""

import sys

import numpy as np
import pytest
import torch

from symtrain.data import rigid
from symtrain.data.rigid import (
    MAX_KEYPOINTS,
    RigidSettings,
    make_rigid_dataset,
    random_rotation,
    sample_scene,
    simulate_scene,
)

HORIZON = 200  # steps of 2 ms: 0.4 s, long enough for floor and body-body contacts


def _contacts(scene, settings, steps):
    """(floor contacts, body-body contacts) summed over ``steps`` steps."""
    mujoco = rigid.import_mujoco()
    model = mujoco.MjModel.from_xml_string(rigid.scene_xml(scene, settings))
    data = mujoco.MjData(model)
    rigid.set_state(model, data, scene)
    floor = bodies = 0
    for _ in range(steps):
        mujoco.mj_step(model, data)
        geoms = data.contact.geom[: data.ncon]
        floor += int((geoms == 0).any(1).sum())
        bodies += int((geoms != 0).all(1).sum())
    return floor, bodies


def _moved_error(scene, settings, rot, shift):
    """Max |simulate(g·scene) − g·simulate(scene)| over keypoints after HORIZON steps."""
    plain = simulate_scene(scene, [HORIZON], settings)[0]
    moved = simulate_scene(scene.moved(rot, shift), [HORIZON], settings)[0]
    return np.abs(plain @ rot.T + shift - moved).max()


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("seed", [0, 3])
def test_simulation_is_e3_equivariant(seed, reflect):
    # Measured over 20 random scenes and motions (max |difference| of keypoints, metres):
    #   rotations:   4.9e-15 after 50 steps, 2.3e-14 after 200, 1.3e-6 after 500;
    #   reflections: 4.9e-15,               3.8e-14,            1.7e-6
    # (rounding differences grow chaotically through contacts: medians at 500 steps are
    # 3e-13). 1e-9 at 200 steps (0.4 s) keeps a margin of >1e4 over the worst measured case
    # and stays far below the 2.4e-3 (median) by which the pyramidal friction cone, which is
    # not isotropic, breaks the symmetry in the same 200 steps.
    settings = RigidSettings(random_motion=False)
    scene = sample_scene(np.random.default_rng(seed), settings)
    floor, bodies = _contacts(scene, settings, HORIZON)
    assert floor > 0 and bodies > 0, "the test scene must exercise floor and body-body contacts"
    g = np.random.default_rng(100 + seed)
    rot, shift = random_rotation(g), 2.0 * g.standard_normal(3)
    if reflect:
        rot = rot @ np.diag([1.0, 1.0, -1.0])
    moved = scene.moved(rot, shift)
    assert np.abs(scene.keypoints() @ rot.T + shift - moved.keypoints()).max() < 1e-12
    assert all(np.isclose(np.linalg.det(r), 1.0) for r in moved.rot)  # MuJoCo needs proper frames
    assert _moved_error(scene, settings, rot, shift) < 1e-9


def test_pyramidal_cone_breaks_the_symmetry():
    settings = RigidSettings(random_motion=False, cone="pyramidal")
    scene = sample_scene(np.random.default_rng(0), settings)
    g = np.random.default_rng(100)
    assert _moved_error(scene, settings, random_rotation(g), 2.0 * g.standard_normal(3)) > 1e-5


def test_random_rotation_is_proper():
    rot = random_rotation(np.random.default_rng(0))
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(rot), 1.0)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, make_rigid_dataset(6, seed=0, cache_dir=cache, workers=1, progress=False)


def test_shapes_masks_and_invariants(small):
    _, data = small
    s, k = 6, MAX_KEYPOINTS
    for key in ("keypoints_prev", "keypoints", "target"):
        assert data[key].shape == (s, k, 3) and data[key].dtype == torch.float32
    for key in ("gravity", "floor_point", "floor_normal"):
        assert data[key].shape == (s, 3)
    for key in ("body_index", "body_type", "mass", "mask"):
        assert data[key].shape == (s, k)
    mask = data["mask"]
    counts = mask.sum(1)
    assert ((counts >= 12) & (counts <= 24) & (counts % 4 == 0)).all()
    assert (mask == (data["body_index"] >= 0)).all()            # real keypoints come first
    assert (mask[:, :-1].int() >= mask[:, 1:].int()).all()
    assert (data["keypoints"][~mask] == 0).all() and (data["mass"][~mask] == 0).all()
    assert (data["body_index"][mask] == torch.arange(k).repeat(s, 1)[mask] // 4).all()
    # Gravity is 9.81 m/s² against the floor normal, whatever the random orientation.
    assert torch.allclose(data["floor_normal"].norm(dim=1), torch.ones(s))
    assert torch.allclose(data["gravity"], -9.81 * data["floor_normal"], atol=1e-5)
    assert not torch.allclose(data["floor_normal"], data["floor_normal"][:1])  # random orientations
    # Rigid bodies: distances between a body's keypoints are the same in all three frames.
    frames = [data[key][mask].view(-1, 4, 3) for key in ("keypoints_prev", "keypoints", "target")]
    dists = [torch.cdist(f, f) for f in frames]
    assert torch.allclose(dists[0], dists[1], atol=1e-5) and torch.allclose(dists[0], dists[2], atol=1e-5)
    # Keypoints lie (up to contact penetration) above the floor plane.
    height = ((data["keypoints"] - data["floor_point"][:, None]) * data["floor_normal"][:, None]).sum(-1)
    assert (height[mask] > -0.3).all()


def test_deterministic_under_seed_and_worker_count(small, tmp_path):
    _, data = small
    again = make_rigid_dataset(6, seed=0, cache_dir=tmp_path, workers=2, progress=False)
    other = make_rigid_dataset(6, seed=1, cache_dir=tmp_path, workers=1, progress=False)
    for key in data:
        assert torch.equal(data[key], again[key]), key
    assert not torch.equal(data["keypoints"], other["keypoints"])


def test_cache_is_reused(small, monkeypatch):
    cache, data = small
    assert len(list((cache / "rigid").glob("*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("simulated again instead of reading the cache")

    monkeypatch.setattr(rigid, "simulate_rigid", fail)
    cached = make_rigid_dataset(6, seed=0, cache_dir=cache, workers=1, progress=False)
    assert all(torch.equal(data[key], cached[key]) for key in data)


def test_smaller_sets_are_sliced_from_a_larger_cached_one(small, monkeypatch, tmp_path):
    cache, data = small
    fresh = make_rigid_dataset(3, seed=0, cache_dir=tmp_path, workers=1, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("simulated again instead of slicing the cached larger set")

    monkeypatch.setattr(rigid, "simulate_rigid", fail)
    sliced = make_rigid_dataset(3, seed=0, cache_dir=cache, workers=1, progress=False)
    assert all(torch.equal(sliced[key], fresh[key]) and torch.equal(sliced[key], data[key][:3]) for key in data)


def test_missing_mujoco_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # makes `import mujoco` raise ImportError
    with pytest.raises(ImportError, match=r"pip install symtrain\[physics\]"):
        make_rigid_dataset(2, seed=0, cache_dir=tmp_path, progress=False)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_rejects_bad_sizes(bad, tmp_path):
    with pytest.raises(ValueError, match="num_samples"):
        make_rigid_dataset(bad, cache_dir=tmp_path)
