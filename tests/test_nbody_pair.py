"""NBodyPairTransformer, the LPS paper's n-body backbone: token layout, shapes, what it is
not equivariant to on its own, and S_n × E(3) once symmetrized."""

import pytest
import torch
from test_probabilistic import fixed_noise_error

import symtrain as st
from symtrain.actions import Fields, Nodes, Points, Vectors
from symtrain.models import NBodyPairTransformer
from symtrain.symmetrize.interfaces import ProductInterface

torch.set_num_threads(1)

SYM = st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), "points")


def data(b=4, n=5):
    g = torch.Generator().manual_seed(0)
    pos, vel = torch.randn(b, n, 3, generator=g) + 1, torch.randn(b, n, 3, generator=g)
    charge = torch.randint(0, 2, (b, n, 1), generator=g).float() * 2 - 1
    return tuple(t.double() for t in (pos, vel, charge))


def small(**kw):
    return NBodyPairTransformer(dim=16, layers=2, heads=2, **kw).double().eval()


def test_tokens_hold_particles_on_the_diagonal_and_pairs_off_it():
    pos, vel, charge = data()
    tok = small().tokens(pos, vel, charge)
    assert tok.shape == (4, 5, 5, 9)
    i, j = 1, 3
    assert torch.equal(tok[:, i, i, :7], torch.cat([pos[:, i], vel[:, i], charge[:, i]], -1))
    assert torch.equal(tok[:, i, i, 7:], torch.zeros(4, 2, dtype=tok.dtype))
    assert torch.equal(tok[:, i, j, :7], torch.zeros(4, 7, dtype=tok.dtype))
    assert torch.allclose(tok[:, i, j, 7], charge[:, i, 0] * charge[:, j, 0])
    assert torch.allclose(tok[:, i, j, 8], (pos[:, i] - pos[:, j]).pow(2).sum(-1))
    lps = small(charge_on_diagonal=False).tokens(pos, vel, charge)
    assert lps.shape == (4, 5, 5, 8)   # the LPS code's layout: 6 + 2 channels


def test_shapes_and_errors():
    model = small()
    out = model(*data())
    assert out.shape == (4, 5, 3) and out.dtype == torch.float64
    with pytest.raises(ValueError, match="num_nodes=5"):
        model(*data(n=6))
    assert NBodyPairTransformer(layers=1).encoder.layers[0].linear1.out_features == 64  # ff = dim


def test_backbone_is_not_equivariant_on_its_own():
    """Learnable slot embeddings: not permutation-equivariant; raw coordinates: not
    rotation- or translation-equivariant."""
    model, x = small(), data()
    for group in ("S_n", "O3", "E3"):
        sym = st.Symmetry(group, SYM.input, "points")
        assert st.equivariance_error(model, sym, x, samples=4).max > 1e-2, group
    pos, vel, charge = x
    shift = torch.tensor([3.0, -1.0, 2.0], dtype=pos.dtype)
    assert not torch.allclose(model(pos + shift, vel, charge), model(pos, vel, charge) + shift, atol=1e-3)


@pytest.mark.parametrize("canonical", [False, True], ids=["ps", "canonical"])
def test_symmetrized_backbone_is_exactly_sn_x_e3_equivariant(canonical):
    """PS with the LPS interface options, fixed noise; and the paper's canonicalization
    (the same interface, zero noise, one sample)."""
    itf = ProductInterface("S_n x E3", in_vectors=2, in_scalars=1, hidden=8, noise_on="vectors",
                           normalize=True, dropout=0.08)
    if canonical:
        model = st.ProbabilisticSymmetrization.canonicalization(small(), SYM, itf)
    else:
        model = st.ProbabilisticSymmetrization(small(), SYM, itf, samples=3)
    model = model.double().eval()
    assert fixed_noise_error(model, data()) < 1e-9
    if canonical:
        assert st.equivariance_error(model, None, data(), samples=4).max < 1e-9
