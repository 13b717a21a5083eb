"""The equivariant references of the molecule recipes (PyG SchNet, egnn-pytorch EGNN on
dense molecules; forces −∂E/∂x), the padding convention (atomic number 0), and the
DGCNN point-cloud model (PyG EdgeConv on a dense k-NN graph)."""

import pytest
import torch

from symtrain import Symmetry
from symtrain.actions import create_action
from symtrain.metrics import equivariance_error
from symtrain.models import create_model
from symtrain.models.dgcnn import dense_knn

torch.set_num_threads(1)

SMALL = {"molecule_schnet": dict(hidden=16, filters=16, interactions=2, gaussians=12),
         "molecule_egnn": dict(dim=16, layers=3, m_dim=8)}


def molecules(dtype, b=4, n=7):
    gen = torch.Generator().manual_seed(0)
    pos = 1.2 * torch.randn(b, n, 3, generator=gen, dtype=dtype)
    z = torch.tensor([6, 6, 8, 1, 1, 1, 7]).expand(b, n).clone()
    return pos, z


def reference(name, dtype):
    torch.manual_seed(1)
    model = create_model(name, **SMALL[name]).to(dtype)
    if name == "molecule_egnn":  # egnn-pytorch draws small weights: test at a generic point,
        for m in model.modules():  # where the forces are far above the tolerance
            if isinstance(m, torch.nn.Linear):
                m.reset_parameters()
    return model


@pytest.mark.parametrize("name", list(SMALL))
def test_references_are_e3_and_permutation_equivariant_and_the_transformer_is_not(name, dtype):
    sym = Symmetry("S_n x E3", input=create_action("fields", "points", "nodes"),
                   output=create_action("fields", "trivial", "vectors"))
    x = molecules(dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    model = reference(name, dtype)
    energy, forces = model(*x)
    assert forces.abs().mean() > 1e-3 and energy.std() > 1e-4  # not trivially constant
    assert equivariance_error(model, sym, x, samples=4).max < tol
    plain = create_model("molecule_transformer", dim=16, layers=1, heads=2, forces="gradient").to(dtype)
    assert equivariance_error(plain, sym, x, samples=4).mean > 1e-2


@pytest.mark.parametrize("name", [*SMALL, "molecule_transformer"])
def test_padding_atoms_change_nothing(name):
    dtype = torch.float64
    pos, z = molecules(dtype)
    model = reference(name, dtype) if name in SMALL else \
        create_model("molecule_transformer", dim=16, layers=1, heads=2, forces="gradient").to(dtype)
    model.eval()
    energy, forces = model(pos, z)
    padded_pos = torch.cat([pos, torch.randn(4, 3, 3, dtype=dtype)], 1)
    padded_z = torch.cat([z, torch.zeros(4, 3, dtype=torch.long)], 1)
    e2, f2 = model(padded_pos, padded_z)
    torch.testing.assert_close(e2, energy)
    torch.testing.assert_close(f2[:, :7], forces)
    assert torch.equal(f2[:, 7:], torch.zeros_like(f2[:, 7:]))


def test_schnet_forces_are_minus_the_energy_gradient_and_cutoff_cuts():
    model = reference("molecule_schnet", torch.float64).eval()
    pos, z = molecules(torch.float64, b=2)
    _, forces = model(pos, z)
    bump = torch.zeros_like(pos)
    bump[1, 3, 2] = 1e-6
    slope = (model(pos + bump, z)[0][1] - model(pos - bump, z)[0][1]) / 2e-6
    torch.testing.assert_close(-slope, forces[1, 3, 2], atol=1e-7, rtol=1e-6)
    # an atom moved beyond the cutoff of all others no longer interacts
    far = pos.clone()
    far[:, 0] += 100.0
    alone = create_model("molecule_schnet", **SMALL["molecule_schnet"], forces="none").double()
    alone.load_state_dict(model.state_dict())
    split = alone(far, z)
    parts = alone(far[:, 1:], z[:, 1:]) + alone(far[:, :1], z[:, :1])
    torch.testing.assert_close(split, parts)


def test_dense_knn_matches_brute_force_and_dgcnn_is_permutation_invariant(dtype):
    x = torch.randn(2, 9, 3, dtype=dtype)
    edges = dense_knn(x, 3)
    assert edges.shape == (2, 2 * 9 * 3)
    for target in (0, 13):
        sources = edges[0, edges[1] == target]
        b, i = divmod(target, 9)
        expect = (x[b] - x[b, i]).norm(dim=-1).argsort()[:3] + 9 * b
        assert set(sources.tolist()) == set(expect.tolist())
    torch.manual_seed(0)
    model = create_model("dgcnn", num_classes=4, hidden=8, layers=2, k=4, embed=16).to(dtype).eval()
    pts = torch.randn(3, 24, 3, dtype=dtype)
    perm = torch.randperm(24)
    torch.testing.assert_close(model(pts[:, perm]), model(pts))
    so3 = Symmetry("SO3", input="points", output="trivial")
    assert equivariance_error(model, so3, pts, samples=4).mean > 1e-3  # not rotation-invariant
