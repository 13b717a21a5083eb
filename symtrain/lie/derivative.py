"""The Lie derivative of a model (Gruver et al., ICLR 2023), by forward-mode AD or by
central differences.

For a one-parameter transformation ``T_t`` with generator ``A`` (``A x = d/dt T_t x``):

- invariant outputs (logits, probabilities): ``L f(x) = d/dt f(T_t x) = J_f(x) · A x``;
- equivariant outputs (feature maps, ViT tokens, point clouds):
  ``L f(x) = d/dt ρ_out(−t) f(ρ_in(t) x) = J_f(x) · A x − A f(x)``.

Both methods compute the same two terms. The input tangent ``v = A x`` and the output
term ``A f(x)`` come from the generator (image-gradient stencils for image generators,
forward-mode AD through the action for group generators); only the directional
derivative ``J_f(x) · v`` differs:

- ``method="jvp"``: one ``torch.func.jvp`` (a forward pass carrying a tangent), not the
  double-backward trick of the reference code. Several generators share one primal pass
  through ``torch.func.vmap`` over their tangents. Without grad mode, convolutions,
  normalisations, GELU and attention use the cheaper rules of :mod:`.tangents` (weights
  as constants, primal-only factors computed once for all tangents, fused attention for
  the primal).
- ``method="fd"``: ``(f(x + h v) − f(x − h v)) / 2h``, the ± copies of every generator
  concatenated along the batch axis into one call of the model (see :func:`fd_step` for
  ``h``). Group generators move the input along the tangent line ``x ± h v``, not along
  the orbit ``act(exp(±hξ), x)``: both agree to second order
  (``act(exp(±hξ), x) = x ± h v + ½h² ξ²x + O(h³)``, and the even term cancels in the
  central difference), so the orbit gains no accuracy, while the line makes ``fd`` and
  ``jvp`` estimate the very same ``J_f(x) · v`` and needs no action on a doubled batch.
  ``f(x)`` for the output term is the mean of the ± evaluations (error ``O(h²)``, the
  order of the difference itself).
- ``method="auto"``: see :func:`resolve_method`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..actions.base import Action
from ..domains import OPTIONAL_COUNT, POSITIVE_INT, Count, OneOf, Real, check_args
from ..errors import ShapeError, SymmetryError
from ..symmetry import Symmetry, call_model
from ..tree import leaves as tree_leaves
from ..tree import tree_map
from .generators import LAYOUTS, ActionGenerator, BoundGenerator, Generator, resolve_generators
from .tangents import TangentRules

NORMS = ("squared", "abs")
METHODS = ("auto", "jvp", "fd")

#: ``h · ‖v‖ = FD_STEP_FACTOR · eps^(1/3) · ‖x‖`` (see :func:`fd_step`).
FD_STEP_FACTOR = 1.0


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
    leaves = [t for t in tree_leaves(d) if isinstance(t, Tensor)]
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
        stacked = tree_map(lambda *ts: torch.stack(ts), *tangents)
        try:
            # randomness="same": a model that draws (dropout in training, a Monte-Carlo
            # wrapper) uses one draw for every tangent, the draw of the shared primal y
            y, jv = torch.func.vmap(jvp, chunk_size=chunk_size, randomness="same")(stacked)
            y = tree_map(lambda t: t[0], y)
            return y, [tree_map(lambda t, i=i: t[i], jv) for i in range(len(tangents))]
        except (RuntimeError, NotImplementedError) as err:  # an op without a batching rule
            warnings.warn(f"vmap over tangents failed ({err}); computing generators one by one",
                          RuntimeWarning, stacklevel=3)
    outs = [jvp(v) for v in tangents]
    return outs[0][0], [o[1] for o in outs]


def _float_leaves(tree: Any) -> list[Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, Tensor) and t.is_floating_point()]


def _norm(tree: Any) -> Tensor:
    leaves = _float_leaves(tree)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.detach()) for t in leaves]))


@check_args(factor=Real(0, low_open=True, optional=True))
def fd_step(x: Any, v: Any, *, factor: float | None = None) -> float:
    """Step ``h`` of the central difference ``(f(x + h v) − f(x − h v)) / 2h``.

    The error of the central difference along ``g(t) = f(x + t v)`` is the truncation
    ``h² |g'''| / 6`` plus the rounding ``ε_f / h``, with ``ε_f ≈ eps · |f|`` the rounding
    error of one evaluation of ``f`` (``eps`` the machine epsilon of ``x``'s dtype). Their
    sum is smallest at ``h = (3 ε_f / |g'''|)^(1/3)``. The model's third derivative is
    unknown; taking ``‖x‖`` as the length over which ``f`` changes by ``O(|f|)`` (true of
    networks on normalised inputs) gives ``|g'''| ≈ |f| ‖v‖³ / ‖x‖³``, hence

        ``h · ‖v‖ = c · eps^(1/3) · ‖x‖``,

    a relative perturbation of the input of ``c · eps^(1/3)`` (4.9e-3 · c in float32,
    6.1e-6 · c in float64) whatever the generator's scale (rotation tangents are
    ~100× translation tangents on 224² images), and an error of order
    ``eps^(2/3)`` (2.4e-5 in float32, 3.7e-11 in float64). ``c`` is
    :data:`FD_STEP_FACTOR` (1 unless ``factor`` is given; on vit_tiny at 224², float32,
    the worst relative error over six generators against a float64 jvp was 1.6e-2,
    5.0e-3, 1.7e-3, 4.5e-4 and 1.9e-3 for c = 0.03, 0.1, 0.3, 1, 3). Norms are over the whole batch
    (one ``h`` per call); ``‖x‖ = 0`` falls back to ``‖v‖`` (``h = c · eps^(1/3)``), and
    ``v = 0`` gives ``h = c · eps^(1/3)`` (the difference is then 0 anyway).

    The error is relative to the size of ``f`` along the step, not to the derivative:
    where ``‖L f‖ ≪ ‖f‖ ‖v‖ / ‖x‖`` (nearly invariant models) the relative error of
    ``L f`` grows by that ratio, and a float32 ``fd`` on a near-invariant model can miss
    a relative bound the jvp meets; compare with ``method="jvp"`` there.

    Args:
        x: the input (a tensor or a tuple of tensors; non-floating leaves are ignored).
        v: the tangent, structured like ``x``.
    """
    leaves = _float_leaves(x)
    if not leaves:
        raise SymmetryError("finite differences need a floating-point input")
    eps = torch.finfo(leaves[0].dtype).eps
    c = FD_STEP_FACTOR if factor is None else factor
    nx, nv = float(_norm(x)), float(_norm(v))
    scale = nx if nx > 0 else nv
    ratio = scale / nv if nv > 0 and scale > 0 else 1.0
    return c * eps ** (1 / 3) * ratio


#: Leaf modules that are smooth (C∞) maps in evaluation mode: linear maps, normalisations,
#: average pooling, smooth activations. Matched by class or by class name (timm's own
#: layers, so timm need not be imported). Anything else (ReLU, max-pooling, hard
#: activations, unknown modules) may have kinks.
SMOOTH_MODULES: tuple[type, ...] = (
    nn.Linear, nn.Bilinear, nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.conv._ConvNd,
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d, nn.PixelShuffle, nn.PixelUnshuffle, nn.Embedding, nn.MultiheadAttention,
    nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softmax, nn.LogSoftmax)
SMOOTH_MODULE_NAMES = frozenset({
    "LayerNorm2d", "RmsNorm", "RmsNorm2d", "LayerScale", "LayerScale2d", "GELUTanh", "QuickGELU",
    "DropPath", "PatchDropout", "Swish", "Mish", "GELU", "Sigmoid", "Tanh"})


def _smooth(model: nn.Module) -> bool:
    """Whether every leaf module of ``model`` is in :data:`SMOOTH_MODULES`."""
    return all(isinstance(m, SMOOTH_MODULES) or type(m).__name__ in SMOOTH_MODULE_NAMES
               for m in model.modules() if next(m.children(), None) is None)


class StochasticModelWarning(UserWarning):
    """A Lie derivative of a model that draws randomness on each call (Monte-Carlo group
    averaging, LPS, sampled frames): the derivative of one draw, not the wrapper's
    equivariance."""


def _check_stochastic(model: Any, method: str) -> None:
    """A stochastic wrapper (``model.stochastic``): the central difference would compare
    two independent draws (refused); the jvp holds one draw fixed while the input moves,
    which is the sensitivity of one Monte-Carlo estimate, not the wrapper's equivariance
    (warned: ``symtrain.equivariance_error`` checks that exactly, with the draw moved)."""
    name = type(model).__name__
    if method == "fd":
        raise SymmetryError(f"method='fd' on {name}, which draws its randomness anew on every call "
                            "(stochastic=True): the central difference would compare independent draws. "
                            "Use method='jvp' (one draw held fixed), or symtrain.equivariance_error for "
                            "the wrapper's equivariance (an exact check with the draw moved)")
    warnings.warn(f"{name} draws its randomness anew on every call (stochastic=True): its Lie derivative "
                  "holds one draw fixed while the input moves, the sensitivity of one Monte-Carlo estimate, "
                  "not the wrapper's equivariance (symtrain.equivariance_error checks that exactly)",
                  StochasticModelWarning, stacklevel=4)


@check_args(per_call=POSITIVE_INT)
def resolve_method(model: Any, x: Any, method: str = "auto",
                   generators: Sequence[Generator] = (), per_call: int = 1) -> str:
    """The method ``lie_derivative(s)`` uses: ``"jvp"`` or ``"fd"``.

    ``per_call`` is the number of generators evaluated together (``lie_derivatives`` with
    ``share_primal``: all of them, or ``chunk_size``). ``"auto"`` picks:

    - ``"jvp"`` for group generators (:class:`ActionGenerator`): the models checked along
      a group's orbit are typically symmetrization wrappers (frame averaging,
      canonicalization: sorting, PCA frames, argmax), piecewise maps whose kinks hide in
      their own ``forward``; checking their exactness needs the jvp's rounding-level zero
      (fd gave 1.2e-4 on an exactly equivariant frame-averaged model in float32);
    - for image generators, ``"fd"`` for float64 inputs: the central difference's error is of order
      ``eps^(2/3)`` (measured 1e-9 against the jvp on resnet18 and vit_tiny), and it
      costs two evaluations per generator;
    - in float32, ``"fd"`` if ``model`` is a module whose leaf modules are all smooth
      (:data:`SMOOTH_MODULES`: linear maps, normalisations, average pooling, GELU/SiLU/
      tanh/...), else ``"jvp"``. Kinks (ReLU, max-pooling) break the central difference:
      on resnet18 (random init, 224²) its error was 2e-2 to 8e-2 for every step from
      ``0.03`` to ``3 · eps^(1/3)``, while vit_tiny stayed within 4.5e-4 of the float64
      jvp. Functions that are not modules, and modules calling ``F.relu`` in their own
      ``forward`` (not visible as a leaf), are not inspected: pass ``method`` explicitly
      for those (non-modules get ``"jvp"``);
    - ``"jvp"`` in half precision (the central difference's error would be 1e-2 to 4e-2)
      and when a batch-norm or dropout layer is in training mode (the ± copies share one
      batch: batch statistics would mix them, dropout would draw a mask per copy);
    - ``"jvp"`` for a stochastic wrapper (``model.stochastic``), with a
      :class:`StochasticModelWarning`; ``"fd"`` is refused there (its ± copies would get
      independent draws);
    - ``"jvp"`` whenever ``per_call ≥ 2``: the central difference costs two evaluations
      per generator whatever their number, while the jvp's generators share one primal
      (``bench/lie.py``, 12 generators, per generator ÷ forward: fd 2.5–3.5×, jvp
      1.6–2.0×).

    Where ``"fd"`` is picked (one generator at a time) it is the faster method on CPU
    (``bench/lie.py``: vit_tiny 1.7–2.0× a forward against the jvp's 3.8×, whose primal
    also prepares every tangent rule).
    """
    if method not in METHODS:
        raise SymmetryError(f"method must be one of {METHODS}, got {method!r}")
    if getattr(model, "stochastic", False):
        _check_stochastic(model, method)
        return "jvp"
    if method != "auto":
        return method
    if per_call >= 2 or any(isinstance(g, ActionGenerator) for g in generators):
        return "jvp"
    leaves = _float_leaves(x)
    if not leaves or leaves[0].dtype not in (torch.float32, torch.float64):
        return "jvp"
    owner = module_of(model)
    if owner is None:
        return "fd" if leaves[0].dtype == torch.float64 else "jvp"
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    for m in owner.modules():
        rate = getattr(m, "p", getattr(m, "drop_prob", 0.0)) or 0.0
        dropout = (isinstance(m, _DropoutNd) or type(m).__name__ in ("DropPath", "DropBlock2d")) and rate > 0
        if m.training and (dropout or isinstance(m, _BatchNorm)):
            return "jvp"
    if leaves[0].dtype == torch.float64 or _smooth(owner):
        return "fd"
    return "jvp"


def _batch_axis(x: Any) -> int | None:
    """The common leading size of every tensor leaf of ``x`` (``None`` if there is none)."""
    sizes = {t.shape[0] if t.dim() else None for t in tree_leaves(x) if isinstance(t, Tensor)}
    return sizes.pop() if len(sizes) == 1 else None


def _evaluate(model: Any, copies: list[Any], batch: int | None) -> list[Any]:
    """``[f(c) for c in copies]``, in one call on the copies concatenated along the batch
    axis when every input and output leaf has it; one call per copy otherwise."""
    if batch is not None and len(copies) > 1:
        joined = tree_map(lambda *ls: torch.cat(ls) if isinstance(ls[0], Tensor) else ls[0], *copies)
        y = call_model(model, joined)
        k = len(copies)
        if all(isinstance(t, Tensor) and t.dim() and t.shape[0] == k * batch for t in tree_leaves(y)):
            return [tree_map(lambda t, i=i: t[i * batch:(i + 1) * batch], y) for i in range(k)]
    return [call_model(model, c) for c in copies]


def _fd_many(model: Any, x: Any, tangents: list[Any],
             chunk_size: int | None = None) -> tuple[Any, list[Any]]:
    """``f(x)`` (the mean of the ± evaluations) and the central differences
    ``(f(x + h v) − f(x − h v)) / 2h`` for every tangent ``v``, ``chunk_size`` generators
    (``2 · chunk_size`` copies of the batch) per call of the model."""
    batch = _batch_axis(x)
    steps = [fd_step(x, v) for v in tangents]

    def moved(v: Any, h: float) -> Any:
        return tree_map(lambda a, b: a + h * b if isinstance(a, Tensor) and a.is_floating_point() else a,
                               x, v)

    copies = [moved(v, s * h) for v, h in zip(tangents, steps, strict=True) for s in (1.0, -1.0)]
    per_call = 2 * (chunk_size or len(tangents))
    outs: list[Any] = []
    for start in range(0, len(copies), per_call):
        outs.extend(_evaluate(model, copies[start:start + per_call], batch))
    y = tree_map(lambda *ts: torch.stack(ts).mean(0), *outs)
    diffs = [tree_map(lambda a, b, h=h: (a - b) / (2 * h), outs[2 * i], outs[2 * i + 1])
             for i, h in enumerate(steps)]
    return y, diffs


@check_args(num_prefix_tokens=Count(0, optional=True), order=OneOf(2, 4), chunk_size=OPTIONAL_COUNT)
def lie_derivatives(model: nn.Module, x: Any, transforms: Any = "all", *, output: Any = None,
                    symmetry: Symmetry | None = None, num_prefix_tokens: int | None = None,
                    norm: str | None = None, order: int = 2, padding: str = "replicate",
                    share_primal: bool = True, chunk_size: int | None = None,
                    method: str = "auto") -> dict[str, Tensor]:
    """Lie derivatives of ``model`` at ``x`` for several generators in one batched pass.

    Args:
        model: any module (with ``jvp``, attention runs through :mod:`.tangents`' rule or
            on the math backend for the duration).
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
        share_primal: ``jvp``: ``vmap`` over the tangents so the primal runs once per
            chunk; ``fd``: all generators' ± copies in one call per chunk. ``False``: one
            generator at a time.
        chunk_size: generators per batched call (bounds memory: ``jvp`` carries
            ``chunk_size`` tangents, ``fd`` ``2 · chunk_size`` copies of the batch).
            ``None`` (default): all at once. With ``jvp`` each chunk runs the primal
            again (12 generators in chunks of 6 ran it twice).
        method: ``"jvp"`` (forward-mode AD), ``"fd"`` (central differences) or
            ``"auto"`` (see :func:`resolve_method`).
    Returns:
        ``{generator name: derivative}``.
    """
    gens = resolve_generators(transforms, symmetry, order=order, padding=padding)
    per_call = min(chunk_size or len(gens), len(gens)) if share_primal else 1
    method = resolve_method(model, x, method, gens, per_call)
    with TangentRules() if method == "jvp" else contextlib.nullcontext():
        bound = _bind_all(model, x, gens, output, num_prefix_tokens)
        tangents = [b.input_tangent for b in bound]
        if method == "fd":
            y, jvs = _fd_many(model, x, tangents, chunk_size if share_primal else 1)
        else:
            y, jvs = _jvp_many(model, x, tangents, share_primal, chunk_size)
        out = {}
        for b, jv in zip(bound, jvs, strict=True):
            d = tree_map(torch.sub, jv, b.output_tangent(y))
            out[b.name] = d if norm is None else per_example_norm(d, norm)
    return out


@check_args(num_prefix_tokens=Count(0, optional=True), order=OneOf(2, 4))
def lie_derivative(model: nn.Module, x: Any, transform: str | Generator, *, output: Any = None,
                   symmetry: Symmetry | None = None, num_prefix_tokens: int | None = None,
                   norm: str | None = None, order: int = 2, padding: str = "replicate",
                   method: str = "auto") -> Tensor:
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
                          padding=padding, share_primal=False, method=method)
    return next(iter(out.values()))
