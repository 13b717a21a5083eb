"""The MD17 and ModelNet backbones: the molecule transformer's two force heads, and
PointNet made SO(3)-invariant by frame averaging (the plain model is not)."""

import pytest
import torch

from symtrain import Symmetry
from symtrain.metrics import equivariance_error
from symtrain.models import create_model
from symtrain.symmetrize import create_symmetrizer

torch.set_num_threads(1)


def test_gradient_forces_are_minus_the_energy_gradient_even_in_eval(dtype):
    model = create_model("molecule_transformer", dim=16, layers=1, heads=2, forces="gradient").to(dtype).eval()
    pos = torch.randn(3, 5, 3, dtype=dtype)
    z = torch.tensor([6, 6, 8, 1, 1]).expand(3, 5)
    with torch.no_grad():
        energy, forces = model(pos, z)
    assert energy.shape == (3,) and forces.shape == (3, 5, 3)
    eps = 1e-3 if dtype == torch.float32 else 1e-6
    bump = torch.zeros_like(pos)
    bump[1, 2, 0] = eps
    with torch.no_grad():
        slope = (model(pos + bump, z)[0][1] - model(pos - bump, z)[0][1]) / (2 * eps)
    torch.testing.assert_close(-slope, forces[1, 2, 0], atol=2e-2 if dtype == torch.float32 else 1e-7, rtol=1e-3)


def test_direct_forces_are_trained_through_and_bad_atoms_are_refused():
    model = create_model("molecule_transformer", dim=16, layers=1, heads=2, max_z=9)
    energy, forces = model(torch.randn(2, 4, 3), torch.tensor([[1, 6, 8, 1]] * 2))
    (energy.sum() + forces.sum()).backward()
    assert model.force_head.weight.grad is not None
    with pytest.raises(ValueError, match="max_z"):
        model(torch.randn(1, 2, 3), torch.tensor([[1, 17]]))
    with pytest.raises(ValueError, match="forces"):
        create_model("molecule_transformer", forces="both")


def test_frame_averaged_pointnet_is_rotation_invariant_and_plain_is_not(dtype):
    sym = Symmetry("SO3", input="points", output="trivial")
    torch.manual_seed(0)
    base = create_model("pointnet", num_classes=5, hidden=16, layers=2).to(dtype)
    wrapped = create_symmetrizer("frame_averaging", base, sym)
    x = torch.randn(6, 40, 3, dtype=dtype) * torch.tensor([1.0, 0.6, 0.3], dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert equivariance_error(wrapped, sym, x, samples=4).max < tol
    assert equivariance_error(base, sym, x, samples=4).mean > 1e-2
