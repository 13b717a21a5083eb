"""Interface networks of learned probabilistic symmetrization: each is exactly
equivariant, interface(h·x, h·ε) = h·interface(x, ε), for random h; the soft parts agree
with the hard elements; bad inputs give clear errors."""

import pytest
import torch

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, Mask, Nodes
from symtrain.groups.base import element_repeat
from symtrain.symmetrize.base import reference_tensor
from symtrain.symmetrize.interfaces import (PermutationInterface, log_sinkhorn, permutation_entropy,
                                            soft_sort_logits)

from test_symmetrizers import padded_adjacency, pyg_batch


def check_interface(interface, sym, x, k=3, atol=1e-5, exact=False):
    """interface(h·x, h·ε) == h∘interface(x, ε) for k noise draws and random h."""
    interface.attach(sym)
    ctx = sym.context(x)
    xs = sym.input.repeat(x, k, ctx)
    ctx_k = ctx.repeat(k)
    noise = interface.sample_noise(xs, ctx_k, 1.0)
    ref = reference_tensor(x)
    h = element_repeat(sym.sample(ctx, 1, dtype=ref.dtype if ref.is_floating_point() else None), k)
    g = interface(xs, noise, ctx_k)
    hx = sym.act_input(h, xs, ctx_k)
    g_h = interface(hx, interface.noise_action.act(sym.group, h, noise, ctx_k), sym.context(hx))
    expected = sym.group.compose(h, g)
    ok = sym.group.allclose(g_h, expected, atol=0.0 if exact else atol)
    assert bool(ok.all()), f"interface not equivariant on {int((~ok).sum())} of {ok.numel()} inputs"
    return g


def test_permutation_interface_nodes_is_equivariant():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    g = check_interface(PermutationInterface(in_features=4, hidden=16), sym, torch.randn(4, 6, 4), exact=True)
    assert g.dtype == torch.long and g.shape == (12, 6)


def test_permutation_interface_padded_graphs_is_equivariant_and_keeps_padding():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), st.actions.Trivial())
    adj, mask = padded_adjacency()
    g = check_interface(PermutationInterface(in_features=0, hidden=16), sym, (adj, mask), exact=True)
    mask_k = mask.repeat_interleave(3, 0)
    ar = torch.arange(mask.shape[1]).expand_as(mask_k)
    assert torch.equal(g[~mask_k], ar[~mask_k])


def test_permutation_interface_pyg_graph_is_equivariant():
    sym = st.Symmetry("S_n", Graph(positions=()), st.actions.GraphNodes())
    check_interface(PermutationInterface(in_features=3, hidden=16), sym, pyg_batch(), exact=True)


def test_interface_fails_when_noise_is_not_transformed():
    """The check above can fail: the same noise for h·x gives a different element."""
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    itf = PermutationInterface(in_features=1, hidden=16).attach(sym)
    x = torch.randn(8, 6, 1)
    ctx = sym.context(x)
    noise = itf.sample_noise(x, ctx, 1.0)
    h = sym.sample(ctx)
    g_h = itf(sym.act_input(h, x), noise, ctx)
    assert not bool(sym.group.allclose(g_h, sym.group.compose(h, itf(x, noise, ctx))).all())


def test_soft_permutation_matches_hard_and_is_doubly_stochastic():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), st.actions.Trivial())
    adj, mask = padded_adjacency()
    itf = PermutationInterface(in_features=0, hidden=16, tau=0.01).attach(sym)
    ctx = sym.context((adj, mask))
    rel = itf.relaxed((adj, mask), itf.sample_noise((adj, mask), ctx, 1.0), ctx, soft=True)
    soft = rel.soft[0]
    hard = sym.group.matrix(rel.element)
    assert torch.equal(soft.argmax(-1), hard.argmax(-1))  # the soft matrix peaks at the hard one
    assert torch.allclose(soft.sum(-1), torch.ones(4, 7), atol=1e-5)  # last normalisation (transposed)
    assert torch.allclose(soft.sum(-2), torch.ones(4, 7), atol=2e-2)  # 20 iterations
    assert rel.aux_loss.dim() == 0 and float(rel.aux_loss.detach()) >= 0
    # Without Sinkhorn, SoftSort peaks exactly at the hard permutation.
    itf.sinkhorn_iterations = 0
    rel = itf.relaxed((adj, mask), itf.sample_noise((adj, mask), ctx, 1.0), ctx, soft=True)
    assert torch.equal(rel.soft[0].argmax(-2), sym.group.matrix(rel.element).argmax(-2))


