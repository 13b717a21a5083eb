"""Minimal frames (Lin et al., ICML 2024) for O(d), SO(d), E(d), SE(d): the QR frame is
exact on generic and degenerate clouds, batched with masks, differentiable, and the
wrappers built on it call the backbone once per input."""

import pytest
import torch

from symtrain.groups.orthogonal import haar_orthogonal
from symtrain.symmetrize.qr_frame import cofactor_vector, qr_frame


def random_rotations(b, d, proper, dtype):
    r = haar_orthogonal(b, d, dtype=dtype)
    if proper:
        r[:, :, 0] = r[:, :, 0] * torch.linalg.det(r).sign()[:, None]
    return r


def degenerate_clouds(d, dtype, b=4, n=7):
    """Families of rank-deficient / symmetric clouds ``[b, n, d]`` (built in ``dtype``)."""
    g = torch.Generator().manual_seed(1)
    planar = torch.randn(b, n, d, generator=g, dtype=dtype)
    planar[..., -1] = 0
    line = torch.randn(b, n, 1, generator=g, dtype=dtype) * torch.randn(b, 1, d, generator=g, dtype=dtype)
    repeated = torch.randn(b, 1, d, generator=g, dtype=dtype).expand(b, n, d).clone()
    return {"planar": planar, "line": line, "repeated": repeated,
            "zero": torch.zeros(b, n, d, dtype=dtype)}


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("proper", [False, True], ids=["O", "SO"])
def test_qr_frame_is_equivariant(d, proper, dtype):
    eps = torch.finfo(dtype).eps
    clouds = {"generic": torch.randn(5, 7, d, dtype=dtype), **degenerate_clouds(d, dtype)}
    ranks = {"generic": d, "planar": d - 1, "line": 1, "repeated": 1, "zero": 0}
    for name, x in clouds.items():
        b = x.shape[0]
        r = random_rotations(b, d, proper, dtype)
        q, rank = qr_frame(x, proper=proper)
        q2, rank2 = qr_frame(x @ r.transpose(-1, -2), proper=proper)
        assert q.dtype == dtype and q.shape == (b, d, d)
        assert rank.tolist() == [ranks[name]] * b == rank2.tolist(), name
        assert (q2 - r @ q).abs().max() < 100 * eps, name
        # orthonormal columns up to the rank; under SO(d) a full frame from rank d - 1
        full = d if (rank[0] == d or (proper and rank[0] == d - 1)) else int(rank[0])
        eye = torch.diag_embed((torch.arange(d) < full).to(dtype)).expand(b, d, d)
        assert (q.transpose(-1, -2) @ q - eye).abs().max() < 100 * eps, name
        if proper and full == d:
            assert torch.allclose(torch.linalg.det(q), torch.ones(b, dtype=dtype))


def test_qr_frame_has_positive_diagonal_on_its_rows():
    """Q is the positive-diagonal QR of the chosen rows: their coordinates ``Qᵀ p`` are
    upper triangular with a positive diagonal."""
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    q, _ = qr_frame(x, pivot=1e-9)  # pivot ~ 0: MFA's rule, the first independent rows
    coords = x[:, :3] @ q  # rows: coordinates of the first 3 points
    assert (coords.triu(1).abs() < 1e-12).all()
    assert (torch.diagonal(coords, dim1=-2, dim2=-1) > 0).all()


def test_planar_cloud_under_so3_is_one_proper_rotation():
    """Rank d - 1 under SO(d): the completion is the cross product (MFA's code appends a
    fixed axis here, which is not equivariant)."""
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    x[..., 2] = 0
    x = x @ random_rotations(6, 3, False, torch.float64).transpose(-1, -2)  # planes through 0
    q, rank = qr_frame(x, proper=True)
    assert (rank == 2).all()
    assert torch.allclose(q[..., 2], torch.linalg.cross(q[..., 0], q[..., 1]))
    m = torch.randn(4, 5, 4, dtype=torch.float64)
    v = cofactor_vector(m)
    assert torch.allclose(torch.linalg.det(torch.cat([m, v[..., None]], -1)), (v * v).sum(-1))
    assert (v[:, None, :] @ m).abs().max() < 1e-12


