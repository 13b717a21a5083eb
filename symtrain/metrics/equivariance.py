"""How far a model is from equivariance, measured on data.

For group elements ``g`` (all of a finite group, or ``samples`` Haar-random ones) the
relative error of each input is ``‖f(g·x) − g·f(x)‖ / ‖g·f(x)‖`` (norms over everything
but the batch axis; several outputs are concatenated). All elements are folded into
the batch, so the model runs twice: once on ``x``, once on ``B·K`` transformed inputs
(see :meth:`Symmetry.probe <symtrain.Symmetry.probe>`).

A stochastic wrapper (Monte-Carlo group averaging, probabilistic symmetrization) is
checked exactly by default: one draw of its randomness is fixed and transformed with the
input, so a correct model gives an error at rounding level and a broken one does not.
``exact=False`` compares independent draws instead (a Monte-Carlo estimate, which for a
correct model only falls like ``1/√samples``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..domains import NON_NEGATIVE, OPTIONAL_COUNT, POSITIVE, check_args
from ..symmetry import Symmetry


@dataclass
class EquivarianceError:
    """``per_element``: ``[B, K]`` relative errors; ``mean``/``max`` over all of them.
    ``estimate``: how the model was run (one of :data:`~symtrain.symmetry.ESTIMATES`:
    ``"deterministic"``, ``"fixed draw"`` or ``"monte-carlo"``)."""

    mean: float
    max: float
    per_element: Tensor
    estimate: str = "deterministic"

    @property
    def exact(self) -> bool:
        """Whether this is the model's exact error on these inputs and elements (not a
        Monte-Carlo estimate over the model's own randomness)."""
        return self.estimate != "monte-carlo"

    def __float__(self) -> float:
        return self.mean

    def __repr__(self) -> str:
        b, k = self.per_element.shape
        return (f"EquivarianceError(mean={self.mean:.3g}, max={self.max:.3g}, inputs={b}, "
                f"elements={k}, estimate={self.estimate!r})")


@torch.no_grad()
@check_args(samples=OPTIONAL_COUNT, eps=POSITIVE)
def equivariance_error(model: nn.Module, symmetry: Symmetry | None, x: Any, *,
                       samples: int | None = None, generator: torch.Generator | None = None,
                       exact: bool = True, eps: float = 1e-12) -> EquivarianceError:
    """Relative equivariance error of ``model`` on inputs ``x``.

    Args:
        model: any callable; a symtrain wrapper's own ``symmetry`` is used when
            ``symmetry`` is ``None``.
        symmetry: the group and its actions on the model's input and output.
        x: a batch of inputs (whatever ``symmetry.input`` acts on).
        samples: number of random elements per input; default all elements of a finite
            group (16 for an infinite one, which then must be given).
        exact: for a stochastic wrapper, fix one draw of its randomness and transform it
            with the input (the default; see the module docstring); ``False``: a
            Monte-Carlo estimate from independent draws.
    Returns:
        :class:`EquivarianceError` with mean, max and per-(input, element) errors, and
        which kind of measurement it is.
    """
    if symmetry is None:
        symmetry = getattr(model, "symmetry", None)
        if not isinstance(symmetry, Symmetry):
            raise ValueError("pass a Symmetry, or a model with a .symmetry attribute")
    probe = symmetry.probe(x, samples, generator)
    out = probe.outputs(model, exact=exact)
    a = probe.rows(out.f_gx).to(torch.float64)
    b = probe.rows(out.g_fx).to(torch.float64)
    err = ((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(eps)).reshape(probe.context.batch_size, probe.k)
    return EquivarianceError(mean=float(err.mean()), max=float(err.max()), per_element=err,
                             estimate=out.estimate)


@check_args(tol=NON_NEGATIVE, samples=OPTIONAL_COUNT)
def assert_equivariant(model: nn.Module, x: Any, symmetry: Symmetry | None = None, *,
                       tol: float = 1e-5, samples: int | None = None) -> EquivarianceError:
    """Raise ``AssertionError`` if the worst relative error exceeds ``tol`` (stochastic
    wrappers are checked with a fixed draw, see :func:`equivariance_error`)."""
    err = equivariance_error(model, symmetry, x, samples=samples)
    if err.max > tol:
        raise AssertionError(f"not equivariant: relative error {err.max:.3g} > {tol:g} ({err})")
    return err