def test_sinkhorn_and_entropy_on_known_matrices():
    scores = torch.tensor([[0.3, -1.0, 2.0]])
    sort = log_sinkhorn(soft_sort_logits(scores, tau=1e-3))
    assert torch.allclose(sort, torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]]), atol=1e-6)
    assert float(permutation_entropy(sort)) < 1e-6
    uniform = torch.full((1, 3, 3), 1 / 3)
    assert float(permutation_entropy(uniform)) == pytest.approx(2 * torch.log(torch.tensor(3.0)).item(), rel=1e-5)


def test_entropy_penalty_has_finite_gradients_on_padded_graphs():
    """Padded rows of the soft matrix are exactly 0 off the diagonal; x log x must not
    turn them into NaN gradients (a training run on padded graphs stopped at step 0)."""
    from symtrain.symmetrize.interfaces.permutation import relaxed_permutation

    scores = torch.randn(3, 7, requires_grad=True)
    mask = torch.arange(7)[None] < torch.tensor([[7], [5], [4]])
    _, _, loss = relaxed_permutation(scores, mask, 0.1, 20, 0.1, True)
    loss.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0


def test_permutation_interface_errors():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    itf = PermutationInterface(in_features=2, hidden=8, max_nodes=5).attach(sym)
    x = torch.randn(2, 6, 2)
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="max_nodes"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    x = torch.randn(2, 4, 3)
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="in_features"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    x = torch.randn(2, 4, 2)
    x[0, 1, 0] = float("nan")
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="NaN"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    with pytest.raises(st.SymmetryError, match="O3"):
        PermutationInterface(in_features=3).attach(st.Symmetry("O3", st.actions.Points(), st.actions.Points()))
    with pytest.raises(ValueError, match="attach"):
        PermutationInterface(in_features=2)(torch.randn(2, 4, 2))


# --- rotations and products --------------------------------------------------------------
from symtrain.actions import Points, Vectors  # noqa: E402
from symtrain.symmetrize.interfaces import ProductInterface, RotationInterface, gram_schmidt  # noqa: E402


def nbody(b=4, n=5, dtype=None):
    return (torch.randn(b, n, 3, dtype=dtype) + 2, torch.randn(b, n, 3, dtype=dtype),
            torch.randn(b, n, 1, dtype=dtype))


@pytest.mark.parametrize("group", ["O3", "SO3", "E3", "SE3", "SO2"])
def test_rotation_interface_is_equivariant(group, dtype):
    d = 2 if group.endswith("2") else 3
    sym = st.Symmetry(group, Points(), Points())
    # Gram–Schmidt amplifies float32 rounding when the pooled vectors are nearly
    # parallel (random weights), so float32 is held to a looser bound.
    g = check_interface(RotationInterface(group).to(dtype), sym, torch.randn(4, 7, d, dtype=dtype),
                        atol=1e-9 if dtype == torch.float64 else 1e-3)
    rot = g[0] if isinstance(g, tuple) else g
    eye = torch.eye(d, dtype=dtype).expand_as(rot)
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-5)
    if group.startswith(("SO", "SE")):
        assert torch.allclose(torch.linalg.det(rot), torch.ones(rot.shape[0], dtype=dtype), atol=1e-5)


# The LPS n-body setting: noise on the vectors themselves, kNN on the noisy vectors,
# L2-normalised scores, dropout (off in eval mode, where the checks run).
LPS_OPTIONS = {"noise_on": "vectors", "normalize": True, "dropout": 0.08}


@pytest.mark.parametrize("options", [{}, LPS_OPTIONS], ids=["channel", "lps"])
@pytest.mark.parametrize("group", ["S_n x O3", "S_n x E3", "S_n x SO3"])
def test_product_interface_is_equivariant(group, options, dtype):
    sym = st.Symmetry(group, Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    itf = ProductInterface(group, in_vectors=2, in_scalars=1, hidden=16, **options).to(dtype).eval()
    check_interface(itf, sym, nbody(dtype=dtype), atol=1e-9 if dtype == torch.float64 else 1e-3)


@pytest.mark.parametrize("group", ["O3", "E3", "SO3"])
def test_rotation_interface_noise_on_vectors_is_equivariant(group):
    sym = st.Symmetry(group, Fields(Points(), Vectors()), Fields(Points(), Vectors()))
    itf = RotationInterface(group, in_vectors=2, hidden=16, noise_on="vectors").double()
    x = tuple(t.double() for t in (torch.randn(4, 6, 3) + 2, torch.randn(4, 6, 3)))
    check_interface(itf, sym, x, atol=1e-9)


def test_noise_on_vectors_moves_the_vectors_and_zero_noise_is_a_canonicalization():
    sym = st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    itf = ProductInterface("S_n x E3", in_vectors=2, in_scalars=1, hidden=16, noise_on="vectors").double()
    itf.attach(sym).eval()
    x = nbody(dtype=torch.float64)
    ctx = sym.context(x)
    noise = itf.sample_noise(x, ctx, 1.0)
    assert isinstance(noise, tuple) and [e.shape for e in noise] == [(4, 5, 3)] * 2
    # Noise on the vectors = the same input with its vectors moved by the noise (for a
    # draw with no mean over the nodes, which the centring would remove).
    noise = (noise[0] - noise[0].mean(1, keepdim=True), noise[1])
    moved = (x[0] + noise[0], x[1] + noise[1], x[2])
    zero = tuple(torch.zeros_like(e) for e in noise)
    rot = itf(x, noise, ctx)[1][0]
    assert torch.allclose(rot, itf(moved, zero, sym.context(moved))[1][0], atol=1e-10)
    assert not torch.allclose(rot, itf(x, zero, ctx)[1][0])
    # noise_scale 0: one deterministic element (the paper's canonicalization).
    a, b = itf(x, itf.sample_noise(x, ctx, 0.0), ctx), itf(x, None, ctx)
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1][0], b[1][0])


