"""The two Lie-derivative methods (``jvp``, ``fd``) against a float64 jvp on small CNNs and
ViTs, ``auto``'s choice, the central difference's step, group generators with both
methods, and how often the model runs (no timings: the machine is shared)."""

import copy
import math

import pytest
import timm
import torch
from torch import nn

import symtrain as st
from symtrain.errors import SymmetryError
from symtrain.lie import IMAGE_GENERATORS, fd_step, group_generators, lie_derivative, lie_derivatives, resolve_method
from symtrain.lie.layerwise import layerwise_lie

BOUND = 1e-3  # relative error against the float64 jvp, the accuracy bound


def smooth_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.BatchNorm2d(8), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


def relu_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                             depth=2, num_classes=5).eval()


def smooth_image(b: int = 2, size: int = 32) -> torch.Tensor:
    from symtrain.lie.images import synthetic_images

    return synthetic_images(b, size, seed=0)


def errors(model: nn.Module, x: torch.Tensor, method: str, **kw) -> dict[str, float]:
    """Relative error of ``method`` in float32 against the jvp on the float64 copy (taken
    with grad mode on: PyTorch's own forward-mode rules, not :mod:`symtrain.lie.tangents`)."""
    with torch.enable_grad():
        ref = lie_derivatives(copy.deepcopy(model).double(), x.double(), "all", method="jvp", **kw)
    ref = {k: v.detach() for k, v in ref.items()}
    got = lie_derivatives(model, x, "all", method=method, **kw)
    return {k: float((got[k].double() - ref[k]).norm() / ref[k].norm()) for k in ref}


@pytest.mark.parametrize("method", ["jvp", "fd"])
@pytest.mark.parametrize("make", [smooth_cnn, tiny_vit], ids=["cnn", "vit"])
def test_each_method_within_the_bound_of_float64_jvp(make, method):
    model = make()
    x = smooth_image()
    with torch.no_grad():
        err = errors(model, x, method)
    assert set(err) == set(IMAGE_GENERATORS)
    assert max(err.values()) < BOUND, err


def test_vit_tokens_output_with_both_methods():
    vit = tiny_vit()
    x = smooth_image()
    with torch.no_grad():
        ref = lie_derivative(copy.deepcopy(vit).double().forward_features, x.double(), "rotation",
                             output="tokens", method="jvp")
    for method in ("jvp", "fd"):
        with torch.no_grad():
            got = lie_derivative(vit.forward_features, x, "rotation", output="tokens", method=method)
        assert got.shape == (2, 17, 192)
        assert float((got.double() - ref).norm() / ref.norm()) < BOUND, method


def test_kinks_break_the_float32_central_difference_and_auto_avoids_it():
    model = relu_cnn()
    x = torch.randn(2, 3, 32, 32)  # white noise: many units near their kinks
    with torch.no_grad():
        assert max(errors(model, x, "jvp").values()) < BOUND
    assert resolve_method(model, x) == "jvp"
    assert resolve_method(model, x.double()) == "fd"
    with torch.no_grad():  # float64: the step (6e-6 of the input) crosses no kink here
        ref = lie_derivatives(model.double(), x.double(), "all", method="jvp")
        got = lie_derivatives(model, x.double(), "all", method="fd")
    assert max(float((got[k] - ref[k]).norm() / ref[k].norm()) for k in ref) < BOUND


def test_auto_choice():
    x = torch.randn(2, 3, 8, 8)
    assert resolve_method(smooth_cnn(), x) == "fd"
    assert resolve_method(tiny_vit(), x) == "fd"  # fused attention is fine for fd
    assert resolve_method(relu_cnn(), x) == "jvp"
    assert resolve_method(timm.create_model("resnet10t", pretrained=False).eval(), x) == "jvp"
    assert resolve_method(smooth_cnn(), x.half()) == "jvp"
    assert resolve_method(smooth_cnn(), x.bfloat16()) == "jvp"
    assert resolve_method(smooth_cnn().train(), x) == "jvp"  # batch norm would mix the copies
    assert resolve_method(smooth_cnn().train(), x.double()) == "jvp"
    drop = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
    assert resolve_method(drop, x) == "jvp" and resolve_method(drop.eval(), x) == "fd"
    assert resolve_method(nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.0)), x) == "fd"
    assert resolve_method(lambda u: u.sum((1, 2, 3)), x) == "jvp"  # not inspectable
    assert resolve_method(lambda u: u.sum((1, 2, 3)), x.double()) == "fd"
    vit = tiny_vit()
    assert resolve_method(vit.forward_features, x) == "fd"  # a bound method: its module is read
    for method in ("jvp", "fd"):
        assert resolve_method(relu_cnn(), x, method) == method
    # several generators per call: the jvp shares one primal, fd pays two evaluations each
    assert resolve_method(smooth_cnn(), x, per_call=2) == "jvp"
    assert resolve_method(smooth_cnn(), x.double(), per_call=12) == "jvp"
    assert resolve_method(relu_cnn(), x, "fd", per_call=12) == "fd"
    # ... and lie_derivatives passes how many generators share a call
    model, batches = smooth_cnn(), []
    model[0].register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    with torch.no_grad():
        lie_derivatives(model, x, "all")  # jvp: the module sees the batch once
        assert batches == [2]
        lie_derivatives(model, x, "all", chunk_size=1)  # fd: ± copies of one generator per call
        assert batches[1:] == [4] * len(IMAGE_GENERATORS)
    # group generators: jvp (symmetrization wrappers hide kinks in their own forward)
    sym = st.Symmetry("SO3", input=st.actions.Points(), output=st.actions.Trivial())
    mlp = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    points = torch.randn(2, 5, 3, dtype=torch.float64)
    assert resolve_method(mlp, points) == "fd"
    assert resolve_method(mlp, points, "auto", group_generators(sym)) == "jvp"
    with pytest.raises(SymmetryError, match="method must be one of"):
        lie_derivative(smooth_cnn(), x, "rotation", method="complex_step")


