"""Discrete equivariance diagnostics on the pixel grid: which layers of a network keep an
exact grid symmetry (rotations by 90°, flips, integer or fractional shifts), and which
input sizes let a strided group CNN be exactly equivariant.

The input-size rule (Edixhoven, Lengyel, van Gemert 2023): a stride-2 convolution with a
3×3 kernel and padding 1 samples input pixels 0, 2, 4, …; the sampled grid is symmetric
about the image centre, so that rotating the input by 90° rotates the sampled grid onto
itself, only when the last sampled pixel is the last pixel, i.e. the size n is odd. With
L such layers every intermediate size must be odd: n ≡ 1 (mod 2^L). So a p4 ResNet with
two downsamplings is exact at 29, 33, 37 and not at 32.

In general a layer with kernel k, stride s and padding p is centred on a side n when
``n + 2p − k ≡ 0 (mod s)``: 2×2 max-pooling with stride 2 needs even sides, so a net with
L such poolings is exact at n ≡ 0 (mod 2^L) (the rotated-MNIST P4 CNN: 28 exact, 27 and 29
not). :func:`input_size_check` states the rule of the strided layers it finds and names,
for each size, the layers whose sampled grid is off-centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..actions.base import Action
from ..actions.registry import create_action
from ..domains import FINITE, NON_NEGATIVE, OPTIONAL_COUNT, POSITIVE_INT, Counts, check_args, check_fields
from ..errors import ShapeError, SymmetryError
from ..groups.base import element_batch_size
from ..symmetry import Symmetry
from .equivariance import equivariance_error

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


# --- transformations of every image-like tensor of a network -------------------------
@dataclass(frozen=True)
class Shift:
    """Translation by ``(dx, dy)`` pixels of the network input (x right, y up).

    On a feature map of width ``W'`` (input width ``W``) the shift is ``dx·W'/W`` of its
    own pixels: an integer shift there is a circular ``roll``, a fractional one (or
    ``mode="fourier"``) a band-limited circular shift by a phase ramp in Fourier space.
    Regular group fibres are not moved by translations."""

    dx: float
    dy: float = 0.0
    mode: str = "circular"
    __domains__ = dict(dx=FINITE, dy=FINITE)

    def __post_init__(self):
        check_fields(self)
        if self.mode not in ("circular", "fourier"):
            raise SymmetryError(f"shift mode must be 'circular' or 'fourier', got {self.mode!r}")

    @property
    def name(self) -> str:
        return f"shift({self.dx:g},{self.dy:g})"

    def apply(self, t: Tensor, reference: tuple[int, int]) -> Tensor:
        """Shift ``t`` ``(B, C, H, W)`` (a map covering the same view as ``reference``)."""
        h, w = t.shape[-2:]
        cols, rows = self.dx * w / reference[1], -self.dy * h / reference[0]  # rows run down
        if self.mode == "circular" and float(cols).is_integer() and float(rows).is_integer():
            return torch.roll(t, (int(rows), int(cols)), dims=(-2, -1))
        return fourier_shift(t, rows, cols)


def fourier_shift(t: Tensor, rows: float, cols: float) -> Tensor:
    """Band-limited circular shift of ``(…, H, W)`` by ``rows``, ``cols`` pixels (a
    fractional shift of the trigonometric interpolant; the Nyquist term is kept real)."""
    h, w = t.shape[-2:]
    fy = torch.fft.fftfreq(h, device=t.device, dtype=t.dtype)
    fx = torch.fft.rfftfreq(w, device=t.device, dtype=t.dtype)
    py, px = torch.exp(-2j * math.pi * fy * rows), torch.exp(-2j * math.pi * fx * cols)
    if h % 2 == 0:  # the Nyquist frequency of a real signal can only be scaled, not rotated
        py[h // 2] = py[h // 2].real.clone()
    if w % 2 == 0:
        px[w // 2] = px[w // 2].real.clone()
    phase = py[:, None] * px[None, :]
    return torch.fft.irfft2(torch.fft.rfft2(t) * phase, s=(h, w))


# --- how a layer's output is transformed --------------------------------------------
def _unwrap(y: Any) -> tuple[Tensor | None, str | None]:
    """``(tensor, fiber)`` of a layer output: plain tensors have scalar (trivial)
    channels; an escnn GeometricTensor tells its fibre from its field type."""
    if isinstance(y, Tensor):
        return y, "trivial"
    ftype = getattr(y, "type", None)
    if isinstance(getattr(y, "tensor", None), Tensor) and ftype is not None:
        reps = list(getattr(ftype, "representations", []))
        if reps and all(r.name == "regular" for r in reps):
            return y.tensor, "regular"
        if reps and all(r.is_trivial() for r in reps):
            return y.tensor, "trivial"
        return y.tensor, None
    return None, None


@dataclass
class LayerVerdict:
    """One row of :func:`layer_equivariance`: relative error of a layer's output,
    ``‖m(g·x) − g·m(x)‖ / ‖g·m(x)‖`` over inputs and transformations."""

    layer: str
    shape: tuple[int, ...]
    mean: float
    max: float
    equivariant: bool | None
    note: str = ""

    def __str__(self) -> str:
        verdict = {True: "equivariant", False: "NOT equivariant", None: "not checked"}[self.equivariant]
        err = f"max rel. error {self.max:.2e}" if self.equivariant is not None else self.note
        return f"{self.layer:<28} {str(self.shape):<20} {verdict:<16} {err}"


def _default_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_modules():
        if not name or isinstance(m, _CONTAINERS) or type(m).__name__ == "SequentialModule":
            continue
        out.append((name, m))
    return out


def _call_raw(model: Any, x: Tensor) -> Any:
    """``model(x)``; an escnn module (one with an ``in_type``) gets a GeometricTensor."""
    in_type = getattr(model, "in_type", None)
    if in_type is None:
        return model(x)
    from escnn.nn import GeometricTensor  # only when the model is an escnn module

    return model(GeometricTensor(x, in_type))


def _as_tensor_fn(model: Any):
    """``model`` as a function of tensors to tensors (escnn wrapping undone)."""
    return lambda x: _unwrap(_call_raw(model, x))[0]


def _relative(a: Tensor, b: Tensor, batch: int, k: int, eps: float = 1e-12) -> Tensor:
    a, b = a.reshape(batch * k, -1).double(), b.reshape(batch * k, -1).double()
    return ((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(eps)).reshape(batch, k)


@torch.no_grad()
@check_args(tol=NON_NEGATIVE, samples=OPTIONAL_COUNT)
def layer_equivariance(model: nn.Module, x: Tensor, transforms: Symmetry | Sequence[Shift] | str, *,
                       layers: Sequence[tuple[str, nn.Module]] | None = None,
                       layer_actions: dict[str, Action] | None = None, tol: float = 1e-4,
                       samples: int | None = None) -> list[LayerVerdict]:
    """Per-layer verdicts: is each hooked layer's output transformed the way the input was?

    Args:
        model: a CNN (plain or escnn; escnn modules receive ``GeometricTensor`` inputs of
            their ``in_type`` automatically).
        x: images ``(B, C, H, W)``.
        transforms: a :class:`~symtrain.Symmetry` of a grid group (``"C4"``, ``"D4"``:
            all its elements are tried, via rot90/flip), a group name (input
            ``Image()``), or a list of :class:`Shift`.
        layers: ``[(name, module)]`` to hook; default every non-container submodule.
        layer_actions: per-layer action overriding the default (``(B, C, H, W)`` maps:
            ``Image`` with the fibre an escnn output declares, regular or trivial;
            ``(B, C)`` vectors: invariant; anything else: not checked).
        tol: relative error at or below which a layer counts as equivariant.
    Returns:
        one :class:`LayerVerdict` per layer in forward order, then ``"(output)"``.
    """
    explicit = isinstance(transforms, Symmetry)
    if isinstance(transforms, str):
        transforms = Symmetry(transforms, input="image", output="trivial")
    layer_actions = dict(layer_actions or {})
    module = model if isinstance(model, nn.Module) else None
    layers = list(layers) if layers is not None else (_default_layers(module) if module is not None else [])
    batch = x.shape[0]
    ref = (x.shape[-2], x.shape[-1])

    if isinstance(transforms, Symmetry):
        sym = transforms
        ctx = sym.context(x)
        g = (sym.all_elements(ctx, device=x.device) if samples is None and sym.group.is_finite
             else sym.sample(ctx, samples or 8, device=x.device, dtype=x.dtype))
        k = element_batch_size(g) // batch
        moved = sym.act_input(g, sym.input.repeat(x, k, ctx), ctx.repeat(k))

        def move(t: Tensor, fiber: str | None, name: str) -> Tensor | str:
            action = layer_actions.get(name)
            if action is None:
                if t.dim() <= 2:
                    action = create_action("trivial")
                elif t.dim() == 4 and fiber is not None and sym.group.acts_on_grid:
                    action = create_action("image", fiber=fiber)
                else:
                    return "no action known for this output; pass layer_actions"
            try:
                action.check(t.repeat_interleave(k, 0), sym.group)
            except ShapeError as err:
                return str(err)
            return action.act(sym.group, g, t.repeat_interleave(k, 0))
        final_action = sym.output if explicit else None
    else:
        shifts = list(transforms)
        if not shifts or not all(isinstance(s, Shift) for s in shifts):
            raise SymmetryError("transforms must be a Symmetry, a group name, or a list of Shift")
        k = len(shifts)
        moved = torch.cat([s.apply(x, ref)[:, None] for s in shifts], 1).flatten(0, 1)  # b-major

        def move(t: Tensor, fiber: str | None, name: str) -> Tensor | str:
            if t.dim() <= 2:
                return t.repeat_interleave(k, 0)
            if t.dim() != 4:
                return "not an image-like output"
            tb = t.reshape(batch, 1, *t.shape[1:])
            return torch.cat([s.apply(tb[:, 0], ref)[:, None] for s in shifts], 1).flatten(0, 1)
        final_action = None

    captured: dict[str, list[Any]] = {}
    handles = [m.register_forward_hook(lambda mod, a, out, n=n: captured.setdefault(n, []).append(out))
               for n, m in layers]
    try:
        y0 = _call_raw(model, x)
        y1 = _call_raw(model, moved)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, _ in layers:
        outs = captured.get(name, [])
        if len(outs) != 2:
            continue  # not run, or run several times per forward (shared module)
        (t0, fiber), (t1, _) = _unwrap(outs[0]), _unwrap(outs[1])
        if t0 is None or t1 is None:
            rows.append(LayerVerdict(name, (), math.nan, math.nan, None, "output is not a tensor"))
            continue
        target = move(t0, fiber, name)
        if isinstance(target, str):
            rows.append(LayerVerdict(name, tuple(t0.shape[1:]), math.nan, math.nan, None, target))
            continue
        err = _relative(t1, target, batch, k)
        rows.append(LayerVerdict(name, tuple(t0.shape[1:]), float(err.mean()), float(err.max()),
                                 bool(err.max() <= tol)))
    y0t, fiber = _unwrap(y0)
    y1t, _ = _unwrap(y1)
    if y0t is None or y1t is None:
        raise ShapeError("layer_equivariance needs a model whose output is a tensor (or an escnn GeometricTensor)")
    if final_action is not None:
        target = final_action.act(sym.group, g, y0t.repeat_interleave(k, 0))
    else:
        target = move(y0t, fiber, "(output)")
    if isinstance(target, str):
        rows.append(LayerVerdict("(output)", tuple(y0t.shape[1:]), math.nan, math.nan, None, target))
    else:
        err = _relative(y1t, target, batch, k)
        rows.append(LayerVerdict("(output)", tuple(y0t.shape[1:]), float(err.mean()), float(err.max()),
                                 bool(err.max() <= tol)))
    return rows


# --- which input sizes are exact -----------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[-1]))


def sampling_offsets(model: nn.Module, x: Tensor) -> list[tuple[str, int, float]]:
    """For every strided layer (``stride`` > 1, with ``kernel_size``/``padding``), run on
    ``x`` and report ``(layer, input size, offset)``: how far (in input pixels, along
    width) the centre of the sampled grid is from the centre of the input. Zero at
    every layer is what exact rot90 equivariance needs."""
    return [(name, n, offset) for name, n, offset, _ in _strided_layers(model, x)]


def _strided_layers(model: nn.Module, x: Tensor) -> list[tuple[str, int, float, tuple[int, int, int]]]:
    """:func:`sampling_offsets` rows with each layer's ``(kernel, stride, padding)`` along width."""
    records: list[tuple[str, int, float, tuple[int, int, int]]] = []

    def hook(name):
        def fn(mod, args, out):
            t, _ = _unwrap(args[0]) if args else (None, None)
            if t is None or t.dim() != 4:
                return
            k, s, p = _pair(mod.kernel_size), _pair(mod.stride), _pair(getattr(mod, "padding", 0))
            n = t.shape[-1]
            m = (n + 2 * p[1] - k[1]) // s[1] + 1
            first = (k[1] - 1) / 2 - p[1]
            last = first + s[1] * (m - 1)
            records.append((name, n, (first + last) / 2 - (n - 1) / 2, (k[1], s[1], p[1])))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if max(_pair(getattr(m, "stride", 1))) > 1 and hasattr(m, "kernel_size")]
    try:
        with torch.no_grad():
            _call_raw(model, x)
    finally:
        for h in handles:
            h.remove()
    return records