def test_qr_frame_masks_rows_of_each_sample():
    x = torch.randn(4, 6, 3)
    sizes = torch.tensor([6, 2, 1, 4])
    mask = torch.arange(6)[None] < sizes[:, None]
    junk = x.clone()
    junk[~mask] = 1e6  # padding values must not matter
    q, rank = qr_frame(junk, mask)
    assert rank.tolist() == [3, 2, 1, 3]
    for i, n in enumerate(sizes.tolist()):
        qi, _ = qr_frame(x[i:i + 1, :n])
        assert torch.allclose(q[i], qi[0], atol=1e-6)


def test_qr_frame_scale_free_tolerance_and_gradients():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert torch.allclose(qr_frame(x * 1e-9)[0], qr_frame(x)[0])
    line = torch.randn(2, 5, 1, dtype=torch.float64) * torch.randn(2, 1, 3, dtype=torch.float64)
    assert qr_frame(line * 1e-9)[1].tolist() == [1, 1]
    x.requires_grad_(True)
    torch.autograd.gradcheck(lambda p: qr_frame(p, proper=True)[0], (x,))


# --- the wrappers on minimal frames -------------------------------------------------------
import symtrain as st  # noqa: E402
from symtrain.actions import Fields, Mask, Points, Vectors  # noqa: E402
from symtrain.groups.base import element_take  # noqa: E402
from tests.models import PointMLP  # noqa: E402


class Counting(torch.nn.Module):
    """A base model that counts the inputs (rows of its batch) it is called on."""

    def __init__(self, base):
        super().__init__()
        self.base, self.rows, self.calls = base, 0, 0

    def forward(self, *x):
        self.calls += 1
        self.rows += x[0].shape[0]
        return self.base(*x)


class MaskedPointMLP(torch.nn.Module):
    """``(pos [B, N, d], mask [B, N]) -> [B, N, d]``: a dense layer over the real points."""

    def __init__(self, n, d):
        super().__init__()
        self.mlp = PointMLP(n, d, d)

    def forward(self, pos, mask):
        m = mask[..., None].to(pos.dtype)
        return self.mlp(pos * m) * m


def shapes(d, dtype):
    """Generic and degenerate clouds of 8 points in ``d`` dimensions."""
    g = torch.Generator().manual_seed(2)
    out = {"generic": torch.randn(3, 8, d, generator=g, dtype=dtype)}
    out.update({k: v[:3, :8] for k, v in degenerate_clouds(d, dtype, b=3, n=8).items()})
    if d == 3:
        cube = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], dtype=dtype)
        tetra = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=dtype)
        square = torch.tensor([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], dtype=dtype)
        out["cube"] = cube[None].expand(3, 8, 3) + torch.tensor([0.0, 2.0, -1.0], dtype=dtype)[:, None, None]
        out["tetrahedron"] = tetra.repeat(2, 1)[None].expand(3, 8, 3).clone()
        out["square"] = square.repeat(2, 1)[None].expand(3, 8, 3).clone()
    return out


GROUPS = ["O2", "SO2", "O3", "SO3", "E3", "SE3", "O4", "SO4"]


@pytest.mark.parametrize("group", GROUPS)
def test_minimal_frames_are_exact_with_one_call(group, dtype):
    d = int(group[-1])
    sym = st.Symmetry(group, Points(), Points())
    tol = 1e-5 if dtype == torch.float32 else 1e-11
    for name, x in shapes(d, dtype).items():
        base = Counting(PointMLP(8, d, d).to(dtype))
        model = st.FrameAveraging(base, sym)  # minimal frames are the default
        with torch.no_grad():
            model(x)
        assert base.calls == 1 and base.rows == x.shape[0], (name, base.rows)  # one call per input
        err = st.equivariance_error(model, sym, x, samples=3)
        assert err.max < tol, (name, err)
        if name == "generic":  # the same check catches a model that is not equivariant
            assert st.equivariance_error(base.base, sym, x, samples=3).max > 1e-2