def test_normalized_scores_keep_the_hard_permutation_and_change_the_soft_one():
    sym = st.Symmetry("S_n x O3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    torch.manual_seed(3)
    plain = ProductInterface("S_n x O3", in_vectors=2, in_scalars=1, hidden=16, noise_on="vectors").double()
    normed = ProductInterface("S_n x O3", in_vectors=2, in_scalars=1, hidden=16, noise_on="vectors",
                              normalize=True).double()
    normed.load_state_dict(plain.state_dict())
    x = nbody(dtype=torch.float64)
    ctx = sym.context(x)
    noise = plain.attach(sym).sample_noise(x, ctx, 1.0)
    a = plain.relaxed(x, noise, ctx, soft=True)
    b = normed.attach(sym).relaxed(x, noise, ctx, soft=True)
    assert torch.equal(a.element[0], b.element[0])
    assert not torch.allclose(a.soft[0], b.soft[0])


def test_vector_dropout_drops_whole_vectors_and_commutes_with_rotations():
    from symtrain.symmetrize.interfaces.rotation import VNDropout

    drop = VNDropout(0.5).train()
    v = torch.randn(8, 5, 16, 3, dtype=torch.float64)
    h = st.groups.O(3).sample(1, dtype=torch.float64)[0]
    torch.manual_seed(1)
    a = drop(v) @ h.T
    torch.manual_seed(1)
    b = drop(v @ h.T)
    assert torch.allclose(a, b, atol=1e-12)
    kept = a.norm(dim=-1) > 0
    assert 0.3 < float(kept.double().mean()) < 0.7
    assert torch.allclose(a[kept].norm(dim=-1), 2 * v[kept].norm(dim=-1))
    assert torch.equal(drop.eval()(v), v)
    with pytest.raises(ValueError, match=r"p: must be a number in \[0, 1\), got 1.0"):
        VNDropout(1.0)


def test_gram_schmidt_is_equivariant_and_proper():
    v = torch.randn(6, 3, 3, dtype=torch.float64)
    h = st.groups.O(3).sample(6, dtype=torch.float64)
    assert torch.allclose(gram_schmidt(h @ v), h @ gram_schmidt(v), atol=1e-12)
    r = gram_schmidt(v, proper=True)
    assert torch.allclose(torch.linalg.det(r), torch.ones(6, dtype=torch.float64))
    # The proper version is not O(3)-equivariant: a reflection cannot be followed.
    flip = torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64)).expand(6, 3, 3)
    assert not torch.allclose(gram_schmidt(flip @ v, proper=True), flip @ r)


def test_rotation_interface_errors():
    sym = st.Symmetry("O3", Fields(Points(), Vectors()), Points())
    itf = RotationInterface("O3", in_vectors=1).attach(sym)
    x = (torch.randn(2, 5, 3), torch.randn(2, 5, 3))
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="in_vectors"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    with pytest.raises(st.SymmetryError, match="S_n"):
        RotationInterface("O3").attach(st.Symmetry("S_n x O3", Points(), Points()))
    with pytest.raises(st.SymmetryError, match="rotation group"):
        RotationInterface("S_n")
    with pytest.raises(st.SymmetryError, match="ProductInterface is for"):
        ProductInterface("O3")
    with pytest.raises(ValueError, match="noise_on"):
        RotationInterface("O3", noise_on="input")
    sym2 = st.Symmetry("O3", Fields(Points(), Vectors()), Points())
    itf2 = RotationInterface("O3", in_vectors=2, noise_on="vectors").attach(sym2)
    with pytest.raises(st.SymmetryError, match=r"must be 2 tensor\(s\)"):
        itf2(x, torch.zeros(2, 5, 3), ctx)


