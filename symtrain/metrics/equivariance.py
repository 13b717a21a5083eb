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
from ..symmetry import Symmetry, reference_tensor


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


def output_rows(symmetry: Symmetry, y: Any, context, k: int) -> Tensor:
    """Outputs of ``B·k`` inputs as rows ``[B·k, D]`` (see :meth:`Action.rows`)."""
    return symmetry.output.rows(y, context.repeat(k))


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
    fgx, gfx = symmetry.transformed_outputs(model, x, g, context)
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
