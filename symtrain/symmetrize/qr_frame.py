"""The minimal O(d) / SO(d) frame of a point cloud (Lin et al., ICML 2024, "minimal frame
averaging"), batched, differentiable and exact on degenerate inputs.

Point clouds are rows ``x: [B, N, d]`` and a rotation ``R`` moves them as ``x ↦ x Rᵀ``
(each point ``p ↦ R p``, see :mod:`symtrain.groups.base`). :func:`qr_frame` returns
``Q(x): [B, d, d]`` with

    ``Q(x Rᵀ) = R Q(x)``  for every ``R`` in O(d) (``proper=False``) or SO(d) (``proper=True``),

so ``Q(x)`` is a frame element (a canonicalization): the canonical input is
``Q⁻¹·x = x Q`` and an equivariant output is ``Q·f(x Q)``, one backbone call per input.

**Construction.** Gram–Schmidt over the rows of ``x`` in their given order: at step ``j``
every real row is projected off the columns ``q_1..q_{j-1}`` found so far; among the
rows whose residual is at least ``pivot`` times the largest residual, the first is
normalised into ``q_j`` (the positive-diagonal QR of the chosen rows, so ``Q`` is unique).
The choice reads only residual norms, which rotations leave unchanged, and the row
order, which they do not touch, so the same rows are chosen for ``x Rᵀ`` and each
``q_j`` turns into ``R q_j``. MFA takes the first row with a non-zero residual; taking the
first row within a factor ``pivot`` of the largest keeps the frame well conditioned (a
barely independent row would make ``q_j`` sensitive to rounding) and is still a frame.
The rank ``r`` is the number of steps whose largest residual reaches ``tol`` times the
cloud's scale (its largest row norm), so it does not depend on units.

**Degenerate inputs** (rank ``r < d``; never an error):

- ``r = d − 1`` under SO(d): the last column is the generalised cross product of
  ``q_1..q_{d−1}`` (the cofactor vector: the unique unit vector orthogonal to them with
  ``det Q = +1``). For ``R`` in SO(d) the cofactor vector of ``R q_i`` is ``R`` times
  theirs, so the frame stays exact. (MFA's code appends a row along a fixed axis here,
  which is not equivariant.) The stabiliser of such a cloud in SO(d) is trivial, so
  this is the whole minimal frame.
- every other ``r < d`` (O(d) with ``r ≤ d − 1``, SO(d) with ``r ≤ d − 2``): the
  stabiliser of the cloud is the orthogonal (special orthogonal) group of the
  complement of ``span(x)``, a continuous group. As MFA does, the columns past ``r`` are
  left **zero**: ``Q = [q_1..q_r, 0]`` is a partial isometry, the canonical input is
  ``x Q = [x q_1..x q_r, 0..0]`` and outputs are mapped back through ``q_1..q_r`` only
  (an equivariant vector output then lies in ``span(x)``).

  *Why this is still exactly equivariant.* The wrapper computes
  ``F(x) = ρ_out(Q) f(ρ_in(Qᵀ) x)`` where ``ρ`` are the actions' (multiplicative)
  matrix representations, which extend to any matrix: ``ρ(AB) = ρ(A) ρ(B)``. The
  columns ``q_1..q_r`` satisfy ``q_i(x Rᵀ) = R q_i(x)`` as above, so ``Q(x Rᵀ) = R Q(x)``
  and ``F(R·x) = ρ_out(R Q) f(ρ_in(Qᵀ Rᵀ) ρ_in(R) x) = ρ_out(R) ρ_out(Q) f(ρ_in(Qᵀ) x) =
  R·F(x)``. For vector outputs it equals the average over the continuous stabiliser
  (the stabiliser's mean on the complement is zero); for invariant outputs it is the
  model at one canonical pose, which every stabiliser element shares.

**Discontinuity.** The rank test and the choice of pivot row are thresholds: a cloud
whose residuals sit within rounding of ``tol`` (or of ``pivot`` times the largest) may
get a different frame after a rotation. No unweighted frame of point clouds is
continuous (Dym et al., ICML 2024); weighted frames address that.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_finite
from ..errors import ShapeError

#: A row is a candidate for the next column when its residual is at least this fraction of
#: the largest residual (1.0 would be column pivoting, which ties on symmetric clouds).
#: Irrational (π/6 ≈ 0.524), so that no cloud with rational coordinates sits exactly on it:
#: at 0.5 a square pyramid of apex height 1.5 (residuals of apex and base vertex exactly
#: in that ratio) got a different frame after a rotation, by float rounding.
PIVOT = math.pi / 6


def default_tol(dtype: torch.dtype) -> float:
    """Rank tolerance relative to the cloud's scale: ``1000 · eps`` of ``dtype``
    (1.2e-4 in float32, 2.2e-13 in float64), at most 1e-2 (half precision: its rounding,
    ~5e-4, stays below it, while ``1000 · eps`` ≈ 1 would call every cloud degenerate
    and project it away)."""
    return min(1000.0 * torch.finfo(dtype).eps, 1e-2)


def qr_frame(points: Tensor, mask: Tensor | None = None, proper: bool = False,
             tol: float | None = None, pivot: float = PIVOT) -> tuple[Tensor, Tensor]:
    """The minimal frame element of each cloud (see the module docstring).

    Args:
        points: ``(B, N, d)`` rows, already centred if translations are to be removed.
        mask: ``(B, N)`` bool, True for real rows (padded rows are ignored), or ``None``.
        proper: SO(d) (``det Q = +1`` where ``r ≥ d − 1``) instead of O(d).
        tol: rank tolerance relative to the cloud's largest row norm (default
            :func:`default_tol` of the points' dtype).
        pivot: the fraction of the largest residual a row needs to be chosen (it also
            needs a residual above the rank tolerance; a tiny ``pivot`` is MFA's rule,
            the first independent row).

    Returns:
        ``Q``: ``(B, d, d)`` in the points' dtype with ``Q(x Rᵀ) = R Q(x)``: orthogonal
        when ``r = d`` (or ``r = d − 1`` with ``proper``), else orthonormal first ``r``
        columns and zeros after. ``rank``: ``(B,)`` long, the rank ``r`` found.

    Differentiable in ``points`` (the choice of rows is not).

    >>> x = torch.tensor([[[1.0, 0, 0], [1, 1, 0], [0, 0, 2]]], dtype=torch.float64)
    >>> q, r = qr_frame(x)
    >>> q[0], r[0].item()  # row 0's norm 1 is under π/6 of the largest (2): [1, 1, 0] leads
    (tensor([[ 0.7071,  0.0000,  0.7071],
            [ 0.7071,  0.0000, -0.7071],
            [ 0.0000,  1.0000,  0.0000]], dtype=torch.float64), 3)
    """
    if not isinstance(points, Tensor) or points.dim() != 3:
        raise ShapeError(f"points must be a tensor (B, N, d), got "
                         f"{tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__}")
    if not points.is_floating_point():
        raise ShapeError(f"points must be floating point, got {points.dtype}")
    b, n, d = points.shape
    if mask is not None and (mask.shape != (b, n) or mask.dtype != torch.bool):
        raise ShapeError(f"mask must be a bool tensor {(b, n)}, got {mask.dtype} {tuple(mask.shape)}")
    if not 0.0 < pivot <= 1.0:
        raise ValueError(f"pivot must be in (0, 1], got {pivot}")
    check_finite(points, "the points a QR frame is computed from")
    return frame_columns(points, mask, proper, default_tol(points.dtype) if tol is None else float(tol), pivot)


def frame_columns(points: Tensor, mask: Tensor | None, proper: bool, tol: float,
                  pivot: float = PIVOT) -> tuple[Tensor, Tensor]:
    """:func:`qr_frame` without its argument checks (the wrappers' hot path).

    Modified Gram–Schmidt over all rows at once (one fused rank-1 update per step), in
    float64 (where the device has it), whose loss of orthogonality, ``eps · κ`` with ``κ``
    kept small by the pivot rule, is far below float32 rounding; the candidates' two
    thresholds folded into one, the chosen row normalised by its residual norm already
    computed, and the columns past the rank cleared once at the end, so a step is a
    dozen batched operations."""
    b, n, d = points.shape
    out_dtype = points.dtype
    if n == 0:  # no points: rank 0, every column zero
        rank = torch.zeros(b, dtype=torch.long, device=points.device)
        q = points.new_zeros(b, d, d)
        return (_make_proper(q, rank) if proper else q), rank
    work = torch.float32 if points.device.type == "mps" else torch.float64
    resid = points.to(work)
    if mask is not None:
        resid = resid * mask[..., None].to(work)
    size = torch.linalg.vector_norm(resid, dim=-1)  # [B, N] residual norms (padding: -1, never chosen)
    if mask is not None:
        size = size.masked_fill(~mask, -1.0)
    # a residual counts when it is at least the rank floor, tol times the cloud's scale
    # (plus the smallest normal number, so that a zero cloud has rank 0 even with tol = 0)
    tiny = torch.finfo(work).tiny
    floor = size.amax(1, keepdim=True) * tol + tiny
    cols, bests = [], []
    batch = torch.arange(b, device=resid.device)
    for j in range(d):
        if j:
            q = cols[-1][:, None, :]  # [B, 1, d]
            resid = torch.baddbmm(resid, torch.bmm(resid, q.transpose(1, 2)), q, alpha=-1)
            size = torch.linalg.vector_norm(resid, dim=-1)
            if mask is not None:
                size = size.masked_fill(~mask, -1.0)
        best = size.amax(1, keepdim=True)  # [B, 1]
        first = (size >= torch.maximum(best * pivot, floor)).to(torch.uint8).argmax(1)
        # normalised by the residual norm already computed (past the rank: cleared below)
        cols.append(resid[batch, first] / size[batch, first, None].clamp_min(tiny))
        bests.append(best)
    # column j counts while every step up to j found a residual above the floor
    ok = (torch.cat(bests, 1) >= floor).cummin(1).values  # [B, d]
    q = torch.stack(cols, -1) * ok[:, None, :]  # [B, d, d]: zero columns past the rank
    rank = ok.sum(1)
    if proper:
        q = _make_proper(q, rank)
    return q.to(out_dtype), rank


def _make_proper(q: Tensor, rank: Tensor) -> Tensor:
    """Full rank: flip the last column where ``det < 0``. Rank ``d − 1``: the last column
    becomes the cofactor vector of the others (``det = +1``)."""
    d = q.shape[-1]
    if d == 1:  # SO(1) = {1}
        return torch.ones_like(q)
    # Full rank: the cofactor vector of the first d − 1 columns is ±q_d, with the sign
    # of det Q; at rank d − 1 it is the completion. Either way it is the last column.
    normal = cofactor_vector(q[..., : d - 1])
    last = torch.where((rank >= d - 1)[:, None], normal, q[..., -1])
    return torch.cat([q[..., : d - 1], last[..., None]], -1)


def cofactor_vector(m: Tensor) -> Tensor:
    """The generalised cross product of the ``d − 1`` columns of ``m``: ``(B, d, d−1) →
    (B, d)``, ``v_k = (−1)^{k+d} det(m without row k)`` (0-based ``k``: the sign is
    ``(−1)^{k+d−1}``), so ``det [m, v] = |v|² > 0``, ``v ⟂ m``, and ``|v| = 1`` when the
    columns are orthonormal; ``v(R m) = det(R) R v(m)``."""
    b, d, _ = m.shape
    if d == 2:
        return torch.stack([-m[:, 1, 0], m[:, 0, 0]], -1)
    if d == 3:
        return torch.linalg.cross(m[..., 0], m[..., 1])
    parts = []
    for k in range(d):
        minor = torch.cat([m[:, :k], m[:, k + 1:]], 1)  # [B, d−1, d−1]
        parts.append((-1.0) ** (k + d - 1) * torch.linalg.det(minor))
    return torch.stack(parts, -1)