def test_fd_step_follows_dtype_and_scale():
    torch.manual_seed(0)
    x, v = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    h32, h64 = fd_step(x, v), fd_step(x.double(), v.double())
    ratio = float(x.norm() / v.norm())
    assert h32 == pytest.approx(torch.finfo(torch.float32).eps ** (1 / 3) * ratio, rel=1e-5)
    assert h64 == pytest.approx(torch.finfo(torch.float64).eps ** (1 / 3) * ratio, rel=1e-5)
    assert h32 / h64 == pytest.approx((2.0 ** -23 / 2.0 ** -52) ** (1 / 3), rel=1e-5)  # ≈ 812
    # the perturbation h·v is a fixed fraction of the input, whatever the tangent's scale
    assert fd_step(x, 100 * v) == pytest.approx(h32 / 100)
    assert fd_step(10 * x, v) == pytest.approx(10 * h32)
    assert fd_step(x, v, factor=2.0) == pytest.approx(2 * h32)
    # degenerate inputs: x = 0 takes the tangent's own scale, v = 0 any finite step
    eps13 = torch.finfo(torch.float32).eps ** (1 / 3)
    assert fd_step(torch.zeros_like(x), v) == pytest.approx(eps13)
    assert fd_step(x, torch.zeros_like(v)) == pytest.approx(eps13)
    pair = (x, torch.arange(3))  # non-floating leaves are ignored
    assert fd_step(pair, (v, torch.zeros(3, dtype=torch.long))) == pytest.approx(h32)


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_so3_generators_on_points_against_float64_jvp_and_the_orbit(method):
    """SO(3) on point clouds: an invariant output and an equivariant one (``ρ_out(−t)``
    applied to the output), float32 against the float64 jvp and against the central
    difference of the conjugated map along the orbit, in float64."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, 3)
    lin = nn.Linear(3, 3)

    def vectors(p):  # smooth, not equivariant
        return p + 0.3 * torch.tanh(lin(p))

    def energy(p):
        return torch.tanh(lin(p)).pow(2).sum((1, 2))

    for output, model in ((st.actions.Points(), vectors), (st.actions.Trivial(), energy)):
        sym = st.Symmetry("SO3", input=st.actions.Points(), output=output)
        for gen in group_generators(sym):
            got = lie_derivative(model, x, gen, method=method).detach()
            lin.double()
            ref = lie_derivative(model, x.double(), gen, method="jvp").detach()

            def conj(t, gen=gen, sym=sym, model=model):  # ρ_out(−t) f(ρ_in(t) x) with exact rotations
                g = torch.linalg.matrix_exp(t * gen.xi.double()).expand(3, 3, 3)
                return sym.act_output(sym.group.inverse(g), model(sym.act_input(g, x.double())))
            h = 1e-5
            orbit = ((conj(h) - conj(-h)) / (2 * h)).detach()
            lin.float()
            assert float((got.double() - ref).norm() / ref.norm()) < BOUND, (gen.name, output)
            assert float((orbit - ref).norm() / ref.norm()) < 1e-6, (gen.name, output)


class Counting(nn.Module):
    """Counts its calls and the batch sizes it sees."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.batches = inner, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.inner(x)


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_all_generators_in_one_call_by_default(method):
    """12 generators: one call of the model (the jvp's primal runs once; fd's 24 copies go
    in one batch); ``chunk_size=6`` makes two calls (the jvp's primal runs twice)."""
    model = Counting(smooth_cnn())
    x = smooth_image(2, 16)
    with torch.no_grad():
        lie_derivatives(model, x, "all", method=method)
        assert len(model.batches) == 1
        if method == "fd":
            assert model.batches == [2 * 12 * 2]
        model.batches.clear()
        chunked = lie_derivatives(model, x, "all", method=method, chunk_size=6)
        assert len(model.batches) == 2
        model.batches.clear()
        alone = lie_derivatives(model, x, "all", method=method, share_primal=False)
        assert len(model.batches) == 12
    # other batch sizes round differently; the central difference divides that by its
    # step (~eps^(1/3)), so float32 fd agrees only to ~eps^(2/3) of the output's scale
    rtol, atol = {"jvp": (1e-4, 1e-6), "fd": (2e-3, 2e-3)}[method]
    for k in alone:
        scale = max(float(alone[k].abs().max()), 1.0)
        torch.testing.assert_close(chunked[k], alone[k], rtol=rtol, atol=atol * scale)


