"""The cheaper forward-mode rules of :mod:`symtrain.lie.tangents` against PyTorch's own
rules (float64, rounding-level agreement), alone and under ``vmap`` over several tangents
(shared primal), and the cases they must leave to PyTorch: weights that carry tangents,
grad mode, training-mode batch norm, dropout in attention."""

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from symtrain.lie.tangents import TangentRules

TOL = 1e-10


def native_jvp(fn, x, v):
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        return torch.func.jvp(fn, (x,), (v,))


def rules_jvp(fn, x, v):
    with torch.no_grad(), TangentRules():
        return torch.func.jvp(fn, (x,), (v,))


def rules_vmap(fn, x, vs):
    with torch.no_grad(), TangentRules():
        return torch.func.vmap(lambda v: torch.func.jvp(fn, (x,), (v,)))(vs)


def close(a, b):
    return float((a - b).abs().max()) <= TOL * max(1.0, float(b.abs().max()))


DTYPE = [torch.float64]  # the dtype g() draws in (make_cases switches it)


def g(*shape):
    return torch.randn(*shape, dtype=torch.float64).to(DTYPE[0])


def attention(mask=None, causal=False, scale=None, fixed=""):
    """Self-attention of x (B, H, N, E) with q/k/v = x @ W_{q,k,v}; ``fixed`` names the
    factors that are constants instead (learned queries, memory keys and values)."""
    torch.manual_seed(1)
    w = {n: g(6, 6) for n in "qkv"}
    const = {n: g(2, 3, 5, 6) for n in "qkv"}

    def fn(x):
        q, k, v = (const[n] if n in fixed else x @ w[n] for n in "qkv")
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)
    return fn


def bind(f, *params, **options):
    """``x -> f(x, *params, **options)`` with the parameters drawn once."""
    return lambda x: f(x, *params, **options)


def make_cases(dtype=torch.float64) -> dict:
    """The cases, their constants drawn from one seed (float64 values, cast to ``dtype``)."""
    DTYPE[0] = dtype
    torch.manual_seed(0)
    try:
        return _cases()
    finally:
        DTYPE[0] = torch.float64


def _cases() -> dict:
    return {
        "linear": (bind(F.linear, g(7, 6), g(7)), (2, 5, 6)),
        "linear_nobias": (bind(F.linear, g(7, 6)), (4, 6)),
        "conv1d": (bind(F.conv1d, g(4, 3, 3), g(4), padding="same"), (2, 3, 9)),
        "conv2d": (bind(F.conv2d, g(4, 3, 3, 3), g(4), stride=2, padding=1), (2, 3, 9, 9)),
        "conv2d_groups": (bind(F.conv2d, g(6, 1, 3, 3), None, 1, 1, 2, 3), (2, 3, 9, 9)),
        "conv3d": (bind(F.conv3d, g(2, 3, 3, 3, 3), g(2)), (1, 3, 5, 5, 5)),
        "batch_norm_eval": (bind(F.batch_norm, g(3), g(3).abs() + 0.5, g(3), g(3), False), (2, 3, 4, 4)),
        "batch_norm_plain": (bind(F.batch_norm, g(3), g(3).abs() + 0.5, None, None, False, 0.1, 1e-3), (4, 3)),
        "layer_norm": (bind(F.layer_norm, (6,), g(6), g(6)), (2, 5, 6)),
        "layer_norm_2d_noaffine": (bind(F.layer_norm, (5, 6)), (2, 5, 6)),
        "gelu": (F.gelu, (3, 7)),
        "gelu_tanh": (bind(F.gelu, approximate="tanh"), (3, 7)),
        "attention": (attention(), (2, 3, 5, 6)),
        "attention_scale": (attention(scale=0.3), (2, 3, 5, 6)),
        "attention_causal": (attention(causal=True), (2, 3, 5, 6)),
        "attention_bool_mask": (attention(mask=(torch.rand(5, 5) > 0.3) | torch.eye(5, dtype=torch.bool)),
                                (2, 3, 5, 6)),
        "attention_float_mask": (attention(mask=g(5, 5)), (2, 3, 5, 6)),
        "attention_fixed_queries": (attention(fixed="q"), (2, 3, 5, 6)),
        "attention_fixed_memory": (attention(fixed="kv"), (2, 3, 5, 6)),
    }


