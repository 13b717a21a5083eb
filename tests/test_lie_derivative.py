"""End-to-end Lie derivative: exact invariance gives 0, its absence does not, agreement with
float64 finite differences, ViT support, errors."""

import math

import pytest
import timm
import torch
from torch import nn

import symtrain as st
from symtrain.errors import ShapeError, SymmetryError
from symtrain.lie import group_generators, lie_derivative, lie_derivatives


def bump_image(h: int, shift=(0.0, 0.0), angle: float = 0.0, sigma: float = 6.0,
               dtype=torch.float64) -> torch.Tensor:
    """A smooth anisotropic 3-channel image (1, 3, H, W), moved by a continuous rotation
    (counter-clockwise, about the centre) and a shift (pixels, x right, y up)."""
    c = torch.arange(h, dtype=dtype) + 0.5 - h / 2
    x, y = c[None, :].expand(h, h), -c[:, None].expand(h, h)
    # sample the original image at T⁻¹ p
    x, y = x - shift[0], y - shift[1]
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = ca * x + sa * y, -sa * x + ca * y
    chans = [torch.exp(-((x - 3) ** 2 / 2 + (y + 2) ** 2) / sigma ** 2),
             torch.exp(-(x ** 2 + (y - 4) ** 2 / 3) / sigma ** 2) * (1 + 0.1 * x),
             torch.exp(-((x + 2) ** 2 + y ** 2) / (1.5 * sigma ** 2))]
    return torch.stack(chans)[None]