@dataclass
class InputSizeScan:
    """Result of :func:`input_size_check`. ``rows``: per size ``{size, error, exact,
    predicted_exact, offsets, broken_by}`` (``broken_by``: the strided layers whose
    sampled grid is off-centre at that size, in forward order, each with its input side,
    e.g. ``"pool1 (27 px)"``)."""

    group: str
    tol: float
    rows: list[dict[str, Any]]
    downsamplings: int = 0
    explanation: str = ""

    @property
    def exact_sizes(self) -> list[int]:
        return [r["size"] for r in self.rows if r["exact"]]

    def __str__(self) -> str:
        lines = [f"input sizes exactly {self.group}-equivariant (relative error <= {self.tol:g}): "
                 f"{self.exact_sizes}", self.explanation]
        lines += [f"  {r['size']:>4}  error {r['error']:.2e}  {'exact' if r['exact'] else 'not exact'}"
                  f"  (grid {'symmetric' if r['predicted_exact'] else 'off-centre at ' + ', '.join(r['broken_by'])})"
                  for r in self.rows]
        return "\n".join(lines)


@check_args(sizes=Counts(1, what='square input sizes in pixels'), in_channels=OPTIONAL_COUNT,
            batch=POSITIVE_INT, tol=NON_NEGATIVE)