CASES = make_cases()
CASES32 = make_cases(torch.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_rule_matches_pytorch(name):
    fn, shape = CASES[name]
    x, v = g(*shape), g(*shape)
    y_ref, t_ref = native_jvp(fn, x, v)
    y, t = rules_jvp(fn, x, v)
    assert close(y, y_ref) and close(t, t_ref), name
    vs = g(4, *shape)
    ys, ts = rules_vmap(fn, x, vs)
    for i in range(4):
        assert close(ts[i], native_jvp(fn, x, vs[i])[1]), (name, i)
    assert close(ys[0], y_ref)


def dual_jvp(fn, x, v):
    """Forward-mode AD with dual numbers (``torch.autograd.forward_ad``): a reference that
    shares no code with ``torch.func``."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), fwAD.dual_level():
        out = fwAD.unpack_dual(fn(fwAD.make_dual(x, v)))
        return out.primal, out.tangent


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_rule_matches_dual_numbers(name, dtype):
    """Each rule against dual-number forward AD: rounding-level in float64, float32's
    precision in float32; under ``vmap`` over 5 tangents (the rules' batching rules) with
    no batching fallback (PyTorch warns when it loops over the tangents)."""
    fn, shape = CASES[name]
    tol = TOL if dtype == torch.float64 else 1e-4
    x, v, vs = g(*shape), g(*shape), g(5, *shape)
    _, ref = dual_jvp(fn, x, v)
    refs = [dual_jvp(fn, x, u)[1] for u in vs]
    if dtype == torch.float32:  # the same case with float32 constants, against the float64 reference
        fn = CASES32[name][0]
        x, v, vs = x.float(), v.float(), vs.float()
    _, got = rules_jvp(fn, x, v)
    assert float((got.double() - ref).abs().max()) <= tol * max(1.0, float(ref.abs().max())), name
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*performance drop.*")
        _, many = rules_vmap(fn, x, vs)
    for got, ref in zip(many, refs, strict=True):
        assert float((got.double() - ref).abs().max()) <= tol * max(1.0, float(ref.abs().max())), name


def test_rules_under_dual_numbers_and_a_vmapped_primal():
    """The rules also serve ``torch.autograd.forward_ad`` (dual tensors), and a ``vmap``
    over primals and tangents together (constants batched as well)."""
    for name in ("layer_norm", "attention", "attention_fixed_queries", "attention_fixed_memory"):
        fn, shape = CASES[name]
        x, v = g(*shape), g(*shape)
        _, ref = dual_jvp(fn, x, v)
        with torch.no_grad(), TangentRules(), fwAD.dual_level():
            got = fwAD.unpack_dual(fn(fwAD.make_dual(x, v))).tangent
        assert close(got, ref), name
        xs, vs = g(3, *shape), g(3, *shape)
        with torch.no_grad(), TangentRules(), warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*performance drop.*")
            _, both = torch.func.vmap(lambda a, b, f=fn: torch.func.jvp(f, (a,), (b,)))(xs, vs)
        for i in range(3):
            assert close(both[i], dual_jvp(fn, xs[i], vs[i])[1]), (name, i)


def test_rules_are_used_and_a_wrong_rule_would_be_caught(monkeypatch):
    """The mode really routes the call (a rule that drops a term changes the tangent)."""
    from symtrain.lie import tangents

    fn, shape = CASES["layer_norm"]
    x, v = g(*shape), g(*shape)
    monkeypatch.setattr(tangents._LayerNorm, "jvp", staticmethod(lambda ctx, x_t, *_: ctx.saved_tensors[0] * x_t))
    _, wrong = rules_jvp(fn, x, v)
    assert not close(wrong, native_jvp(fn, x, v)[1])


def test_weights_with_tangents_keep_pytorch_rules():
    """Differentiating with respect to the weights: the calls are not routed (the rules
    would drop the weight tangent) and the jvp is PyTorch's."""
    x, w, b = g(2, 3, 8, 8), g(4, 3, 3, 3), g(4)
    dw = g(4, 3, 3, 3)
    fn = lambda w: F.gelu(F.conv2d(x, w, b))  # noqa: E731
    ref = native_jvp(fn, w, dw)[1]
    with torch.no_grad(), TangentRules():
        got = torch.func.jvp(fn, (w,), (dw,))[1]
    assert close(got, ref)
    ln = lambda w: F.layer_norm(x, (8,), w)  # noqa: E731
    w8, dw8 = g(8), g(8)
    with torch.no_grad(), TangentRules():
        assert close(torch.func.jvp(ln, (w8,), (dw8,))[1], native_jvp(ln, w8, dw8)[1])
    # batched weights (vmap over an ensemble) are not constants either
    ws = g(3, 7, 6)
    xs = g(5, 6)
    with torch.no_grad(), TangentRules():
        out = torch.func.vmap(lambda w: torch.func.jvp(lambda u: F.linear(u, w), (xs,), (xs,))[1])(ws)
    assert close(out, torch.einsum("bi,kji->kbj", xs, ws))


def test_training_batch_norm_dropout_and_grad_mode_keep_pytorch_rules():
    x, v = g(4, 3, 5, 5), g(4, 3, 5, 5)
    mean, var = g(3), g(3).abs() + 0.5
    train_bn = lambda u: F.batch_norm(u, mean.clone(), var.clone(), training=True)  # noqa: E731
    assert close(rules_jvp(train_bn, x, v)[1], native_jvp(train_bn, x, v)[1])
    # grad mode on: PyTorch's rules, and the result stays differentiable
    w = g(4, 3, 3, 3).requires_grad_()
    fn = lambda u: F.conv2d(u, w)  # noqa: E731
    with TangentRules():
        _, t = torch.func.jvp(fn, (x,), (v,))
    assert t.requires_grad
    (grad,) = torch.autograd.grad(t.sum(), w)
    assert close(grad, torch.autograd.grad(F.conv2d(v, w).sum(), w)[0])
    # dropout in attention is random: not routed (the math kernel runs it)
    q = g(1, 1, 4, 6)
    with torch.no_grad(), TangentRules():
        torch.manual_seed(0)
        _, t = torch.func.jvp(lambda u: F.scaled_dot_product_attention(u, u, u, dropout_p=0.5), (q,), (q,))
    assert torch.isfinite(t).all()


def test_fused_attention_modules_run_under_the_rules():
    """``nn.TransformerEncoderLayer`` takes a fused C++ path in eval mode without grad that
    never reaches Python; the mode keeps attention on the math kernel for it."""
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double().eval()
    x, v = g(2, 5, 8), g(2, 5, 8)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):  # grad mode: the Python path
        ref = torch.func.jvp(layer, (x,), (v,))[1].detach()
    with torch.no_grad(), TangentRules():
        got = torch.func.jvp(layer, (x,), (v,))[1]
    assert close(got, ref)
