"""The ``atoms`` action: integer atom labels whose zeros are padding, declared to the
group as the node mask (padded molecules such as QM9's)."""

import pytest
import torch

import symtrain as st
from symtrain.actions import create_action

torch.set_num_threads(1)


def padded_molecules(counts, n, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.tensor(counts)
    mask = torch.arange(n)[None] < counts[:, None]
    pos = torch.randn(len(counts), n, 3, generator=gen, dtype=dtype)
    z = torch.randint(1, 10, (len(counts), n), generator=gen) * mask
    centroid = (pos * mask[..., None]).sum(1) / counts[:, None].to(dtype)
    return torch.where(mask[..., None], pos, centroid[:, None]), z


def symmetry(data="atoms"):
    return st.Symmetry("S_n x E3", input=create_action("fields", "points", data), output="trivial")


class Readout(torch.nn.Module):
    """A per-atom MLP on raw coordinates, summed over real atoms, plus the first atom's
    coordinates: neither rotation- nor permutation-invariant."""

    def __init__(self, dtype):
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(dtype)
        self.calls = 0

    def forward(self, pos, z):
        self.calls += pos.shape[0]
        h = self.mlp(torch.cat([pos, z[..., None].to(pos.dtype)], -1)).squeeze(-1)
        return (h * (z != 0)).sum(1) + pos[:, 0].sum(-1)


def random_element(pos, z, dtype, seed=1):
    """A random rotation-reflection, translation and permutation of the real atoms."""
    gen = torch.Generator().manual_seed(seed)
    b, n = z.shape
    q, _ = torch.linalg.qr(torch.randn(b, 3, 3, generator=gen, dtype=dtype))
    counts = (z != 0).sum(1)
    perm = torch.stack([torch.cat([torch.randperm(int(c), generator=gen), torch.arange(int(c), n)]) for c in counts])
    moved = torch.gather(pos, 1, perm[..., None].expand(-1, -1, 3)) @ q.transpose(1, 2)
    return moved + torch.randn(b, 1, 3, generator=gen, dtype=dtype), torch.gather(z, 1, perm)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frame_averaging_is_exact_with_one_call_per_padded_molecule(dtype):
    pos, z = padded_molecules([14, 8, 5, 9, 11], 14, dtype)
    base = Readout(dtype)
    model = st.FrameAveraging(base, symmetry())
    y = model(pos, z)
    assert base.calls == 5  # generic molecules: one element each, padding not averaged over
    moved = random_element(pos, z, dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model(*moved), y, **tol)
    # the base model alone fails the same check
    assert not torch.allclose(base(*moved), base(pos, z), **tol)


def test_undeclared_padding_is_counted_as_atoms():
    """The same molecules with ``z`` as plain node features: the padded slots are
    identical "atoms" whose permutations fix the input, and the frame averages over them
    (the cost the ``atoms`` action removes)."""
    pos, z = padded_molecules([6, 3], 6, torch.float64)
    base = Readout(torch.float64)
    st.FrameAveraging(base, symmetry("nodes"))(pos, z)
    assert base.calls >= 1 + 6  # 3! permutations of the second molecule's padding (batched to the largest frame)


def test_sampled_permutations_keep_padding_last():
    pos, z = padded_molecules([7, 2, 5], 7, torch.float32)
    sym = symmetry()
    for seed in range(5):
        g = sym.sample(sym.context((pos, z)), generator=torch.Generator().manual_seed(seed))
        moved_pos, moved_z = sym.act_input(g, (pos, z))
        assert torch.equal(moved_z != 0, z != 0)
        torch.testing.assert_close(torch.sort(moved_z, 1).values, torch.sort(z, 1).values)


@pytest.mark.parametrize("z,match", [
    (torch.tensor([[1.0, 6.0, 0.0]]), "integer atom labels"),
    (torch.tensor([[1, -1, 0]]), ">= 0"),
    (torch.tensor([[1, 0, 6]]), "padding between real nodes"),
    (torch.tensor([[1, 6, 0], [0, 0, 0]]), "no atoms"),
])
def test_bad_atom_labels_are_named(z, match):
    pos = torch.randn(z.shape[0], 3, 3)
    with pytest.raises(st.SymmetryError, match=match):
        symmetry().check_input((pos, z))



def test_atom_label_checks_do_not_read_values_under_vmap():
    """Under ``torch.func.vmap`` the labels' value checks step aside, as the mask's own
    check does (a data-dependent branch cannot run there); shapes are still checked, and
    eagerly the same labels are checked in full."""
    pos, z = padded_molecules([5, 3], 5, torch.float64)
    sym = symmetry()
    stacked = torch.stack([z, z])
    torch.func.vmap(lambda zz: (sym.check_input((pos, zz)), zz.sum())[1])(stacked)
    with pytest.raises(st.SymmetryError, match="integer atom labels"):
        torch.func.vmap(lambda zz: (sym.check_input((pos, zz.double())), zz.sum())[1])(stacked)