def input_size_check(model: nn.Module, sizes: Iterable[int] = range(28, 41), group: str | Symmetry = "C4", *,
                     in_channels: int | None = None, output: Action | None = None, batch: int = 2,
                     tol: float = 1e-4, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32) -> InputSizeScan:
    """Which square input sizes make ``model`` exactly equivariant to a grid group.

    For each size the model runs on random images and their transforms (all group
    elements) and the relative error is compared with ``tol``; independently the
    geometry of every strided layer (see :func:`sampling_offsets`) predicts the answer,
    and the explanation states the subsampling rule.

    Args:
        model: an image model (plain or escnn).
        group: ``"C4"``, ``"D4"`` or a :class:`Symmetry` (default output action: a regular
            field for escnn models whose output type is regular, else ``Image()`` for
            ``(B, C, H, W)`` outputs and invariant otherwise).
        in_channels: input channels (default: read from the first layer).
    """
    sym = group if isinstance(group, Symmetry) else None
    in_channels = in_channels or _in_channels(model)
    param = next((p for p in model.parameters()), None)
    device = param.device if param is not None else None
    rows = []
    depth = 0
    kinds: dict[tuple[int, int, int], list[str]] = {}
    for n in sizes:
        x = torch.randn(batch, in_channels, n, n, generator=generator, dtype=dtype).to(device)
        fn = _as_tensor_fn(model)
        if sym is None:
            with torch.no_grad():
                yt, fiber = _unwrap(_call_raw(model, x))
            if yt is None:
                raise ShapeError("input_size_check needs a model whose output is a tensor (or a GeometricTensor)")
            out = output or (create_action("image", fiber=fiber or "trivial") if yt.dim() == 4
                             else create_action("trivial"))
            sym = Symmetry(group if isinstance(group, str) else group.group, input="image", output=out)
        err = equivariance_error(fn, sym, x)
        strided = _strided_layers(model, x)
        depth = max(depth, len({size for _, size, _, _ in strided}))  # downsampling levels
        for name, _, _, kind in strided:
            if name not in kinds.setdefault(kind, []):
                kinds[kind].append(name)
        rows.append({"size": n, "error": err.max, "exact": err.max <= tol,
                     "predicted_exact": all(abs(o) < 1e-9 for _, _, o, _ in strided),
                     "offsets": [o for _, _, o, _ in strided],
                     "broken_by": [f"{name} ({size} px)" for name, size, o, _ in strided if abs(o) >= 1e-9]})
    if sym is None:  # sizes is checked non-empty, so the loop ran
        raise ShapeError("input_size_check: no sizes given")
    return InputSizeScan(str(sym.group), tol, rows, depth, _size_rule(depth, kinds))