@pytest.mark.parametrize("group", ["O3", "E3", "SO3"])
def test_square_pyramid_is_not_on_the_pivot_threshold(group, dtype):
    """A square pyramid of apex height 1.5: after the first column its apex and opposite
    base vertex have residuals in the ratio 0.5 exactly, so a pivot ratio of 0.5 is a tie
    that rounding breaks differently after a rotation. The pivot ratio π/6 is irrational:
    no tie on such shapes, and the minimal frame is exact there."""
    from symtrain.symmetrize.qr_frame import PIVOT

    pyramid = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1.5]], dtype=dtype)
    x = pyramid[None].expand(16, 5, 3).clone()
    sym = st.Symmetry(group, Points(), Points())
    model = st.FrameAveraging(PointMLP(5, 3, 3).to(dtype), sym)
    assert st.equivariance_error(model, sym, x, samples=4).max < (1e-5 if dtype == torch.float32 else 1e-11)
    centred = pyramid - pyramid.mean(0)
    rot = haar_orthogonal(64, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    moved = centred @ rot.transpose(1, 2)
    for pivot, tied in ((0.5, True), (PIVOT, False)):
        q, _ = qr_frame(centred[None], pivot=pivot)
        q_moved, _ = qr_frame(moved, pivot=pivot)
        assert ((q_moved - rot @ q).abs().amax((1, 2)) > 1e-2).any() == tied


@pytest.mark.parametrize("group", ["SO3", "E3"])
def test_minimal_canonicalization_is_the_minimal_frame(group):
    """For O(d)-type factors the minimal frame has one element on every input, so the
    default canonicalizer gives frame averaging's output with one backbone call."""
    sym = st.Symmetry(group, Points(), Points())
    base = Counting(PointMLP(8, 3, 3))
    canon, fa = st.Canonicalization(base, sym), st.FrameAveraging(base, sym)
    for name, x in shapes(3, torch.float32).items():
        base.rows = 0
        y = canon(x)
        assert base.rows == x.shape[0] and torch.equal(y, fa(x)), name


def test_padded_clouds_of_different_sizes(dtype):
    sym = st.Symmetry("E3", Fields(Points(), Mask()), Points())
    pts = torch.randn(4, 6, 3, dtype=dtype)
    sizes = torch.tensor([6, 4, 2, 1])
    mask = torch.arange(6)[None] < sizes[:, None]
    model = st.FrameAveraging(MaskedPointMLP(6, 3).to(dtype), sym)
    err = st.equivariance_error(model, sym, (pts, mask), samples=4)
    assert err.max < (1e-5 if dtype == torch.float32 else 1e-11), err
    junk = torch.where(mask[..., None], pts, torch.randn_like(pts) * 100)
    y, y_junk = model(pts, mask), model(junk, mask)
    assert torch.allclose(y[mask], y_junk[mask], atol=1e-5)


def test_rank_deficient_outputs_lie_in_the_span():
    """Collinear points under O(3): the stabiliser O(2) about the line is continuous; the
    frame projects onto the span, so an equivariant vector output lies along the line,
    as the average over that stabiliser would."""
    sym = st.Symmetry("O3", Points(), Vectors())
    line = torch.randn(2, 8, 1, dtype=torch.float64) * torch.randn(2, 1, 3, dtype=torch.float64)
    model = st.FrameAveraging(PointMLP(8, 3, 3).to(torch.float64), sym)
    y = model(line)
    direction = line[:, :1] / line[:, :1].norm(dim=-1, keepdim=True)
    along = (y * direction).sum(-1, keepdim=True) * direction
    assert torch.allclose(y, along, atol=1e-12) and y.abs().max() > 1e-3


def test_planar_cloud_under_so3_keeps_the_normal():
    """Rank d - 1 under SO(3): the frame is a proper rotation (no projection), so outputs
    can leave the plane, and the wrapper is exact."""
    sym = st.Symmetry("SO3", Points(), Vectors())
    x = torch.randn(3, 8, 3, dtype=torch.float64)
    x[..., 2] = 0
    model = st.FrameAveraging(PointMLP(8, 3, 3).to(torch.float64), sym)
    assert model(x)[..., 2].abs().max() > 1e-3
    assert st.equivariance_error(model, sym, x, samples=8).max < 1e-11


def test_named_frames_and_gradients():
    sym = st.Symmetry("E3", Points(), Points())
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    base = Counting(PointMLP(8, 3, 3).to(torch.float64))
    st.FrameAveraging(base, sym, frames="pca")(x)
    assert base.rows == 2 * 8  # PCA: all 2^3 sign flips
    with pytest.raises(st.SymmetryError, match="unknown frame kind.*'minimal'"):
        st.FrameAveraging(base, sym, frames="minmal")
    with pytest.raises(st.SymmetryError, match="canonicalizer"):
        st.Canonicalization(base, sym, canonicalizer="bogus")
    with pytest.raises(st.SymmetryError, match="frames: expected a name"):
        st.FrameAveraging(base, sym, frames=3)
    model = st.FrameAveraging(PointMLP(4, 3, 3, hidden=8).to(torch.float64), sym)
    torch.autograd.gradcheck(model, (x[:1, :4].clone().requires_grad_(True),))


@pytest.mark.parametrize("group", ["O3", "SE3", "C4", "S_n x E3"])
def test_apply_repeated_equals_repeat_then_apply(group, dtype):
    """The actions' fast path (one product with all k elements) gives the copies exactly."""
    from symtrain.actions.base import Action

    single = group in ("O3", "SE3")  # one vector per sample: no node axis for S_n
    sym = st.Symmetry(group, Fields(Points(), Vectors(), *([Vectors(nodes=False)] if single else [])),
                      "trivial")
    d = 2 if group == "C4" else 3
    x = (torch.randn(3, 5, d, dtype=dtype), torch.randn(3, 5, d, dtype=dtype))
    if single:
        x = x + (torch.randn(3, d, dtype=dtype),)
    ctx = sym.context(x)
    g = sym.sample(ctx, 4)
    fast = sym.input.apply_repeated(sym.group, g, x, 4, ctx)
    slow = Action.apply_repeated(sym.input, sym.group, g, x, 4, ctx)
    for a, b in zip(fast, slow, strict=False):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("group", ["O3", "SE3", "C4", "S_n x E3"])
def test_act_mean_equals_act_then_weighted_mean(group, dtype):
    """The output side's fast path (one contraction over copies and axes) gives the moved,
    weighted average exactly, with weights of 0 and unequal weights, and gradients equal
    to the act-then-mean path's; a wrong element count is refused like act's."""
    from symtrain.actions.base import Action

    single = group in ("O3", "SE3")
    sym = st.Symmetry(group, "trivial", Fields(Points(), Vectors(), *([Vectors(nodes=False)] if single else [])))
    d = 2 if group == "C4" else 3
    b, k = 3, 4
    y = [torch.randn(b * k, 5, d, dtype=dtype), torch.randn(b * k, 5, d, dtype=dtype)]
    if single:
        y.append(torch.randn(b * k, d, dtype=dtype))
    y = tuple(t.requires_grad_(True) for t in y)
    ctx = st.Symmetry(group, Points(), "trivial").context(torch.randn(b, 5, d, dtype=dtype))
    g = sym.sample(ctx, k)
    weights = torch.rand(b, k, dtype=dtype)
    weights[0, 1] = 0.0
    weights = weights / weights.sum(1, keepdim=True)
    fast = sym.output.act_mean(sym.group, g, y, weights, ctx.repeat(k), ctx)
    slow = Action.act_mean(sym.output, sym.group, g, y, weights, ctx.repeat(k), ctx)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for a, s in zip(fast, slow, strict=True):
        assert a.shape == s.shape == (b, *a.shape[1:]) and torch.allclose(a, s, atol=tol)
    probe = [torch.randn_like(a) for a in fast]
    g_fast = torch.autograd.grad(sum((a * p).sum() for a, p in zip(fast, probe, strict=True)), y)
    g_slow = torch.autograd.grad(sum((a * p).sum() for a, p in zip(slow, probe, strict=True)), y)
    for a, s in zip(g_fast, g_slow, strict=True):
        assert torch.allclose(a, s, atol=tol)
    with pytest.raises(st.ShapeError, match="group elements for a batch"):
        sym.output.act_mean(sym.group, element_take(g, torch.arange(b * k - 1)), y, weights)


@pytest.mark.parametrize("output", ["points", "fields", "image"])
def test_act_mean_refuses_weights_that_do_not_fit(output):
    """Weights transposed to ``[k, B]`` (same count: the copies of different samples would
    be mixed), of the wrong count, or not floating point: a ShapeError naming the
    weights, on the fast paths (points, fields of points) and the default (images)."""
    b, k = 3, 4
    if output == "image":
        sym = st.Symmetry("C4", "trivial", Image())
        y, ctx = torch.randn(b * k, 1, 6, 6), st.Symmetry("C4", Image(), "trivial").context(torch.randn(b, 1, 6, 6))
    else:
        action = Points() if output == "points" else Fields(Points(), Vectors())
        sym = st.Symmetry("SE3", "trivial", action)
        y = torch.randn(b * k, 5, 3)
        y = y if output == "points" else (y, torch.randn(b * k, 5, 3))
        ctx = st.Symmetry("SE3", Points(), "trivial").context(torch.randn(b, 5, 3))
    g = sym.sample(ctx, k)
    ok = torch.full((b, k), 1.0 / k)
    sym.output.act_mean(sym.group, g, y, ok, ctx.repeat(k), ctx)  # fits
    for bad, match in ((ok.T.contiguous(), "have 4 rows, but the batch holds 3"),
                       (torch.full((b, k + 1), 0.2), "give 15 copies, but there are 12"),
                       (torch.ones(b, k, dtype=torch.long), "floating-point tensor"),
                       (ok.reshape(-1), "floating-point tensor")):
        with pytest.raises(st.ShapeError, match=match):
            sym.output.act_mean(sym.group, g, y, bad, ctx.repeat(k), ctx)


# --- finite groups on square images --------------------------------------------------------
from symtrain.actions import Image  # noqa: E402
from tests.models import CNN  # noqa: E402


def symmetric_images(group, dtype, b=3):
    """Images invariant under the group's rotations (C4, C2) or a mirror (D4)."""
    x = torch.randn(b, 2, 8, 8, dtype=dtype)
    if group == "D4":
        return x + x.flip(-2)  # fixed by the row flip
    turns = 4 if group == "C4" else 2
    return sum(torch.rot90(x, q * 4 // turns, (-2, -1)) for q in range(turns))


@pytest.mark.parametrize("group", ["C4", "D4", "C2"])
def test_grid_canonicalizer_is_exact_with_one_call_on_generic_images(group, dtype):
    sym = st.Symmetry(group, Image(), Image())
    tol = 1e-5 if dtype == torch.float32 else 1e-11
    cnn = CNN(c=2, out=2, pooled=False).to(dtype)
    for name, x in [("generic", torch.randn(3, 2, 8, 8, dtype=dtype)), ("symmetric", symmetric_images(group, dtype))]:
        base = Counting(cnn)
        model = st.Canonicalization(base, sym)  # canonicalizer="auto": the grid orbit frame
        with torch.no_grad():
            model(x)
        if name == "generic":
            assert base.rows == 3  # one backbone call per image
            assert st.equivariance_error(cnn, sym, x).max > 1e-2  # the check catches a plain CNN
        else:
            assert base.rows > 3  # the stabiliser of the symmetric images is averaged over
        assert st.equivariance_error(model, sym, x).max < tol, name


# --- weighted frames: continuous where minimal frames jump ---------------------------------
@pytest.mark.parametrize("group", ["O3", "SO3", "E3", "SE2"])
def test_weighted_frames_are_exact(group, dtype):
    d = int(group[-1])
    sym = st.Symmetry(group, Fields(Points(), Mask()), Points())
    pts = torch.randn(4, 7, d, dtype=dtype)
    pts[3, :, -1] = 0  # a planar cloud: windows degenerate, minimal-frame fallback
    mask = torch.arange(7)[None] < torch.tensor([7, 5, 2, 7])[:, None]
    base = Counting(MaskedPointMLP(7, d).to(dtype))
    model = st.FrameAveraging(base, sym, frames="weighted")
    model(pts, mask)
    _, weights = model.weighted_elements((pts, mask), sym.context((pts, mask)))
    assert weights.shape == (4, 4)  # 4 windows per input
    assert base.rows == int((weights != 0).sum())  # windows of weight 0 are not run
    err = st.equivariance_error(model, sym, (pts, mask), samples=4)
    assert err.max < (1e-5 if dtype == torch.float32 else 1e-10), err
    with pytest.raises(st.UnsupportedGroupError, match="FrameAveraging"):
        st.Canonicalization(base, sym, canonicalizer="weighted")


def test_weighted_frames_are_continuous_across_a_pivot_tie():
    """Row 0's norm at the pivot ratio of the largest: the minimal frame's pivot choice flips between
    x(1 + ε) and x(1 − ε) and its output jumps; the weighted frame's change goes to 0."""
    from symtrain.symmetrize.qr_frame import PIVOT

    torch.manual_seed(3)
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    big = x[0, 1:].norm(dim=-1).max()  # the largest row is another one
    x[0, 0] = x[0, 0] / x[0, 0].norm() * big * PIVOT  # exactly on the pivot threshold
    sym = st.Symmetry("O3", Points(), Vectors())
    base = PointMLP(6, 3, 3).to(torch.float64)
    minimal, weighted = st.FrameAveraging(base, sym), st.FrameAveraging(base, sym, frames="weighted")
    jumps = {}
    for name, model in [("minimal", minimal), ("weighted", weighted)]:
        for eps in (1e-3, 1e-6):
            plus, minus = x.clone(), x.clone()
            plus[0, 0] *= 1 + eps
            minus[0, 0] *= 1 - eps
            jumps[name, eps] = (model(plus) - model(minus)).norm().item()
    assert jumps["minimal", 1e-6] > 1e-2  # a jump that does not shrink with ε
    assert jumps["weighted", 1e-6] < 1e-4 and jumps["weighted", 1e-6] < jumps["weighted", 1e-3] / 100


def test_apply_repeated_gives_contiguous_copies():
    """Models may .view() their input: the fast path lays the copies out as repeating would."""
    sym = st.Symmetry("E3", Points(), "trivial")
    x = torch.randn(2, 5, 3)
    g = sym.sample(sym.context(x), 3)
    assert sym.input.apply_repeated(sym.group, g, x, 3, sym.context(x)).is_contiguous()


def test_pca_frame_averaging_trains():
    """Gradients flow through the fast path of k copies (PCA frames: 8 per cloud)."""
    sym = st.Symmetry("E3", Points(), Vectors())
    base = PointMLP(5, 3, 3)
    x = torch.randn(2, 5, 3, requires_grad=True)
    st.FrameAveraging(base, sym, frames="pca")(x).square().sum().backward()
    assert x.grad.abs().sum() > 0 and base.net[1].weight.grad.abs().sum() > 0
