"""The n-body simulator: symmetric dynamics, conservation, caching, clear errors."""

import pytest
import torch

from symtrain.data.nbody import NBodySettings, coulomb_forces, integrate, nbody_dataset, simulate

torch.set_num_threads(1)


def _system(s=4, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(s, n, 3, generator=g, dtype=torch.float64)
    vel = 0.5 * torch.randn(s, n, 3, generator=g, dtype=torch.float64)
    charges = torch.randint(0, 2, (s, n), generator=g).double() * 2 - 1
    return pos, vel, charges


def test_like_charges_repel_and_opposite_attract():
    settings = NBodySettings()
    pos = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    f_like = coulomb_forces(pos, torch.tensor([[1.0, 1.0]], dtype=torch.float64), settings)
    f_unlike = coulomb_forces(pos, torch.tensor([[1.0, -1.0]], dtype=torch.float64), settings)
    assert f_like[0, 0, 0] == pytest.approx(-1.0) and f_like[0, 1, 0] == pytest.approx(1.0)
    assert f_unlike[0, 0, 0] == pytest.approx(1.0)


def test_dynamics_are_equivariant_to_rotations_translations_and_permutations():
    # Component-wise force clipping (the reference generator's) is not rotation-equivariant;
    # without it the dynamics are exactly E(3) x S_n-equivariant.
    settings = NBodySettings(max_force=1e12)
    pos, vel, q = _system()
    rot = torch.linalg.qr(torch.randn(4, 3, 3, dtype=torch.float64))[0]
    shift = torch.randn(4, 1, 3, dtype=torch.float64)
    perm = torch.stack([torch.randperm(5) for _ in range(4)])
    def take(t):
        return torch.gather(t, 1, perm[..., None].expand_as(t)) if t.dim() == 3 else torch.gather(t, 1, perm)

    out, _, _ = integrate(pos, vel, q, 200, settings)
    moved, _, _ = integrate(take(pos @ rot.mT + shift), take(vel @ rot.mT), take(q), 200, settings)
    assert torch.allclose(moved, take(out @ rot.mT + shift), atol=1e-8)


def test_momentum_is_conserved_without_clipping():
    pos, vel, q = _system()
    _, v_end, _ = integrate(pos, vel, q, 300, NBodySettings(max_force=1e12))
    v0 = vel + 1e-3 * coulomb_forces(pos, q, NBodySettings(max_force=1e12))
    assert torch.allclose(v_end.sum(1), v0.sum(1), atol=1e-9)


def test_dataset_shapes_seeding_and_cache(tmp_path):
    settings = NBodySettings(burn_in=30, horizon=10)
    a = nbody_dataset(6, 3, 3, seed=1, settings=settings, cache_dir=tmp_path)
    assert a["train"]["pos"].shape == (6, 5, 3) and a["val"]["charge"].shape == (3, 5, 1)
    assert set(a["train"]["charge"].unique().tolist()) <= {-1.0, 1.0}
    files = sorted((tmp_path / "nbody").glob("*.pt"))
    assert len(files) == 3
    b = nbody_dataset(6, 3, 3, seed=1, settings=settings, cache_dir=tmp_path)  # from the cache
    assert torch.equal(a["test"]["target"], b["test"]["target"])
    c = nbody_dataset(6, 3, 3, seed=2, settings=settings, cache_dir=tmp_path)
    assert not torch.equal(a["train"]["pos"], c["train"]["pos"])
    d = nbody_dataset(8, 3, 3, seed=1, settings=settings, cache_dir=tmp_path)  # other splits unchanged
    assert torch.equal(a["val"]["pos"], d["val"]["pos"])


def test_simulate_target_is_horizon_steps_after_input():
    settings = NBodySettings(burn_in=20, horizon=15)
    out = simulate(3, settings, generator=torch.Generator().manual_seed(0))
    assert out["target"].shape == (3, 5, 3)
    assert not torch.allclose(out["target"], out["pos"])
    assert torch.allclose(out["vel"].norm(dim=-1).mean(), torch.tensor(0.5), atol=0.3)


def test_missing_data_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist.pt"):
        nbody_dataset(path=tmp_path / "does_not_exist.pt")
