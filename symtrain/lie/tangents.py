"""Cheaper forward-mode (jvp) rules for the ops that dominate image models, used by the
Lie derivative when no gradient is needed.

PyTorch's own forward-mode rules are written for the general case: every input may carry
a tangent (weights and biases too), and under ``vmap`` over many tangents (several
generators sharing one primal) the primal-only part of a rule is recomputed for every
tangent (``gelu_backward`` evaluates ``erf``/``exp`` of the primal once per tangent). The
rules here treat weights as constants and compute everything that depends only on the
primal once, outside the batched tangent:

==========================  ============================================================
op                          tangent (``t``: the input's tangent)
==========================  ============================================================
``linear``                  ``t Wᵀ`` (PyTorch's rule also multiplies ``x`` by a zero tangent of ``W``)
``conv{1,2,3}d``            ``conv(t, W)`` (no bias, no weight-tangent convolution)
``batch_norm`` (eval)       ``t · W / sqrt(running_var + eps)`` (one multiply)
``layer_norm``              ``a ⊙ (t − mean t − x̂ · mean(x̂ ⊙ t))``, ``a = W·rstd``: one fresh tensor, then in place
``gelu``                    ``t · gelu'(x)``, ``gelu'(x)`` computed once
``scaled_dot_product_       fused kernel for the primal; ``(A⊙dS) V − rowsum(A⊙dS) ⊙ O + A dV``
attention``                 with ``dS = [dQ, Q] [K, dK]ᵀ · scale`` (one product)
==========================  ============================================================

The tangent parts of layer norm and attention run through :class:`_Tangents`, whose
batching rule hands them every tangent at once as one physical tensor: they use fused
in-place ops (which ``vmap`` would otherwise run tangent by tangent) and lay the tangents
out inside the GEMMs (folded into rows or columns) instead of broadcasting a constant
over them.

:class:`TangentRules` is a :class:`~torch.overrides.TorchFunctionMode` that routes those
calls (from modules or functional code alike) through :class:`torch.autograd.Function`
subclasses with these ``jvp`` rules. It only acts while grad mode is off: the functions
have no backward, so a Lie derivative that is backpropagated (a regulariser) keeps
PyTorch's rules.

The rules drop the tangents of weights, statistics, biases and masks, so a call is routed
only when those are constants: plain tensors, neither wrapped by a ``torch.func``
transform (``torch.func`` hands a custom function materialised zero tangents for them,
which cannot be told from real ones inside the rule) nor dual tensors of
``torch.autograd.forward_ad``. Anything else (a weight under a user's own ``jvp`` or
``vmap``, training-mode batch norm, dropout in attention, grouped-query attention) keeps
PyTorch's rule.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch.autograd.forward_ad import unpack_dual
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode


def constant(*tensors) -> bool:
    """Whether no tensor among ``tensors`` can carry a tangent (``None`` counts as
    constant): not wrapped by a ``torch.func`` transform, not a forward-AD dual tensor."""
    return all(t is None or (not torch._C._functorch.is_functorch_wrapped_tensor(t)
                             and unpack_dual(t).tangent is None) for t in tensors)


class _Tangents(torch.autograd.Function):
    """``kernel(tangents, constants)``: a tangent computation on every tangent at once.

    ``kernel`` receives the tangents with one leading axis of tangents (size 1 outside
    ``vmap``) and the constants without it (constants carry one too, aligned to the
    tangents' rank, only where ``vmap`` batches them as well). Under ``vmap`` this is the
    batching rule: the kernel sees the physical tensors, so it can use in-place and fused
    ops (``addcmul_``), which PyTorch's batching fallback would run one tangent at a time,
    and lay products out itself. ``kernel`` returns ``(result, axis)``: the result and the
    position of its axis of tangents. It must not modify its arguments."""

    @staticmethod
    def forward(kernel, tangents, constants):
        out, axis = kernel(tuple(t.unsqueeze(0) for t in tangents), constants)
        return out.squeeze(axis)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def vmap(info, in_dims, kernel, tangents, constants):
        _, t_dims, c_dims = in_dims
        rank = max(t.dim() - (d is not None) for t, d in zip(tangents, t_dims, strict=True))
        tangents = tuple(t.unsqueeze(0).expand(info.batch_size, *t.shape) if d is None else t.movedim(d, 0)
                         for t, d in zip(tangents, t_dims, strict=True))
        constants = tuple(c if d is None else _leading(c, d, rank) for c, d in zip(constants, c_dims, strict=True))
        return kernel(tangents, constants)


def _leading(c: torch.Tensor, dim: int, rank: int) -> torch.Tensor:
    """A batched constant with its batch axis first, then padded to ``rank`` logical axes
    (so it broadcasts against tangents laid out as ``(batch, *logical)``)."""
    c = c.movedim(dim, 0)
    return c.reshape(c.shape[:1] + (1,) * (rank - c.dim() + 1) + c.shape[1:])


class _Conv(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, conv, stride, padding, dilation, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, weight, _, ctx.conv, ctx.stride, ctx.padding, ctx.dilation, ctx.groups = inputs
        ctx.save_for_forward(weight)

    @staticmethod
    def jvp(ctx, x_t, *_):
        (weight,) = ctx.saved_tensors
        return ctx.conv(x_t, weight, None, ctx.stride, ctx.padding, ctx.dilation, ctx.groups)


class _Linear(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(inputs[1])

    @staticmethod
    def jvp(ctx, x_t, *_):
        (weight,) = ctx.saved_tensors
        return F.linear(x_t, weight)


class _BatchNormEval(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, mean, var, weight, bias, eps):
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, _, var, weight, _, eps = inputs
        scale = torch.rsqrt(var + eps)
        scale = scale if weight is None else scale * weight
        ctx.save_for_forward(scale.reshape((1, -1) + (1,) * (x.dim() - 2)))

    @staticmethod
    def jvp(ctx, x_t, *_):
        (scale,) = ctx.saved_tensors
        return x_t * scale


class _LayerNorm(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, normalized_shape, weight, bias, eps):
        return F.layer_norm(x, normalized_shape, weight, bias, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, normalized_shape, weight, _, eps = inputs
        ctx.dims = tuple(range(-len(normalized_shape), 0))
        centred = x - x.mean(ctx.dims, keepdim=True)
        rstd = torch.rsqrt(centred.pow(2).mean(ctx.dims, keepdim=True) + eps)
        normed = centred * rstd
        a = rstd if weight is None else rstd * weight
        ctx.save_for_forward(a, normed)

    @staticmethod
    def jvp(ctx, x_t, *_):
        return _Tangents.apply(partial(_layer_norm_tangent, dims=ctx.dims), (x_t,), ctx.saved_tensors)


def _layer_norm_tangent(tangents, constants, dims):
    """``a ⊙ (t − mean t − x̂ · mean(x̂ ⊙ t))``: one fresh tensor, then in place."""
    (t,), (a, normed) = tangents, constants
    projection = (normed * t).mean(dims, keepdim=True)
    return (t - t.mean(dims, keepdim=True)).addcmul_(normed, projection, value=-1).mul_(a), 0


class _GELU(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, approximate):
        return F.gelu(x, approximate=approximate)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, approximate = inputs
        slope = torch.ops.aten.gelu_backward(torch.ones_like(x), x, approximate=approximate)  # one fused pass
        ctx.save_for_forward(slope)

    @staticmethod
    def jvp(ctx, x_t, _):
        (slope,) = ctx.saved_tensors
        return x_t * slope


_ALL_BACKENDS = [getattr(SDPBackend, name) for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION",
                                                       "CUDNN_ATTENTION", "MATH") if hasattr(SDPBackend, name)]


class _Attention(torch.autograd.Function):
    """``scaled_dot_product_attention`` without dropout: the fused kernel for the primal,
    the attention weights ``A`` recomputed once for the tangent. ``varies`` says which of
    ``q, k, v`` carry a tangent (the others' materialised zero tangents are skipped)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(q, k, v, mask, is_causal, scale, varies):
        if not constant(q, k, v):  # a vmap over the primal: the fused kernels have no batching rule
            return _weights(q, k, mask, is_causal, scale) @ v
        with sdpa_kernel(_ALL_BACKENDS):  # undo TangentRules' math-only setting: the primal has no tangent
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, mask, is_causal, scale, ctx.varies = inputs
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        ctx.save_for_forward(q * scale, k * scale, v, _weights(q, k, mask, is_causal, scale), output)

    @staticmethod
    def jvp(ctx, q_t, k_t, v_t, *_):
        varies = ctx.varies
        if not any(varies):
            return torch.zeros_like(ctx.saved_tensors[-1])
        tangents = tuple(t for t, on in zip((q_t, k_t, v_t), varies, strict=True) if on)
        return _Tangents.apply(partial(_attention_tangent, varies=varies), tangents, ctx.saved_tensors)


def _weights(q, k, mask, is_causal, scale) -> torch.Tensor:
    """The attention weights ``softmax(q kᵀ · scale + mask)``."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        logits = logits.masked_fill(~causal, float("-inf"))
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return torch.softmax(logits, -1)


def _fold(t: torch.Tensor) -> torch.Tensor:
    """``(G, *batch, N, E)`` → ``(*batch, G·N, E)``: the tangents' axis folded into the rows
    (one copy), so a product with a constant ``(*batch, N, ·)`` is one batched GEMM."""
    t = t.movedim(0, -3)
    return t.reshape(*t.shape[:-3], -1, t.shape[-1])


def _attention_tangent(tangents, constants, varies):
    """``(A⊙dS) V − rowsum(A⊙dS) ⊙ O + A dV`` with ``dS = dQ Kᵀ + Q dKᵀ`` (scaled) for
    ``G`` tangents at once, laid out as ``(*batch, G, N, ·)`` so that no product
    broadcasts a constant over the tangents: ``dS`` is one product
    ``[dQ, Q] [K, dK]ᵀ`` (or ``dQ Kᵀ`` with ``G`` folded into the rows), ``(A⊙dS) V`` one
    GEMM on the folded rows, ``A dV`` one GEMM with ``G`` folded into the columns. Under
    ``vmap`` over the model's primal as well (constants with a leading axis) the plain
    broadcasting formula is used."""
    q_scaled, k_scaled, v, weights, out = constants
    it = iter(tangents)
    q_t, k_t, v_t = (next(it) if on else None for on in varies)
    g = next(t for t in (q_t, k_t, v_t) if t is not None).shape[0]
    if any(c.dim() == tangents[0].dim() for c in constants):  # the primal is vmapped too
        return _attention_tangent_broadcast(q_t, k_t, v_t, *constants), 0
    out_t = None
    if q_t is not None or k_t is not None:
        if k_t is None:
            logits_t = (_fold(q_t) @ k_scaled.transpose(-2, -1)).unflatten(-2, (g, -1))
        else:
            k_t = k_t.movedim(0, -3)  # (*batch, G, N, E)
            q_rows = q_scaled.unsqueeze(-3).expand_as(k_t)
            if q_t is None:
                left, right = q_rows, k_t
            else:
                left = torch.cat([q_t.movedim(0, -3), q_rows], -1)
                right = torch.cat([k_scaled.unsqueeze(-3).expand_as(k_t), k_t], -1)
            logits_t = left @ right.transpose(-2, -1)  # (*batch, G, N, N)
        p = logits_t.mul_(weights.unsqueeze(-3))
        out_t = (p.flatten(-3, -2) @ v).unflatten(-2, (g, -1))
        out_t.addcmul_(p.sum(-1, keepdim=True), out.unsqueeze(-3), value=-1)
    if v_t is not None:  # A dV: G folded into the columns
        cols = v_t.movedim(0, -2)  # (*batch, N, G, E)
        term = (weights @ cols.reshape(*cols.shape[:-2], -1)).unflatten(-1, (g, -1)).transpose(-3, -2)
        out_t = term if out_t is None else out_t.add_(term)
    return out_t, out_t.dim() - 3


def _attention_tangent_broadcast(q_t, k_t, v_t, q_scaled, k_scaled, v, weights, out):
    """The same tangent with every tensor broadcast from the right (tangents ``(G, ...)``)."""
    out_t = 0
    if q_t is not None or k_t is not None:
        logits_t = 0
        if q_t is not None:
            logits_t = q_t @ k_scaled.transpose(-2, -1)
        if k_t is not None:
            logits_t = logits_t + q_scaled @ k_t.transpose(-2, -1)
        p = logits_t * weights
        out_t = p @ v - p.sum(-1, keepdim=True) * out
    if v_t is not None:
        out_t = out_t + weights @ v_t
    return out_t


_CONVS = {F.conv1d: F.conv1d, F.conv2d: F.conv2d, F.conv3d: F.conv3d}


def _args(names: tuple[str, ...], defaults: tuple, args: tuple, kwargs: dict) -> list:
    """Positional and keyword arguments of a call, in the order of ``names``."""
    return list(args) + [kwargs.get(n, d) for n, d in zip(names[len(args):], defaults[len(args):], strict=True)]


class TangentRules(TorchFunctionMode):
    """While active and grad mode is off, route linear maps, convolutions, eval batch norm, layer norm,
    GELU and attention through the cheaper jvp rules of this module (see its docstring).
    Other attention (unrouted calls, and fused paths that never reach Python, such as
    ``nn.TransformerEncoderLayer``'s) runs on the math backend: the fused CPU kernels have
    no forward-mode rule. Used by :func:`~symtrain.lie.lie_derivatives` for
    ``method="jvp"``."""

    def __enter__(self):
        self._math = sdpa_kernel(SDPBackend.MATH)
        self._math.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._math.__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not torch.is_grad_enabled():
            out = self._route(func, args, kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)

    @staticmethod
    def _route(func, args, kwargs):
        if func is F.linear:
            x, weight, bias = _args(("input", "weight", "bias"), (None, None, None), args, kwargs)
            if constant(weight, bias):
                return _Linear.apply(x, weight, bias)
        elif func in _CONVS:
            x, weight, bias, stride, padding, dilation, groups = _args(
                ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                (None, None, None, 1, 0, 1, 1), args, kwargs)
            if constant(weight, bias):
                return _Conv.apply(x, weight, bias, _CONVS[func], stride, padding, dilation, groups)
        elif func is F.batch_norm:
            x, mean, var, weight, bias, training, _, eps = _args(
                ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
                (None, None, None, None, None, False, 0.1, 1e-5), args, kwargs)
            if not training and mean is not None and var is not None and constant(mean, var, weight, bias):
                return _BatchNormEval.apply(x, mean, var, weight, bias, eps)
        elif func is F.layer_norm:
            x, shape, weight, bias, eps = _args(("input", "normalized_shape", "weight", "bias", "eps"),
                                                (None, None, None, None, 1e-5), args, kwargs)
            if constant(weight, bias):
                return _LayerNorm.apply(x, tuple(shape), weight, bias, eps)
        elif func is F.gelu:
            x, approximate = _args(("input", "approximate"), (None, "none"), args, kwargs)
            return _GELU.apply(x, approximate)
        elif func is F.scaled_dot_product_attention:
            q, k, v, mask, dropout, causal, scale, gqa = _args(
                ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
                (None, None, None, None, 0.0, False, None, False), args, kwargs)
            if dropout == 0 and not gqa and constant(mask):
                varies = tuple(not constant(t) for t in (q, k, v))
                return _Attention.apply(q, k, v, mask, causal, scale, varies)
        return NotImplemented
