"""Input checks shared by every public entry point, and when they run.

Checks that read tensor *values* (finite values, prefix masks, degenerate frames) need
a host synchronisation and a data-dependent Python branch, so they run in eager mode
only: under ``torch.compile``/``torch.export`` tracing, inside ``torch.func`` transforms
(``vmap``, ``grad``, ``jvp``) and on ``meta`` or fake tensors they are skipped, and the
traced graph has no data-dependent branch. Shape checks always run.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import torch
from torch import Tensor

from .domains import check_samples  # noqa: F401  (re-exported; argument domains live there)
from .errors import NonFiniteError, ShapeError
from .tree import walk


def can_read_values(t: Tensor) -> bool:
    """Whether ``t``'s values may be read on the host here (eager, real tensor)."""
    if not isinstance(t, Tensor) or t.device.type == "meta":
        return False
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    try:
        from torch._C._functorch import is_functorch_wrapped_tensor
        if is_functorch_wrapped_tensor(t):
            return False
    except ImportError:  # pragma: no cover - older torch
        pass
    try:
        from torch._subclasses.fake_tensor import is_fake
        if is_fake(t):
            return False
    except ImportError:  # pragma: no cover
        pass
    return not isinstance(t, torch.fx.Proxy)


_INPUT_CHECKED: ContextVar[bool] = ContextVar("symtrain_input_checked", default=False)


@contextmanager
def input_checked() -> Iterator[None]:
    """Within this block the input a wrapper works on has passed
    :meth:`Symmetry.check_input <symtrain.symmetry.Symmetry.check_input>` (shapes, finite
    values): the frames computed from it skip their own value checks
    (:func:`input_is_checked`), so a forward checks its input once, not once per layer."""
    token = _INPUT_CHECKED.set(True)
    try:
        yield
    finally:
        _INPUT_CHECKED.reset(token)


def input_is_checked() -> bool:
    """Whether the current code runs inside :func:`input_checked`."""
    return _INPUT_CHECKED.get()


def check_finite(t: Tensor, what: str) -> None:
    """Raise :class:`NonFiniteError` naming ``what`` and the first bad samples (axis 0)
    if ``t`` holds NaN or infinity (eager mode only; see the module docstring)."""
    if not t.is_floating_point() or not can_read_values(t) or t.numel() == 0:
        return
    # One reduction in the common case: any NaN/inf makes the sum non-finite (a finite
    # sum that overflows only sends us to the exact check below). Half precision sums in
    # float32, where it would overflow at 65504 and always take the slow path.
    wide = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None
    if _finite_scalar(t.sum(dtype=wide)):
        return
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1) if t.dim() else t.reshape(1, -1)).all(1)
    if bool(bad.any()):
        idx = bad.nonzero().flatten()[:5].tolist()
        kind = "NaN" if bool(torch.isnan(t).any()) else "infinite values"
        raise NonFiniteError(f"{what} is not finite: {kind} in samples {idx} (batch axis 0)")


def _finite_scalar(s: Tensor) -> bool:
    """Whether a 0-d float ``s`` is finite: ``s · 0 == 0`` (NaN and ±inf give NaN), two
    operations where ``torch.isfinite`` takes four."""
    return bool(s * 0 == 0)


def check_prefix_mask(mask: Tensor, what: str = "the node mask") -> None:
    """Masks mark real nodes first and padding after them (``to_dense_batch``'s layout);
    a mask with padding between real nodes is an error (eager mode only)."""
    if mask.dtype != torch.bool:
        raise ShapeError(f"{what} must be a bool tensor (True for real nodes), got dtype {mask.dtype}")
    if mask.dim() != 2:
        raise ShapeError(f"{what} must be (B, N), got shape {tuple(mask.shape)}")
    if not can_read_values(mask):
        return
    gaps = mask[:, 1:] & ~mask[:, :-1]
    if bool(gaps.any()):
        idx = gaps.any(1).nonzero().flatten()[:5].tolist()
        raise ShapeError(f"{what} has padding between real nodes in samples {idx}: masks must put "
                         "the real nodes first and the padding after them (as "
                         "torch_geometric.utils.to_dense_batch does); reorder the nodes")




def check_finite_input(x: Any, what: str = "the input") -> None:
    """:func:`check_finite` on every float tensor of ``x`` (named by its path, see
    :func:`symtrain.tree.walk`)."""
    floats = [(path, t) for path, t in walk(x) if isinstance(t, Tensor) and t.is_floating_point()]
    if len(floats) > 1 and all(can_read_values(t) for _, t in floats):
        # one host read for all of them in the common case (every sum finite)
        sums = [t.sum(dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None)
                for _, t in floats if t.numel()]
        total = sums[0] if sums else None
        for more in sums[1:]:
            total = total + more.to(total.device)
        if total is not None and _finite_scalar(total):
            return
    for path, t in floats:
        check_finite(t, f"{what}{path}")
