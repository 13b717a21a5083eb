"""The Lie derivative of a model (Gruver et al., ICLR 2023), by forward-mode AD.

For a one-parameter transformation ``T_t`` with generator ``A`` (``A x = d/dt T_t x``):

- invariant outputs (logits, probabilities): ``L f(x) = d/dt f(T_t x) = J_f(x) · A x``;
- equivariant outputs (feature maps, ViT tokens, point clouds):
  ``L f(x) = d/dt T_t⁻¹ f(T_t x) = J_f(x) · A x − A f(x)``.

``J_f(x) · A x`` is one ``torch.func.jvp`` (a forward pass carrying a tangent), not the
double-backward trick of the reference code. Several generators share one primal pass
through ``torch.func.vmap`` over their tangents.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from ..actions.base import Action
from ..errors import ShapeError, SymmetryError
from ..symmetry import call_model
from ..symmetry import Symmetry
from .generators import ActionGenerator, BoundGenerator, Generator, LAYOUTS, resolve_generators

NORMS = ("squared", "abs")


def module_of(model: Any) -> nn.Module | None:
    """The module behind a model: itself, or the owner of a bound method such as
    ``vit.forward_features``."""
    owner = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@contextlib.contextmanager
def forward_ad_attention(model: Any) -> Iterator[None]:
    """Run attention on the math path while the context is open, then restore the
    user's setting.

    Fused scaled-dot-product attention has no forward-mode AD on CPU
    (``_scaled_dot_product_flash_attention_for_cpu``). timm modules carry a
    ``fused_attn`` flag (switched off here); plain ``F.scaled_dot_product_attention``
    calls are routed to the math backend.
    """
    owner = module_of(model)
    modules = owner.modules() if owner is not None else ()
    saved = [(m, m.fused_attn) for m in modules if isinstance(getattr(m, "fused_attn", None), bool)]
    for m, _ in saved:
        m.fused_attn = False
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for m, flag in saved:
            m.fused_attn = flag


def output_layout(output: Any, model: nn.Module | None = None,
                  num_prefix_tokens: int | None = None):
    """A function ``y -> (layout, num_prefix_tokens)`` for image generators.

    ``output=None`` reads the layout from the rank of ``y``: ``(B,)`` or ``(B, K)`` is
    invariant, ``(B, C, H, W)`` an image; anything else must be named.
    """
    if output is not None and output not in LAYOUTS:
        raise SymmetryError(f"output must be one of {LAYOUTS}, an Action (for group "
                            f"generators) or None, got {output!r}")

    def resolve(y: Any) -> tuple[str, int]:
        if not isinstance(y, Tensor):
            raise ShapeError(f"image transforms need a tensor output, got {type(y).__name__}")
        layout = output
        if layout is None:
            if y.dim() <= 2:
                layout = "invariant"
            elif y.dim() == 4:
                layout = "image"
            else:
                raise ShapeError(
                    f"output of shape {tuple(y.shape)} is neither invariant (B, K) nor image-like "
                    "(B, C, H, W): say how the transform acts on it with output='tokens' "
                    "(ViT tokens (B, N, C)), 'image' or 'invariant'")
        prefix = 0
        if layout == "tokens":
            prefix = num_prefix_tokens
            if prefix is None:
                prefix = getattr(module_of(model), "num_prefix_tokens", None)
            if prefix is None:
                raise SymmetryError("output='tokens' needs num_prefix_tokens (cls/distillation "
                                    "tokens left untransformed); the model has no num_prefix_tokens")
        return layout, int(prefix)
    return resolve


def per_example_norm(d: Any, norm: str = "squared") -> Tensor:
    """``(B,)`` size of a Lie derivative per example: ``"squared"`` is ``‖L f(x)‖²``
    summed over output entries (the paper's equation), ``"abs"`` the mean of ``|L f(x)|``
    over output entries (the reference code's)."""
    if norm not in NORMS:
        raise SymmetryError(f"norm must be one of {NORMS}, got {norm!r}")
    leaves = [t for t in pytree.tree_leaves(d) if isinstance(t, Tensor)]
    flat = torch.cat([t.reshape(t.shape[0], -1) for t in leaves], 1)
    return flat.pow(2).sum(1) if norm == "squared" else flat.abs().mean(1)


def _bind_all(model, x, generators, output, num_prefix_tokens) -> list[BoundGenerator]:
    bound = []
    layout = None
    for gen in generators:
        if isinstance(gen, ActionGenerator):
            if output is not None and not isinstance(output, Action):
                raise SymmetryError(f"group generator {gen.name} needs output=None or an Action, got {output!r}")
            bound.append(gen.bind(x, output))
        else:
            if isinstance(output, Action):
                raise SymmetryError("image transforms take output='invariant'|'image'|'tokens', not an Action")
            layout = layout or output_layout(output, model, num_prefix_tokens)
            bound.append(gen.bind(x, layout))
    return bound


def _jvp_many(model: nn.Module, x: Any, tangents: list[Any], share_primal: bool,
              chunk_size: int | None = None) -> tuple[Any, list[Any]]:
    """``f(x)`` and ``J_f(x) v`` for every tangent ``v``."""
    primals = x if isinstance(x, tuple) else (x,)

    def jvp(v):
        vs = v if isinstance(x, tuple) else (v,)
        return torch.func.jvp(lambda *p: call_model(model, p if isinstance(x, tuple) else p[0]), primals, vs)

    if share_primal and len(tangents) > 1:
        stacked = pytree.tree_map(lambda *ts: torch.stack(ts), *tangents)
        try:
            y, jv = torch.func.vmap(jvp, chunk_size=chunk_size)(stacked)
            y = pytree.tree_map(lambda t: t[0], y)
            return y, [pytree.tree_map(lambda t, i=i: t[i], jv) for i in range(len(tangents))]
        except (RuntimeError, NotImplementedError) as err:  # an op without a batching rule
            warnings.warn(f"vmap over tangents failed ({err}); computing generators one by one",
                          RuntimeWarning, stacklevel=3)
    outs = [jvp(v) for v in tangents]
    return outs[0][0], [o[1] for o in outs]


def lie_derivatives(model: nn.Module, x: Any, transforms: Any = "all", *, output: Any = None,
                    symmetry: Symmetry | None = None, num_prefix_tokens: int | None = None,
                    norm: str | None = None, order: int = 2, padding: str = "replicate",
                    share_primal: bool = True, chunk_size: int | None = 6) -> dict[str, Tensor]:
    """Lie derivatives of ``model`` at ``x`` for several generators, sharing the primal pass.

    Args:
        model: any module; fused attention is switched to the math path for the duration.
        x: images ``(B, C, H, W)`` for image transforms; whatever ``symmetry.input`` acts
            on for group generators.
        transforms: a name from :data:`~symtrain.lie.generators.IMAGE_GENERATORS`,
            ``"all"``, a list of names, or :class:`~symtrain.lie.generators.Generator`
            objects; with ``symmetry``, ``"all"`` means the group's Lie-algebra basis.
        output: how the transform acts on the output: ``None`` (``(B, K)`` invariant,
            ``(B, C, H, W)`` image; for group generators ``symmetry.output``),
            ``"invariant"``, ``"image"``, ``"tokens"`` (``(B, N, C)``, first
            ``num_prefix_tokens`` untransformed, default ``model.num_prefix_tokens``) or an
            :class:`~symtrain.actions.Action`.
        norm: ``None`` returns ``L f(x)`` (shaped like the output); ``"squared"`` or
            ``"abs"`` returns ``(B,)`` per-example sizes (see :func:`per_example_norm`).
        order, padding: image-gradient stencil and border (see ``image_gradient``).
        share_primal: ``vmap`` over the tangents so the primal runs once per chunk.
        chunk_size: tangents per ``vmap`` chunk (bounds memory; ``None``: all at once).
    Returns:
        ``{generator name: derivative}``.
    """
    gens = resolve_generators(transforms, symmetry, order=order, padding=padding)
    with forward_ad_attention(model):
        bound = _bind_all(model, x, gens, output, num_prefix_tokens)
        y, jvs = _jvp_many(model, x, [b.input_tangent for b in bound], share_primal, chunk_size)
        out = {}
        for b, jv in zip(bound, jvs):
            d = pytree.tree_map(torch.sub, jv, b.output_tangent(y))
            out[b.name] = d if norm is None else per_example_norm(d, norm)
    return out


def lie_derivative(model: nn.Module, x: Any, transform: str | Generator, *, output: Any = None,
                   symmetry: Symmetry | None = None, num_prefix_tokens: int | None = None,
                   norm: str | None = None, order: int = 2, padding: str = "replicate") -> Tensor:
    """The Lie derivative of ``model`` at ``x`` along one generator.

    ``L f(x) = d/dt T_t⁻¹ f(T_t x)`` at ``t = 0`` (``T_t⁻¹`` dropped for invariant
    outputs). Translations are in pixels of the input. See :func:`lie_derivatives` for
    the arguments.

    >>> import torch, symtrain as st
    >>> pool = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> d = st.lie_derivative(pool, torch.randn(2, 3, 8, 8), "rotation", padding="circular", norm="abs")
    >>> d.shape
    torch.Size([2])
    """
    if isinstance(transform, (list, tuple)) or transform == "all":
        raise SymmetryError("lie_derivative takes one transform; use lie_derivatives for several")
    out = lie_derivatives(model, x, [transform], output=output, symmetry=symmetry,
                          num_prefix_tokens=num_prefix_tokens, norm=norm, order=order,
                          padding=padding, share_primal=False)
    return next(iter(out.values()))