# --- images (escnn) --------------------------------------------------------------------------
from symtrain.actions import Image  # noqa: E402
from symtrain.groups.planar import rotation_matrix_2d  # noqa: E402
from symtrain.symmetrize.interfaces import ImageInterface  # noqa: E402


@pytest.mark.parametrize("group", ["C4", "D4", "D1"])
def test_image_interface_is_equivariant(group):
    sym = st.Symmetry(group, Image(), st.actions.Trivial())
    g = check_interface(ImageInterface(group, in_channels=2, hidden=2), sym, torch.randn(4, 2, 9, 9), exact=True)
    assert g.dtype == torch.long


def test_image_interface_soft_distribution_matches_hard():
    sym = st.Symmetry("D4", Image(), st.actions.Trivial())
    itf = ImageInterface("D4", in_channels=1, hidden=2, entropy_weight=0.5).attach(sym)
    x = torch.randn(3, 1, 9, 9)
    ctx = sym.context(x)
    rel = itf.relaxed(x, itf.sample_noise(x, ctx, 1.0), ctx, soft=True)
    elems = sym.group.elements()
    assert torch.equal(elems[rel.soft[0].argmax(1)], rel.element)
    assert float(rel.aux_loss.detach()) > 0


def test_so2_image_interface_follows_quarter_turns():
    """SO(2) on a square grid: exact only for multiples of 90°, where bilinear
    resampling hits pixel centres."""
    sym = st.Symmetry("SO2", Image("bilinear"), st.actions.Trivial())
    itf = ImageInterface("SO2", in_channels=1, hidden=2).attach(sym)
    x = torch.randn(4, 1, 9, 9)
    ctx = sym.context(x)
    noise = itf.sample_noise(x, ctx, 1.0)
    h = rotation_matrix_2d(torch.randint(4, (4,)) * (torch.pi / 2))
    g = itf(x, noise, ctx)
    g_h = itf(sym.act_input(h, x), itf.noise_action.act(sym.group, h, noise), ctx)
    assert torch.allclose(g_h, h @ g, atol=1e-4)
    assert not torch.allclose(itf(sym.act_input(h, x), noise, ctx), h @ g, atol=1e-2)


def test_image_interface_errors():
    with pytest.raises(st.SymmetryError, match="supports C_n, D_n and SO2"):
        ImageInterface("O3")
    sym = st.Symmetry("C4", Image(), st.actions.Trivial())
    itf = ImageInterface("C4", in_channels=3, hidden=2).attach(sym)
    x = torch.randn(2, 1, 9, 9)
    with pytest.raises(st.SymmetryError, match="in_channels"):
        itf(x, torch.zeros(2, 1, 9, 9), sym.context(x))


def test_rotation_and_product_interfaces_bad_inputs():
    sym = st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    itf = ProductInterface("S_n x E3", in_vectors=2, in_scalars=1, max_nodes=4).attach(sym)
    x = nbody(n=5)
    ctx = sym.context(x)
    with pytest.raises(st.SymmetryError, match="max_nodes"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    itf.max_nodes = None
    x[0][0, 1, 2] = float("nan")
    with pytest.raises(st.SymmetryError, match="NaN"):
        itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    with pytest.raises(st.SymmetryError, match="in_scalars"):
        ProductInterface("S_n x E3", in_vectors=2, in_scalars=2).attach(sym)(nbody(), torch.zeros(4, 5, 3))
    assert "in_vectors=2" in repr(itf)


def test_rotation_interface_padded_point_sets(dtype):
    """Padded clouds (Fields(Points, Mask)): the padding does not move the element."""
    sym = st.Symmetry("E3", Fields(Points(), Mask()), Fields(Points(), Mask()))
    pts = torch.randn(3, 6, 3, dtype=dtype)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    itf = RotationInterface("E3", hidden=16).to(dtype).attach(sym)
    ctx = sym.context((pts, mask))
    noise = itf.sample_noise((pts, mask), ctx, 1.0)
    rot, t = itf((pts, mask), noise, ctx)
    junk = torch.where(mask[..., None], pts, torch.randn_like(pts) * 100)
    rot2, t2 = itf((junk, mask), noise, sym.context((junk, mask)))
    assert torch.allclose(rot, rot2, atol=1e-5) and torch.allclose(t, t2, atol=1e-5)
    check_interface(itf, sym, (pts, mask), atol=1e-9 if dtype == torch.float64 else 1e-3)