def test_fd_falls_back_when_the_output_is_not_per_example():
    # float64: the derivative here is ~1e-3 of the function, and fd's error is relative
    # to the function (eps^(2/3) |f|), so float32 would only give ~1e-2
    model = Counting(smooth_cnn().double())
    x = smooth_image(2, 16).double()
    total = lambda u: model(u).pow(2).sum()  # noqa: E731  one number for the batch
    with torch.no_grad():
        fd = lie_derivatives(total, x, ["rotation", "scale"], method="fd", output="invariant")
        assert model.batches == [8, 2, 2, 2, 2]  # the joined call, then one per copy
        ref = lie_derivatives(model, x, ["rotation", "scale"], method="jvp")
        y = model(x)
    for k in fd:
        want = (2 * y * ref[k]).sum()
        assert abs(float(fd[k]) - float(want)) < 1e-6 * abs(float(want))


@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_layerwise_with_both_methods(method):
    net = smooth_cnn()
    x = smooth_image(2, 16)
    res = layerwise_lie(net, x, "rotation", probes=2, method=method)
    ref = layerwise_lie(copy.deepcopy(net).double(), x.double(), "rotation", probes=2, method="jvp")
    assert res.names == ref.names
    rel = (res.contribution.double() - ref.contribution).norm() / ref.contribution.norm()
    assert float(rel) < 1e-2  # products of fd derivatives with VJPs: a few times fd's error
    assert float((res.end_to_end.double() - ref.end_to_end).norm() / ref.end_to_end.norm()) < 2 * BOUND
    assert float(res.residual.abs().max() / res.end_to_end.max()) < 1e-2


def test_report_and_cli_record_the_method(tmp_path):
    from symtrain.cli import main
    from symtrain.lie.report import lie_report

    rep = lie_report(smooth_cnn(), smooth_image(2, 16), ["rotation"], method="auto")
    assert rep.meta["method"] == "fd"
    rep = lie_report(smooth_cnn(), smooth_image(2, 16), ["rotation"], method="jvp")
    assert rep.meta["method"] == "jvp"
    code = main(["lie", "--model", "vit_tiny_patch16_224", "--no-pretrained", "--synthetic", "2",
                 "--image-size", "32", "--model-arg", "patch_size=8", "--model-arg", "depth=1",
                 "--transforms", "rotation", "--method", "fd", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    import json

    assert json.loads((tmp_path / "lie_report.json").read_text())["meta"]["method"] == "fd"
    assert math.isfinite(json.loads((tmp_path / "lie_report.json").read_text())["summary"][0]["squared_mean"])


def test_jvp_without_grad_convolves_each_tangent_once():
    """Under ``torch.no_grad`` the jvp path gives each zero-padded convolution's tangent one
    convolution (PyTorch's rule runs a second one on the zero weight tangent); the result
    equals the stock rule's (grad mode on), and the modules are restored."""
    from torch.profiler import profile

    model = smooth_cnn()
    x = smooth_image(2, 16)
    with torch.enable_grad():
        stock = lie_derivatives(model, x, ["rotation", "scale"], method="jvp")
    for share in (True, False):
        with torch.no_grad(), profile() as prof:
            fast = lie_derivatives(model, x, ["rotation", "scale"], method="jvp", share_primal=share)
        convs = sum(e.count for e in prof.key_averages() if e.key == "aten::_convolution")
        assert convs == 2 * (2 if share else 4), convs  # 2 layers × (primal + one tangent) per call
        for k in stock:
            torch.testing.assert_close(fast[k], stock[k].detach(), rtol=1e-5, atol=1e-7)
    assert all("forward" not in vars(m) for m in model.modules())


def test_stochastic_wrappers_get_the_jvp_with_a_warning_and_fd_is_refused():
    """A Monte-Carlo wrapper draws anew on every call: the central difference would compare
    independent draws (refused, naming the problem); the jvp holds one draw fixed (warned:
    not the wrapper's equivariance). A deterministic wrapper of the same group is silent."""
    import warnings

    import symtrain as st
    from symtrain.lie import StochasticModelWarning

    sym = st.Symmetry("SO3", "points", "points")
    base = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(2, 5, 3)
    mc = st.GroupAveraging(base, sym, samples=4).eval()
    with pytest.raises(st.SymmetryError, match="independent draws"):
        st.lie_derivatives(mc, x, symmetry=sym, method="fd")
    with pytest.warns(StochasticModelWarning, match="one draw fixed"):
        out = st.lie_derivatives(mc, x, symmetry=sym, method="auto", norm="squared")
    assert all(v.shape == (2,) and torch.isfinite(v).all() for v in out.values())
    exact = st.FrameAveraging(base, sym).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StochasticModelWarning)
        st.lie_derivatives(exact, x, symmetry=sym, norm="squared")