class PointwiseEnergy(nn.Module):
    """Global average of a pointwise (1×1) network with a square nonlinearity: exactly
    invariant to infinitesimal circular translations (a skew circulant generator)."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.mix(x).pow(2).mean((-2, -1)))


def small_cnn(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 6, 3, stride=2, padding=1),
                         nn.Tanh(), nn.Flatten(), nn.LazyLinear(4)).to(dtype)


# float32 rounding left in an exactly zero Lie derivative: the jvp's is eps-sized, the
# central difference's of order eps^(2/3) (see fd_step), squared for squared norms
ZERO_TOL = {"jvp": 1e-10, "fd": 1e-8}


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_exactly_invariant_translation_is_zero_and_non_invariant_is_not(method):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    inv = PointwiseEnergy()
    for name in ("translation_x", "translation_y"):
        d = lie_derivative(inv, x, name, padding="circular", norm="squared", method=method)
        ref = inv(x).pow(2).sum(1)
        assert d.shape == (4,)
        assert (d / ref).max() < ZERO_TOL[method]
    model = small_cnn()
    model(x)
    d = lie_derivative(model, x, "translation_x", padding="circular", norm="squared", method=method)
    assert (d / model(x).pow(2).sum(1)).min() > 1e-4


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_rotation_invariant_point_function_is_zero_and_coordinates_are_not(method):
    torch.manual_seed(0)
    sym = st.Symmetry("SO3", input=st.actions.Points(), output=st.actions.Trivial())
    x = torch.randn(3, 6, 3)
    mlp = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 2))

    def invariant(p):  # MLP of pairwise distances, summed
        dist = (p[:, :, None] - p[:, None, :]).pow(2).sum(-1, keepdim=True)
        return mlp(dist).sum((1, 2))

    def not_invariant(p):
        return mlp(p[..., :1]).sum(1)

    tol = {"jvp": 1e-5, "fd": 1e-4}[method]
    for gen in group_generators(sym):
        assert lie_derivative(invariant, x, gen, norm="abs", method=method).max() < tol
        assert (lie_derivative(not_invariant, x, gen, norm="abs", method=method).max() > 1e-3
                or gen.name == "SO3/rotate_yz")
    # rotation about x leaves the x coordinate alone; about y or z it does not
    assert lie_derivative(not_invariant, x, group_generators(sym)[2], norm="abs", method=method).min() > 1e-3


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_image_generator_matches_float64_finite_difference(method):
    model = small_cnn(torch.float64)
    x = bump_image(96, sigma=8)
    model(x)
    h = 1e-4
    cases = {"translation_x": lambda t: bump_image(96, shift=(t, 0.0), sigma=8),
             "translation_y": lambda t: bump_image(96, shift=(0.0, t), sigma=8),
             "rotation": lambda t: bump_image(96, angle=t, sigma=8)}
    for name, moved in cases.items():
        fd = (model(moved(h)) - model(moved(-h))) / (2 * h)
        lie = lie_derivative(model, x, name, order=4, method=method)
        rel = ((lie - fd).norm() / fd.norm()).item()
        assert rel < 1e-3, (name, rel)


def test_rotation_tangent_agrees_with_the_image_action():
    # the generator's convention (counter-clockwise, y up) is the foundation's Image action
    from symtrain.lie import ImageGenerator

    x = bump_image(40)
    act = st.actions.Image(interpolation="bilinear", padding_mode="border")
    so2 = st.groups.SO(2)
    h = 1e-2
    def rot(a):
        return act.act(so2, torch.tensor([[[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]],
                                         dtype=torch.float64), x)

    fd = (rot(h) - rot(-h)) / (2 * h)
    tan = ImageGenerator("rotation").image_tangent(x, (40, 40), is_input=True)
    assert ((tan - fd).norm() / fd.norm()).item() < 2e-2


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_equivariant_points_output_matches_finite_difference(method):
    torch.manual_seed(0)
    sym = st.Symmetry("SE3", input=st.actions.Points(), output=st.actions.Points())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    lin = nn.Linear(3, 3).double()

    def model(p):  # smooth, not equivariant
        return p + 0.3 * torch.tanh(lin(p))

    group = sym.group
    for gen in group_generators(sym):
        def conj(t, gen=gen):  # T_t⁻¹ f(T_t x) with exact group elements
            m = torch.linalg.matrix_exp(t * gen.xi.double())
            g = (m[:3, :3].expand(2, 3, 3), m[:3, 3].expand(2, 3))
            return sym.act_output(group.inverse(g), model(sym.act_input(g, x)))
        h = 1e-5
        fd = (conj(h) - conj(-h)) / (2 * h)
        lie = lie_derivative(model, x, gen, method=method)
        assert ((lie - fd).norm() / fd.norm()).item() < 1e-3
    def equivariant(p):
        return 2 * p - p.mean(1, keepdim=True)

    for gen in group_generators(sym):  # float64: fd's rounding is of order eps^(2/3) ~ 4e-11
        assert lie_derivative(equivariant, x, gen, method=method).abs().max() < {"jvp": 1e-12, "fd": 1e-9}[method]


# batched and one-by-one calls round differently (other BLAS paths, other CPUs); the
# central difference divides that rounding by its step h ~ eps^(1/3), so in float32 its
# noise floor is of order eps^(2/3) ~ 4e-5 of the output's scale (a CI machine measured
# 1.5e-4), while float64 leaves ~1e-11
SHARED_TOL = {(torch.float32, "jvp"): 1e-4, (torch.float32, "fd"): 2e-3,
              (torch.float64, "jvp"): 1e-10, (torch.float64, "fd"): 1e-8}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_shared_primal_matches_one_by_one(method, dtype):
    model = small_cnn(dtype)
    x = torch.randn(2, 3, 16, 16, dtype=dtype)
    model(x)
    together = lie_derivatives(model, x, "all", method=method)
    assert len(together) == len(st.lie.IMAGE_GENERATORS)
    tol = SHARED_TOL[dtype, method]
    for name in ("rotation", "brightness", "stretch_y"):
        alone = lie_derivative(model, x, name, method=method)
        scale = max(float(alone.detach().abs().max()), 1.0)
        torch.testing.assert_close(together[name], alone, rtol=tol, atol=tol * scale)


def test_stretch_is_not_degenerate_and_translation_is_in_pixels():
    # the x-coordinate centroid of a blob moves by exactly one input pixel per unit t,
    # at any resolution; stretch_x moves it by its own x coordinate
    def centroid_x(img):
        w = img.shape[-1]
        xs = torch.arange(w, dtype=img.dtype) + 0.5 - w / 2
        mass = img.sum((-2, -1))
        return ((img.sum(-2) * xs).sum(-1) / mass)

    for size in (96, 192):
        x = bump_image(size, sigma=size / 12)[:, :1]
        d = lie_derivative(centroid_x, x, "translation_x", order=4)
        assert abs(d.item() - 1) < 1e-3
        d = lie_derivative(centroid_x, x, "stretch_x", order=4)
        assert abs(d.item() - centroid_x(x).item()) < 1e-3 * size


def test_vit_with_fused_attention():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                            depth=2, num_classes=5).eval()
    assert vit.blocks[0].attn.fused_attn  # the default this test is about
    x = torch.randn(2, 3, 32, 32)
    d = lie_derivative(vit, x, "rotation", norm="abs")
    assert d.shape == (2,) and bool((d > 0).all()) and bool(d.isfinite().all())
    assert vit.blocks[0].attn.fused_attn  # restored
    tokens = lie_derivative(vit.forward_features, x, "translation_x", output="tokens")
    assert tokens.shape == (2, 17, 192)


def test_errors_name_the_problem():
    model = small_cnn()
    x = torch.randn(1, 3, 8, 8)
    model(x)
    with pytest.raises(SymmetryError, match="unknown image transform 'rotate'.*rotation"):
        lie_derivative(model, x, "rotate")
    with pytest.raises(ShapeError, match="neither invariant.*output='tokens'"):
        lie_derivative(lambda im: im.flatten(2), x, "rotation")
    with pytest.raises(SymmetryError, match="output must be one of"):
        lie_derivative(model, x, "rotation", output="feature_map")
    with pytest.raises(ShapeError, match="image batch"):
        lie_derivative(model, torch.randn(3, 8, 8), "rotation")
    with pytest.raises(SymmetryError, match="norm must be"):
        lie_derivative(model, x, "rotation", norm="l1")


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_group_generators_of_a_product_with_permutations(method):
    """S_n x E(3): the Lie derivative runs along E(3) with S_n at the identity; a model that
    is equivariant to E(3) (centring + a rotation-equivariant map) has none, an MLP has one."""
    import symtrain as st

    sym = st.Symmetry("S_n x E3", st.actions.Points(), st.actions.Points())
    x = torch.randn(3, 5, 3, dtype=torch.float64)

    def equivariant(p):
        c = p.mean(1, keepdim=True)
        return c + 2.0 * (p - c) * (p - c).norm(dim=-1, keepdim=True)

    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 15), torch.nn.Unflatten(1, (5, 3))).double()
    zero = st.lie_derivatives(equivariant, x, symmetry=sym, method=method)
    nonzero = st.lie_derivatives(mlp, x, symmetry=sym, method=method)
    assert len(zero) == 6
    assert max(float(v.abs().max()) for v in zero.values()) < {"jvp": 1e-10, "fd": 1e-8}[method]
    assert max(float(v.detach().abs().max()) for v in nonzero.values()) > 1e-2


def test_generators_are_named_by_their_motion():
    """The trainer logs ``val/lie/<name>``: names a reader can place, not indices."""
    points = st.actions.Points()
    def names(g):
        return [gen.name for gen in group_generators(st.Symmetry(g, points, st.actions.Trivial()))]

    assert names("E3") == ["E3/rotate_yz", "E3/rotate_zx", "E3/rotate_xy",
                           "E3/translate_x", "E3/translate_y", "E3/translate_z"]
    assert names("SE2") == ["SE2/rotate_xy", "SE2/translate_x", "SE2/translate_y"]
    assert names("SO2") == ["SO2/rotate_xy"]
    derivs = lie_derivatives(nn.Identity(), torch.randn(2, 4, 3), "all",
                             symmetry=st.Symmetry("SO3", points, points), norm="squared")
    assert list(derivs) == ["SO3/rotate_yz", "SO3/rotate_zx", "SO3/rotate_xy"]