def _size_rule(depth: int, kinds: dict[tuple[int, int, int], list[str]]) -> str:
    """The input-size rule of the strided layers found, from their (kernel, stride, padding):
    a layer is centred on side n when n ≡ k − 2p (mod s)."""
    if not kinds:
        return "no strided layer: the sampled grid is centred at every size"
    rules: dict[tuple[int, int], list[str]] = {}
    for (k, s, p), names in kinds.items():
        first = (k - 1) / 2 - p
        rules.setdefault((s, (k - 2 * p) % s), []).append(
            f"{', '.join(names)} ({k}×{k}, stride {s}, padding {p}: pixels {first:g}, {first + s:g}, …)")
    parts = [f"{'; '.join(layers)} centred only on sides n ≡ {r} (mod {s})" for (s, r), layers in rules.items()]
    text = f"{depth} downsampling level(s): " + "; ".join(parts)
    if len(rules) == 1 and next(iter(rules))[0] == 2:
        r = next(iter(rules))[1]  # every level needs an odd (3×3, padding 1) or an even (2×2 pooling) side
        text += (f"; with {depth} such level(s) every intermediate side must be {'odd' if r else 'even'}, so "
                 f"exact rot90 equivariance needs n ≡ {r} (mod 2^{depth}) = {r % 2 ** depth} (mod {2 ** depth})")
    return text + "; 'broken_by' names the layers off-centre at each size"


def _in_channels(model: nn.Module) -> int:
    in_type = getattr(model, "in_type", None)
    if in_type is not None:
        return int(in_type.size)
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    raise SymmetryError("cannot tell the model's input channels; pass in_channels=")
