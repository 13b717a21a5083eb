"""Layer-wise attribution of the Lie derivative (Gruver et al., ICLR 2023, section 5).

The chain rule splits the end-to-end Lie derivative over the units ``m_i`` of a network:

    L f(x) = Σ_i J_{>i} · L m_i(x_i),    L m_i(x_i) = J_{m_i} · A x_i − A m_i(x_i),

where ``x_i`` is the unit's actual input, ``A`` the generator acting on each tensor, and
``J_{>i}`` the Jacobian of everything after unit ``i`` with respect to its output. Operations
that are not inside any unit and are equivariant (residual additions, reshapes, cls-token
concatenation) contribute nothing; non-equivariant ones outside units (e.g. a ViT's
position-embedding addition) show up in the ``residual`` row.

Each ``L m_i`` is one ``torch.func.jvp`` of the unit (``method="jvp"``) or one central
difference of the unit on its ± copies (``method="fd"``), taken in a forward-pre hook.
With ``jvp`` the contributions add up to the end-to-end figure to rounding; with ``fd``
each term carries the central difference's error (of order ``eps^(2/3)`` relative, see
:func:`~symtrain.lie.derivative.fd_step`), which also lands in the residual. The
products with ``J_{>i}`` come from vector–Jacobian products:

- ``contribution_i = ⟨J_{>i} L m_i, L f⟩``, exactly, from one VJP with cotangent ``L f``.
  These add up to ``‖L f‖²`` (minus the residual): a signed share of the squared norm.
- with random probes ``z ~ N(0, I)``: ``s_i = zᵀ J_{>i} L m_i``; ``mean(s_i · Σ_j s_j)``
  estimates the contribution again, and ``mean(s_i²)`` estimates ``‖J_{>i} L m_i‖²``, the
  reference code's per-layer figure (it ignores cancellation between layers).

All numbers are per example in squared-norm units (the paper's equation); tables average
over the batch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..domains import POSITIVE_INT, Count, OneOf, check_args
from ..errors import SymmetryError
from .derivative import _fd_many, forward_ad_attention, lie_derivatives, resolve_method
from .generators import ImageGenerator, resolve_generators

#: Module classes (by name, so timm need not be imported) treated as one unit each.
UNIT_CLASS_NAMES = frozenset({
    "PatchEmbed", "HybridEmbed", "Attention", "Mlp", "GluMlp", "SwiGLU", "GatedMlp", "ConvMlp",
    "LayerNorm", "LayerNorm2d", "RmsNorm", "GroupNorm", "GroupNorm1", "BatchNormAct2d",
    "BatchNorm1d", "BatchNorm2d", "SelectAdaptivePool2d", "ClassifierHead", "NormMlpClassifierHead",
})
_NOOP = (nn.Identity, nn.Dropout, nn.Dropout2d)


def default_units(model: nn.Module, whole: Callable[[nn.Module], bool] | None = None,
                  skip: tuple[type[nn.Module], ...] = _NOOP) -> list[tuple[str, nn.Module]]:
    """Units of a module tree: timm blocks' parts (patch embedding, attention, MLP,
    norms, pooling heads) as wholes, any other leaf module alone; identities and dropout
    (no effect in eval mode) are left out.

    ``whole``: which modules are kept as one unit (default: the classes named in
    :data:`UNIT_CLASS_NAMES`); ``skip``: module classes left out."""
    units: list[tuple[str, nn.Module]] = []
    keep = whole or (lambda m: type(m).__name__ in UNIT_CLASS_NAMES)

    def walk(prefix: str, module: nn.Module) -> None:
        children = list(module.named_children())
        if keep(module) or not children:
            if not isinstance(module, skip) and type(module).__name__ != "DropPath":
                units.append((prefix or type(module).__name__, module))
            return
        for name, child in children:
            walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return units


def tensor_layout(t: Any, num_prefix_tokens: int) -> tuple[str, int] | None:
    """How a generator acts on an intermediate tensor, read from its rank: ``(B, C, H, W)``
    image, ``(B, N, C)`` tokens (square grid after ``num_prefix_tokens``, or with none),
    ``(B,)``/``(B, K)`` invariant; ``None`` for anything else."""
    if not isinstance(t, Tensor) or not t.is_floating_point():
        return None
    if t.dim() <= 2:
        return "invariant", 0
    if t.dim() == 4:
        return "image", 0
    if t.dim() == 3:
        for prefix in dict.fromkeys((num_prefix_tokens, 0)):
            n = t.shape[1] - prefix
            if n > 0 and math.isqrt(n) ** 2 == n:
                return "tokens", prefix
    return None


@dataclass
class LayerwiseLie:
    """Per-unit Lie-derivative attribution for one generator.

    ``names``: units in forward order. ``contribution``, ``contribution_probe``,
    ``norm_probe``: ``(B, U)`` per example (see the module docstring). ``end_to_end``:
    ``(B,)`` ``‖L f‖²``. ``skipped``: units whose inputs/outputs could not be laid out
    (their effect is in the residual)."""

    generator: str
    names: list[str]
    contribution: Tensor
    contribution_probe: Tensor
    norm_probe: Tensor
    end_to_end: Tensor
    probes: int
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def residual(self) -> Tensor:
        """``(B,)`` part of ``‖L f‖²`` from operations outside every unit."""
        return self.end_to_end - self.contribution.sum(1)

    def table(self) -> list[dict[str, Any]]:
        """One row per unit (batch means), then a ``(residual)`` row."""
        rows = [{"generator": self.generator, "layer": n, "contribution": float(c),
                 "contribution_probe": float(p), "norm_probe": float(q)}
                for n, c, p, q in zip(self.names, self.contribution.mean(0),
                                      self.contribution_probe.mean(0), self.norm_probe.mean(0), strict=True)]
        rows.append({"generator": self.generator, "layer": "(residual)",
                     "contribution": float(self.residual.mean()), "contribution_probe": float("nan"),
                     "norm_probe": float("nan")})
        return rows


class _Recorder:
    """Hooks that take each unit's Lie derivative and keep its output for the VJPs."""

    def __init__(self, units, gen: ImageGenerator, reference, num_prefix_tokens, method: str = "jvp"):
        self.units, self.gen, self.reference, self.prefix = units, gen, reference, num_prefix_tokens
        self.method = method
        self.lie: dict[str, Tensor] = {}
        self.outputs: dict[str, Tensor] = {}
        self.skipped: dict[str, str] = {}
        self.handles = []
        self.busy = False
        self.network_input: Tensor | None = None

    def tangent(self, t: Tensor, layout: tuple[str, int], is_input: bool) -> Tensor:
        return self.gen.tangent(t, layout[0], self.reference, num_prefix_tokens=layout[1],
                                is_input=is_input)

    def __enter__(self):
        for name, module in self.units:
            self.handles.append(module.register_forward_pre_hook(self._pre(name, module), with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def _pre(self, name, module):
        def hook(mod, args, kwargs):
            if self.busy:
                return None
            if len(args) != 1:
                self.skipped[name] = f"takes {len(args)} positional inputs"
                return None
            (x,) = args
            lay_in = tensor_layout(x, self.prefix)
            if lay_in is None:
                self.skipped[name] = f"input of shape {tuple(getattr(x, 'shape', ()))} has no layout"
                return None
            self.busy = True
            try:
                xd = x.detach().clone()  # in-place units must not touch the real activation
                tan = self.tangent(xd, lay_in, is_input=x is self.network_input)
                unit = lambda u: module(u, **kwargs)  # noqa: E731
                if self.method == "fd":
                    y, (jy,) = _fd_many(unit, xd, [tan])
                else:
                    y, jy = torch.func.jvp(unit, (xd,), (tan,))
            finally:
                self.busy = False
            lay_out = tensor_layout(y, self.prefix)
            if lay_out is None:
                self.skipped[name] = f"output of shape {tuple(getattr(y, 'shape', ()))} has no layout"
                return None
            self.lie[name] = (jy - self.tangent(y, lay_out, is_input=False)).detach()
            return None
        return hook

    def _post(self, name):
        def hook(mod, args, output):
            if self.busy or name not in self.lie or not isinstance(output, Tensor):
                return None
            self.outputs[name] = output
            return output.clone()  # later in-place ops (x += shortcut, ReLU) act on the copy
        return hook


@check_args(probes=POSITIVE_INT, num_prefix_tokens=Count(0, optional=True), order=OneOf(2, 4),
            probe_chunk=POSITIVE_INT)
def layerwise_lie(model: nn.Module, x: Tensor, transform: str | ImageGenerator = "translation_x", *,
                  probes: int = 100, units: Sequence[tuple[str, nn.Module]] | None = None,
                  output_fn: Callable[[Tensor], Tensor] | None = None, output: str | None = None,
                  num_prefix_tokens: int | None = None, order: int = 2, padding: str = "replicate",
                  generator: torch.Generator | None = None, probe_chunk: int = 4,
                  method: str = "auto") -> LayerwiseLie:
    """Split the Lie derivative of ``model`` at images ``x`` ``(B, C, H, W)`` over its units.

    Args:
        model: any module (put it in eval mode first: batch-norm statistics otherwise mix
            the examples).
        transform: one image generator (name or :class:`ImageGenerator`).
        probes: random probes per example for the ``*_probe`` estimates.
        units: ``[(name, module)]`` to attribute to; default :func:`default_units`.
        output_fn: applied to the model output before differentiating (e.g. ``softmax``).
        output: layout of the (transformed) output, as in
            :func:`~symtrain.lie.lie_derivative`.
        probe_chunk: probes per batched VJP.
        method: how the end-to-end and per-unit derivatives are taken: ``"jvp"``,
            ``"fd"`` or ``"auto"`` (see :func:`~symtrain.lie.derivative.resolve_method`).
    """
    (gen,) = resolve_generators([transform], order=order, padding=padding)
    if not isinstance(gen, ImageGenerator):
        raise SymmetryError("layer-wise attribution takes an image generator")
    head = output_fn or (lambda y: y)
    full = lambda u: head(model(u))  # noqa: E731
    prefix = num_prefix_tokens if num_prefix_tokens is not None else int(getattr(model, "num_prefix_tokens", 0))
    method = resolve_method(model, x, method)
    lf = lie_derivatives(full, x, [gen], output=output, num_prefix_tokens=prefix, share_primal=False,
                         method=method)  # brings its own attention handling (tangents.TangentRules)
    lf = next(iter(lf.values())).detach()
    # the hook-based pass runs with grad on: its forward-mode AD needs the math attention path
    attention = (lambda: forward_ad_attention(model)) if method == "jvp" else contextlib.nullcontext
    units = list(units) if units is not None else default_units(model)
    rec = _Recorder(units, gen, (x.shape[-2], x.shape[-1]), prefix, method)
    xin = x.detach().clone().requires_grad_(True)
    rec.network_input = xin
    with attention(), rec, torch.enable_grad():
        y = full(xin)
    names = [n for n, _ in units if n in rec.outputs]
    if not names:
        raise SymmetryError("no unit of the model could be attributed (inputs and outputs must "
                            "be single image, token or vector tensors); pass units=")
    outs = [rec.outputs[n] for n in names]
    lies = [rec.lie[n] for n in names]
    batch = x.shape[0]

    def dots(cot: Tensor) -> Tensor:
        """``(P, B, U)`` ⟨cotᵀ J_{>i}, L m_i⟩ for cotangents ``(P, *y.shape)``."""
        grads = torch.autograd.grad(y, outs, cot, retain_graph=True, allow_unused=True,
                                    is_grads_batched=True)
        cols = [torch.zeros(cot.shape[0], batch, device=x.device, dtype=x.dtype) if g is None else
                (g * lie).reshape(g.shape[0], batch, -1).sum(-1) for g, lie in zip(grads, lies, strict=True)]
        return torch.stack(cols, -1)

    contribution = dots(lf[None])[0]
    samples = []
    done = 0
    while done < probes:
        p = min(probe_chunk, probes - done)
        z = torch.randn((p,) + tuple(y.shape), generator=generator, device=y.device, dtype=y.dtype)
        s = dots(z)
        total = (z * lf).reshape(p, batch, -1).sum(-1)  # zᵀ L f
        samples.append(torch.stack([s * total[..., None], s ** 2]))
        done += p
    if samples:
        est = torch.cat(samples, 1).mean(1)
    else:
        est = torch.full((2, batch, len(names)), float("nan"), device=x.device, dtype=x.dtype)
    end = lf.reshape(batch, -1).pow(2).sum(1)
    return LayerwiseLie(gen.name, names, contribution.detach(), est[0].detach(), est[1].detach(),
                        end, probes, dict(rec.skipped))
