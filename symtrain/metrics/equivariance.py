"""How far a model is from equivariance, measured on data.

For group elements ``g`` (all of a finite group, or ``samples`` Haar-random ones) the
relative error of each input is ``‖f(g·x) − g·f(x)‖ / ‖g·f(x)‖`` (norms over everything
but the batch axis; several outputs are concatenated). All elements are folded into
the batch, so the model runs twice: once on ``x``, once on ``B·K`` transformed inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..groups.base import element_batch_size
from ..symmetry import Symmetry


@dataclass
class EquivarianceError:
    """``per_element``: ``[B, K]`` relative errors; ``mean``/``max`` over all of them."""

    mean: float
    max: float
    per_element: Tensor

    def __float__(self) -> float:
        return self.mean

    def __repr__(self) -> str:
        b, k = self.per_element.shape
        return f"EquivarianceError(mean={self.mean:.3g}, max={self.max:.3g}, inputs={b}, elements={k})"


def _flatten(y: Any, batch: int) -> Tensor:
    if isinstance(y, Tensor):
        return y.reshape(batch, -1) if y.shape[0] == batch else y.reshape(1, -1).expand(batch, -1)
    if isinstance(y, dict):
        y = list(y.values())
    if isinstance(y, (tuple, list)):
        return torch.cat([_flatten(v, batch) for v in y], 1)
    raise TypeError(f"cannot compare outputs of type {type(y).__name__}")


def _node_batch(y: Tensor, context, k: int) -> Tensor:
    """Flat node outputs ``[nodes·k, ...]`` → per-graph rows ``[B·k, N_max·...]``."""
    from torch_geometric.utils import to_dense_batch

    ctx = context.repeat(k)
    sizes = ctx.ptr[1:] - ctx.ptr[:-1]
    batch_vec = torch.repeat_interleave(torch.arange(sizes.numel(), device=y.device), sizes)
    dense, _ = to_dense_batch(y, batch_vec, batch_size=sizes.numel())
    return dense.reshape(sizes.numel(), -1)


def output_rows(symmetry: Symmetry, y: Any, context, k: int) -> Tensor:
    """Outputs of ``B·k`` inputs as rows ``[B·k, D]``: tensors (and tuples / dicts of them)
    flattened per input; flat PyG node outputs regrouped per graph (zero padded)."""
    from ..actions.graph import GraphNodes

    if isinstance(symmetry.output, GraphNodes):
        return _node_batch(y, context, k)
    return _flatten(y, context.batch_size * k)


@torch.no_grad()
def equivariance_error(model: nn.Module, symmetry: Symmetry | None, x: Any, *,
                       samples: int | None = None, generator: torch.Generator | None = None,
                       eps: float = 1e-12) -> EquivarianceError:
    """Relative equivariance error of ``model`` on inputs ``x``.

    Args:
        model: any callable; a symtrain wrapper's own ``symmetry`` is used when
            ``symmetry`` is ``None``.
        symmetry: the group and its actions on the model's input and output.
        x: a batch of inputs (whatever ``symmetry.input`` acts on).
        samples: number of random elements per input; default all elements of a finite
            group (16 for an infinite one, which then must be given).
    Returns:
        :class:`EquivarianceError` with mean, max and per-(input, element) errors.
    """
    if symmetry is None:
        symmetry = getattr(model, "symmetry", None)
        if not isinstance(symmetry, Symmetry):
            raise ValueError("pass a Symmetry, or a model with a .symmetry attribute")
    symmetry.check_input(x)
    from ..symmetrize.base import call_model, reference_tensor

    ref = reference_tensor(x)
    dtype = ref.dtype if ref.is_floating_point() else None
    context = symmetry.context(x)
    batch = context.batch_size
    if samples is None and symmetry.group.is_finite:
        try:
            g = symmetry.all_elements(context, device=ref.device, dtype=dtype)
        except ValueError:
            g = symmetry.sample(context, 16, generator, device=ref.device, dtype=dtype)
    else:
        g = symmetry.sample(context, samples or 16, generator, device=ref.device, dtype=dtype)
    k = element_batch_size(g) // batch
    context_k = context.repeat(k)

    fx = call_model(model, x)
    gfx = symmetry.act_output(g, symmetry.output.repeat(fx, k, context), context_k)
    fgx = call_model(model, symmetry.act_input(g, symmetry.input.repeat(x, k, context), context_k))
    a = output_rows(symmetry, fgx, context, k).to(torch.float64)
    b = output_rows(symmetry, gfx, context, k).to(torch.float64)
    err = (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(eps)
    err = err.reshape(batch, k)
    return EquivarianceError(mean=float(err.mean()), max=float(err.max()), per_element=err)


def assert_equivariant(model: nn.Module, x: Any, symmetry: Symmetry | None = None, *,
                       tol: float = 1e-5, samples: int | None = None) -> EquivarianceError:
    """Raise ``AssertionError`` if the worst relative error exceeds ``tol``."""
    err = equivariance_error(model, symmetry, x, samples=samples)
    if err.max > tol:
        raise AssertionError(f"not equivariant: relative error {err.max:.3g} > {tol:g} ({err})")
    return err
