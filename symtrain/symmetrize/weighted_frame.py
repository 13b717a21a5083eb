"""A weighted frame for O(d), SO(d), E(d), SE(d) whose average is continuous in the input
(in the sense of Dym, Lawrence & Siegel, ICML 2024: no unweighted frame of point clouds
is continuous, but frames whose elements carry continuous weights can be).

The points keep their given order (no S_n factor). For ``m`` fixed windows of ``d``
consecutive real rows (cyclically: rows ``i, i+1, …, i+d−1`` modulo the cloud's size,
``i < m``), each window ``X_i`` ``[d, d]`` gives the QR frame element ``Q_i`` of its rows
in order (Gram–Schmidt, positive diagonal; the proper completion under SO(d)) and the
weight

    w_i = max(σ_min(X_i) / s − τ, 0),    s = the cloud's largest row norm,

normalised over the windows. The frame is ``{(Q_i, w_i)}``: ``m`` backbone calls per
input.

*Exact.* ``σ_min`` and ``s`` are invariant under rotations and ``Q_i(x Rᵀ) = R Q_i(x)``,
so the weighted set moves with the input.

*Continuous.* ``w_i`` is continuous; ``Q_i`` is continuous wherever ``X_i`` is
invertible, and where it is not, ``w_i = 0`` on a neighbourhood (``σ_min ≤ τ s``). So
``Σ_i w_i Q_i·f(Q_iᵀ·x) / Σ_i w_i`` is continuous wherever some window has
``σ_min > τ s``. Where none has (near-planar, collinear or repeated points in every
window) the frame falls back to the minimal frame (exact, not continuous there).
Minimal frames, by contrast, jump wherever their pivot choice or rank test flips.
"""

from __future__ import annotations

import torch

from .frames import MinimalFrame, centred_points, with_translation
from .qr_frame import default_tol, frame_columns


class WeightedFrame(MinimalFrame):
    """See the module docstring.

    Args:
        windows: the number ``m`` of windows (backbone calls per input).
        threshold: ``τ``, the relative smallest singular value below which a window's
            weight is zero.
        tol: rank tolerance of the minimal frame used where every window is degenerate.
    """

    stabiliser_only = False

    def __init__(self, windows: int = 4, threshold: float = 0.05, tol: float | None = None):
        if int(windows) < 1:
            raise ValueError(f"windows must be a positive integer, got {windows!r}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        super().__init__(tol)
        self.windows, self.threshold = int(windows), float(threshold)

    def __call__(self, factor, symmetry, x, context):
        pts, centre = centred_points(factor, symmetry, x, context, "weighted frames")
        mask = context.mask
        b, n, d = pts.shape
        m = min(self.windows, n)
        sizes = mask.sum(1) if mask is not None else torch.full((b,), n, device=pts.device)
        rows = torch.arange(m, device=pts.device)[:, None] + torch.arange(d, device=pts.device)[None, :]
        rows = rows[None] % sizes.clamp_min(1)[:, None, None]  # [B, m, d]
        windows = pts[torch.arange(b, device=pts.device)[:, None, None], rows]  # [B, m, d, d]
        flat = windows.reshape(b * m, d, d)
        # the QR element of each window's rows in order (pivot ~ 0: MFA's rule, the first
        # independent row; every row of a window with a non-zero weight is independent)
        q, _ = frame_columns(flat, None, factor.is_proper, default_tol(pts.dtype), pivot=1e-150)
        sigma = torch.linalg.svdvals(flat.to(torch.float64))[:, -1].reshape(b, m)
        scale = pts.to(torch.float64).norm(dim=-1)
        if mask is not None:
            scale = scale * mask
        scale = scale.amax(1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        w = (sigma / scale - self.threshold).clamp_min(0.0)
        w = w * (sizes >= d)[:, None]
        total = w.sum(1, keepdim=True)
        none = total[:, 0] == 0
        q = q.reshape(b, m, d, d)
        if bool(none.any()):  # no well-conditioned window: the minimal frame, weight 1
            fallback = self.rotations(factor, pts, mask)
            q = torch.where(none[:, None, None, None], torch.cat(
                [fallback[:, None], q[:, 1:]], 1), q)
            w = torch.where(none[:, None], (torch.arange(m, device=pts.device) == 0).to(w.dtype), w)
            total = w.sum(1, keepdim=True)
        weights = (w / total).to(pts.dtype)
        return with_translation(factor, q.reshape(b * m, d, d), centre), weights
