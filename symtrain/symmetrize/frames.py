"""Frames: small input-dependent sets of group elements ``F(x)`` with
``F(h·x) = h·F(x)`` (Puny et al., ICLR 2022). Averaging over a frame is exactly
equivariant; a frame of one element is a canonicalization.

- :class:`MinimalFrame` for O(d), SO(d), E(d), SE(d) on point clouds (the default):
  MFA's QR frame of the (centred) points (:func:`~symtrain.symmetrize.qr_frame.qr_frame`),
  one element per input, exact on degenerate clouds too.
- :class:`PCAFrame` for O(d), SO(d), E(d), SE(d) on point clouds: eigenvectors of the
  covariance, with the sign ambiguity resolved by averaging over all sign flips
  (``signs="all"``, 2^d or 2^(d-1) elements) or fixed by the third moment
  (``signs="skew"``, one element).
- :class:`SortFrame` for S_n: the permutations that sort the nodes by a per-node key
  (lexicographic in the node features by default); ties give every ordering of the
  tied nodes (``ties="enumerate"``) or an error (``ties="error"``).
- :class:`GroupFrame`: a finite group itself (plain group averaging over that factor).

For a product group the frame is the product of the factors' frames. Frames are chosen
per factor by name (:data:`FRAME_KINDS`, :func:`default_frame`).
"""

from __future__ import annotations

import difflib
import itertools
import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..checks import can_read_values, check_finite, check_prefix_mask, input_is_checked
from ..errors import DegenerateFrameError, UnknownNameError, UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, element_map, element_tile
from ..symmetry import Symmetry
from ..tree import reference_tensor
from .qr_frame import default_tol, frame_columns


# --- finding the data a frame is computed from --------------------------------------
def point_cloud(symmetry: Symmetry, x: Any) -> Tensor | None:
    """The first point cloud or vector field of the input, dense ``[B, N, d]``
    (see :meth:`Action.points <symtrain.actions.Action.points>`)."""
    return symmetry.input.points(x)


def lexicographic_keys(symmetry: Symmetry, x: Any) -> Tensor:
    """Default sort keys ``[B, N, F]`` from the input's node view: node features,
    degrees, distances of the points to the centroid (invariant to E(d)) and vector
    norms (see :meth:`NodeView.sort_keys <symtrain.actions.NodeView.sort_keys>`)."""
    context = symmetry.context(x)
    return symmetry.input.node_view(x, context).sort_keys(context.centroid)


# --- frames --------------------------------------------------------------------------
class Frame:
    """Callable ``(factor, symmetry, x, context) -> (elements [B·K], weights [B, K])``.

    ``after_others``: ``False`` (the default) for a frame computed from data invariant to
    the group's other factors (PCA axes, sort keys, the Gram graph of an S_n frame), so
    the factors' frames may be computed independently; ``True`` for one that reads data
    the other factors move (a QR frame reads the row order, which S_n changes): it is
    computed after the others, on the input moved by their elements (see
    :func:`frame_elements`).

    ``stabiliser_only``: the frame has one element on inputs with a trivial stabiliser
    and more only on inputs with a non-trivial finite one (a minimal frame); a
    canonicalizer made of such frames may return several weighted elements there.

    ``may_sample``: a call may draw some inputs' elements at random instead of listing
    them (a frame too large to enumerate); the frame then sets ``sampled`` (``[B]`` bool,
    which inputs of its last call were drawn; ``None`` before any call). Averaging over a
    drawn frame is a Monte-Carlo estimate: the wrapper is stochastic there (see
    :mod:`~symtrain.symmetrize.sampled_frames`)."""

    after_others: bool = False
    stabiliser_only: bool = False
    may_sample: bool = False
    sampled: Tensor | None = None

    def __call__(self, factor: Group, symmetry: Symmetry, x: Any,
                 context: GroupContext) -> tuple[Element, Tensor]:
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def rotation_points(factor: Group, symmetry: Symmetry, x: Any, what: str) -> Tensor:
    """The input's point cloud ``[B, N, d]`` for a frame of the rotation factor ``factor``
    (O(d), SO(d), E(d), SE(d)), checked."""
    if not (factor.is_continuous and factor.vector_dim is not None):
        raise UnsupportedGroupError(f"{what} are for O(d), SO(d), E(d), SE(d), not {factor}")
    pts = point_cloud(symmetry, x)
    if pts is None:
        raise UnsupportedGroupError(f"{what} need a point cloud or vectors in the input")
    d = factor.vector_dim
    if pts.shape[-1] != d:
        raise UnsupportedGroupError(f"{factor} needs {d}-d points, got {pts.shape[-1]}-d")
    if not input_is_checked():  # a wrapper's forward has checked them already
        check_finite(pts, f"the points {what} are computed from")
    return pts


def masked_centroid(points: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of the real points ``[B, d]`` (``mask``: ``[B, N]`` or ``None``)."""
    if mask is None:
        return points.mean(1)
    w = mask.to(points.dtype)[..., None]
    return (points * w).sum(1) / w.sum(1).clamp_min(1)


class MinimalFrame(Frame):
    """The minimal frame of O(d), SO(d), E(d), SE(d) (Lin et al., ICML 2024): one element
    per input, ``Q(x)`` from :func:`~symtrain.symmetrize.qr_frame.qr_frame` of the points
    in their given order (centred on their masked centroid for E(d)/SE(d), whose
    translation part is the centroid). Exact on every input, degenerate ones included:
    planar clouds under SO(d) get the proper completion, lower-rank clouds (collinear,
    repeated points, a single point) the projection onto their span (see
    :mod:`~symtrain.symmetrize.qr_frame`), so the backbone always runs once per input.

    Args:
        tol: rank tolerance relative to the cloud's scale (default: 1000 machine epsilons
            of the points' dtype).
    """

    stabiliser_only = True
    after_others = True  # reads the row order: after an S_n frame, in the order it chose

    def __init__(self, tol: float | None = None):
        self.tol = tol

    def __call__(self, factor, symmetry, x, context):
        pts, centre = centred_points(factor, symmetry, x, context, "minimal frames")
        q = self.rotations(factor, pts, context.mask)
        weights = torch.ones(pts.shape[0], 1, device=pts.device, dtype=pts.dtype)
        return with_translation(factor, q, centre), weights

    def rotations(self, factor: Group, pts: Tensor, mask: Tensor | None) -> Tensor:
        """``Q [B, d, d]`` of centred, checked points ``[B, N, d]``."""
        tol = default_tol(pts.dtype) if self.tol is None else self.tol
        return frame_columns(pts, mask, factor.is_proper, tol)[0]


def centred_points(factor: Group, symmetry: Symmetry, x: Any, context: GroupContext,
                   what: str) -> tuple[Tensor, Tensor | None]:
    """The input's checked points ``[B, N, d]``, centred on their (masked) centroid when
    ``factor`` has translations, and that centroid ``[B, d]`` (else ``None``)."""
    pts = rotation_points(factor, symmetry, x, what)
    if not factor.has_translations:
        return pts, None
    centre = context.centroid.to(pts.dtype) if context.centroid is not None \
        else masked_centroid(pts, context.mask)
    return pts - centre[:, None, :], centre


def with_translation(factor: Group, rotations: Tensor, centre: Tensor | None) -> Element:
    """Elements with these linear parts ``[B·K, d, d]`` and translation ``centre`` (``[B, d]``,
    repeated over the ``K`` elements of each input), or no translation part."""
    if centre is None:
        return factor.from_parts(rotations)
    k = rotations.shape[0] // centre.shape[0]
    return factor.from_parts(rotations, centre.repeat_interleave(k, 0) if k > 1 else centre)


class PCAFrame(Frame):
    """Principal axes of the (masked, centred) point cloud.

    Args:
        signs: ``"all"`` averages over every sign choice of the axes (exact frame);
            ``"skew"`` picks the sign of each axis that makes the third moment of the
            projections positive (one element: a canonicalization).
        tol: eigenvalue gaps below ``tol · λ_max`` make the frame ill-defined and raise
            :class:`DegenerateFrameError` (a symmetric cloud has no unique axes).
    """

    def __init__(self, signs: str = "all", tol: float = 1e-3):
        if signs not in ("all", "skew"):
            raise ValueError(f"signs must be 'all' or 'skew', got {signs!r}")
        self.signs, self.tol = signs, tol

    def __call__(self, factor, symmetry, x, context):
        pts = rotation_points(factor, symmetry, x, "PCA frames")
        d = factor.vector_dim
        eager = can_read_values(pts)
        mask = context.mask
        w = torch.ones(pts.shape[:2], device=pts.device, dtype=torch.float64) if mask is None \
            else mask.to(torch.float64)
        p = pts.to(torch.float64)
        if factor.has_translations or context.centroid is not None:
            centre = (p * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)
            p = p - centre[:, None, :]
        else:
            centre = None
        cov = torch.einsum("bn,bni,bnj->bij", w, p, p) / w.sum(1).clamp_min(1)[:, None, None]
        evals, vecs = torch.linalg.eigh(cov)  # ascending
        gaps = (evals[:, 1:] - evals[:, :-1]) / evals[:, -1:].clamp_min(1e-30)
        bad = (gaps < self.tol).any(1) | (evals[:, -1] <= 1e-30)
        if eager and bool(bad.any()):
            idx = bad.nonzero().flatten()[:5].tolist()
            raise DegenerateFrameError(
                f"PCA frame is not unique for samples {idx}: covariance eigenvalues "
                f"{evals[idx[0]].tolist()} are (nearly) repeated (relative gap < {self.tol}), "
                "e.g. a symmetric or collinear point cloud. Use GroupAveraging over the group, "
                "or ProbabilisticSymmetrization, for such inputs.")
        proper = factor.is_proper
        b = pts.shape[0]
        if self.signs == "skew":
            proj = torch.einsum("bni,bij->bnj", p, vecs)
            third = (w[..., None] * proj ** 3).sum(1)
            scale = (w[..., None] * proj.abs() ** 3).sum(1).clamp_min(1e-30)
            if eager and bool((third.abs() / scale < self.tol)[:, : d - 1 if proper else d].any()):
                raise DegenerateFrameError("PCA canonicalization: an axis has zero third moment, "
                                           "so its sign is ambiguous; use FrameAveraging instead")
            signs = torch.where(third >= 0, 1.0, -1.0).to(torch.float64)
            if proper:
                signs[:, -1] = 1.0
                v = vecs * signs[:, None, :]
                v[:, :, -1] = v[:, :, -1] * torch.linalg.det(v).sign()[:, None]
            else:
                v = vecs * signs[:, None, :]
            rots = v[:, None]
        else:
            combos = torch.tensor(list(itertools.product([1.0, -1.0], repeat=d)),
                                  dtype=torch.float64, device=pts.device)
            if proper:
                combos = combos[combos.prod(1) > 0]
                vecs = vecs.clone()
                vecs[:, :, -1] = vecs[:, :, -1] * torch.linalg.det(vecs).sign()[:, None]
            rots = vecs[:, None] * combos[None, :, None, :]  # [B, K, d, d]
        k = rots.shape[1]
        rots = rots.reshape(b * k, d, d).to(pts.dtype)
        weights = torch.full((b, k), 1.0 / k, device=pts.device, dtype=pts.dtype)
        if factor.has_translations:
            t = context.centroid if context.centroid is not None else centre.to(pts.dtype)
            return factor.from_parts(rots, t.to(pts.dtype).repeat_interleave(k, 0)), weights
        return factor.from_parts(rots), weights


def lexsort_rows(keys: Tensor) -> Tensor:
    """The stable lexicographic order ``[B, N]`` of the rows of ``keys`` ``[B, N, F]``
    (first column first; equal rows keep their index order): stable passes, last column
    first, each gathering one column in the order so far (O(B·N·F) in all); the first
    pass sorts its column as it is."""
    b, n, f = keys.shape
    if f == 0:
        return torch.arange(n, device=keys.device).expand(b, n)
    order = torch.argsort(keys[..., f - 1], dim=1, stable=True)
    for col in reversed(range(f - 1)):
        vals = keys[..., col].gather(1, order)
        order = order.gather(1, torch.argsort(vals, dim=1, stable=True))
    return order


def sort_order(keys: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The lexicographic order of the nodes by ``keys`` ``[B, N, F]`` (first column first;
    stable, so tied nodes keep their index order; padding last) and which ranks are tied:
    ``order [B, N]`` (``order[b, r]``: the node of rank ``r``) and ``tied [B, N-1]``
    (rank ``r`` has the same keys as rank ``r + 1``, both real)."""
    b, n, f = keys.shape
    if mask is not None:
        check_prefix_mask(mask)
        keys = torch.where(mask[..., None], keys, torch.full_like(keys, float("inf")))
    order = lexsort_rows(keys)
    sorted_keys = keys.gather(1, order[..., None].expand_as(keys))
    tied = (sorted_keys[:, 1:] == sorted_keys[:, :-1]).all(-1)  # rank r tied with r+1
    if mask is not None:
        tied = tied & mask[:, 1:]
    return order, tied


class SortFrame(Frame):
    """Permutations that sort the nodes by ``key`` (ascending, lexicographic over the last
    axis): the node of rank r goes to position r.

    Args:
        key: ``x -> [B, N, F]`` (or ``[B, N]``) per-node keys, permutation-equivariant
            and invariant to the other group factors. Default: see :func:`lexicographic_keys`.
        ties: ``"enumerate"`` (average over every ordering of tied nodes) or ``"error"``.
        max_size: largest frame allowed per input with ties.
    """

    def __init__(self, key: Callable[[Any], Tensor] | None = None, ties: str = "enumerate",
                 max_size: int = 720):
        if ties not in ("enumerate", "error"):
            raise ValueError(f"ties must be 'enumerate' or 'error', got {ties!r}")
        self.key, self.ties, self.max_size = key, ties, max_size

    def __call__(self, factor, symmetry, x, context):
        if not factor.permutes_nodes:
            raise UnsupportedGroupError(f"sort frames are for S_n, not {factor}")
        keys = self.key(x) if self.key is not None else lexicographic_keys(symmetry, x)
        keys = keys.detach()
        if keys.dim() == 2:
            keys = keys[..., None]
        check_finite(keys, "the keys a sort frame orders the nodes by")
        b = keys.shape[0]
        order, tied = sort_order(keys, context.mask)
        if not bool(tied.any()):
            return order, torch.ones(b, 1, device=keys.device, dtype=_float(x))
        return self._enumerate_ties(order, tied, x)

    def _enumerate_ties(self, order, tied, x):
        b, n = order.shape
        rank_perms = []
        for row in tied.tolist():
            blocks, start = [], 0
            for r in range(n):
                if r == n - 1 or not row[r]:
                    blocks.append(list(range(start, r + 1)))
                    start = r + 1
            size = math.prod(math.factorial(len(blk)) for blk in blocks)
            if self.ties == "error" or size > self.max_size:
                what = "a unique ordering" if self.ties == "error" else f"at most {self.max_size} orderings"
                raise DegenerateFrameError(
                    f"sorting the nodes by their keys leaves ties ({size} orderings), so there is "
                    f"not {what}; nodes with equal keys cannot be told apart. Use GroupAveraging "
                    "with samples=K or ProbabilisticSymmetrization for such inputs.")
            perms = []
            for choice in itertools.product(*(itertools.permutations(blk) for blk in blocks)):
                perms.append([r for blk in choice for r in blk])
            rank_perms.append(perms)
        k = max(len(p) for p in rank_perms)
        table = torch.tensor([p + [p[0]] * (k - len(p)) for p in rank_perms], device=order.device)
        weights = torch.tensor([[1.0 / len(p)] * len(p) + [0.0] * (k - len(p)) for p in rank_perms],
                               device=order.device, dtype=_float(x))
        elems = order[:, None, :].expand(b, k, n).gather(2, table)  # g[r] = order[π(r)]
        return elems.reshape(b * k, n), weights


class GroupFrame(Frame):
    """The whole (finite) group: exact group averaging over this factor."""

    def __call__(self, factor, symmetry, x, context):
        ref = _float(x)
        elems = factor.elements(context=context, device=_device(x), dtype=ref)
        k = elems.shape[0] if isinstance(elems, Tensor) else elems[0].shape[0]
        b = context.batch_size
        return element_tile(elems, b), torch.full((b, k), 1.0 / k, device=_device(x), dtype=ref)


#: The names of frame choices (``FrameAveraging(frames=...)``,
#: ``Canonicalization(canonicalizer=...)``), per factor by what it can do:
#: ``"minimal"`` (the default): :class:`MinimalFrame` for rotation factors (O(d), SO(d),
#: E(d), SE(d)); ``"pca"``: :class:`PCAFrame` for them (all sign flips, or third-moment
#: signs for a canonicalizer); ``"weighted"``: :class:`~symtrain.symmetrize.weighted_frame.WeightedFrame`
#: for them (continuous weights; frame averaging only). Other factors get the same frame
#: under every name.
FRAME_KINDS = ("minimal", "pca", "weighted")


def check_frame_kind(kind: str, argument: str = "frames") -> str:
    """``kind`` if it names a frame choice, else :class:`UnknownNameError` (naming ``argument``)."""
    if kind not in FRAME_KINDS:
        raise UnknownNameError(f"frame kind ({argument}=)", kind, FRAME_KINDS,
                               difflib.get_close_matches(str(kind), FRAME_KINDS))
    return kind


def default_frame(factor: Group, canonical: bool = False, tol: float | None = None,
                  kind: str = "minimal", nodes_permuted: bool = False) -> Frame:
    """The frame of kind ``kind`` (:data:`FRAME_KINDS`) for a factor, chosen by what the
    factor can do; ``canonical``: as a canonicalizer (one element on generic inputs).
    ``tol``: the frame's tolerance (rank for minimal frames, eigenvalue gap and third
    moment for PCA frames). ``nodes_permuted``: another factor of the group permutes the
    nodes (no longer changes the choice: a minimal O(d) frame next to S_n is computed
    after the S_n frame, in the order it chose; see :func:`frame_elements`)."""
    check_frame_kind(kind)
    if factor.is_continuous and factor.vector_dim is not None:
        if kind == "weighted":
            if canonical or nodes_permuted:
                raise UnsupportedGroupError(
                    f"weighted frames of {factor} average several elements in the node order given"
                    f"{'' if canonical else ', which another factor permutes'}: "
                    "use them with FrameAveraging on O(d)/SO(d)/E(d)/SE(d) alone")
            from .weighted_frame import WeightedFrame  # (it builds on MinimalFrame, defined here)

            return WeightedFrame(**({} if tol is None else {"tol": tol}))
        if kind == "pca":
            return PCAFrame(signs="skew" if canonical else "all", **({} if tol is None else {"tol": tol}))
        # Next to S_n the QR frame reads the rows in the order the S_n frame chose
        # (MinimalFrame.after_others: the sequential product of frame_elements).
        return MinimalFrame(tol)
    if factor.permutes_nodes:
        if kind == "minimal":
            from .frames_permutation import MinimalPermutationFrame

            return MinimalPermutationFrame()
        return SortFrame(ties="error" if canonical else "enumerate")
    if factor.is_finite and not canonical:
        return GroupFrame()  # frame averaging over a finite group: the whole group
    if factor.is_finite and factor.acts_on_grid:
        from .grid_frame import GridOrbitFrame  # (it builds on Frame, defined here)

        return GridOrbitFrame()
    raise UnsupportedGroupError(f"no default {'canonicalizer' if canonical else 'frame'} for "
                                f"{factor}; pass one explicitly")


def product_frame(parts: list[tuple[Element, Tensor]], batch: int) -> tuple[Element, Tensor]:
    """All combinations of the factors' frame elements (the first factor varying slowest)."""
    if len(parts) == 1:
        return parts[0]
    elements, weights = [], None
    sizes = [w.shape[1] for _, w in parts]
    total = math.prod(sizes)
    for i, (g, w) in enumerate(parts):
        before, after = math.prod(sizes[:i]), math.prod(sizes[i + 1:])

        def spread(t, k=sizes[i], before=before, after=after):
            t = t.reshape(batch, 1, k, 1, *t.shape[1:])
            t = t.expand(batch, before, k, after, *t.shape[4:])
            return t.reshape(batch * total, *t.shape[4:])

        elements.append(element_map(spread, g))
        ww = w[:, None, :, None].expand(batch, before, sizes[i], after).reshape(batch, total)
        weights = ww if weights is None else weights * ww
    return tuple(elements) if len(elements) > 1 else elements[0], weights


def frame_elements(frames: list[Frame], symmetry: Symmetry, x, context) -> tuple[Element, Tensor]:
    """The frame of a product group from its factors' frames, one factor after another.

    The frames with ``after_others=False`` are computed on ``x`` itself and combined as a
    product (every combination, :func:`product_frame`). Each frame with
    ``after_others=True`` is then computed, for every element ``s`` found so far, on the
    input moved back by it, ``s⁻¹·x``, and its elements ``e`` complete ``s`` to ``(s, e)``
    (weights multiplied). E.g. S_n × O(d): the S_n frame of the rotation-invariant Gram
    graph gives orders ``σ``; the QR frame of the points in each order gives the rotation.

    *Why this is exactly equivariant* (a direct product ``G₁ × G₂``, ``F₁`` computed first,
    equivariant under ``G₁`` and invariant under ``G₂``; ``F₂`` equivariant under ``G₂``):
    for ``h = (h₁, h₂)``, ``F₁(h·x) = h₁F₁(x)``; for ``σ' = h₁σ``,
    ``σ'⁻¹·(h·x) = σ⁻¹h₁⁻¹h₁h₂·x = h₂·(σ⁻¹·x)`` (the factors commute), so
    ``F₂(σ'⁻¹·h·x) = h₂F₂(σ⁻¹·x)``; hence ``F(h·x) = {(h₁σ, h₂e)} = h·F(x)``, with the
    same weights. ``F₂`` need not be invariant under ``G₁``.

    Returns elements ``[B·K]`` (b-major, the first-computed factor varying slowest) and
    weights ``[B, K]``.
    """
    group = symmetry.group
    factors = group.factors
    batch = context.batch_size
    first = [i for i, f in enumerate(frames) if not f.after_others]
    later = [i for i, f in enumerate(frames) if f.after_others]
    parts = {i: frames[i](factors[i], symmetry, x, context) for i in first}
    if not later:
        return product_frame([parts[i] for i in range(len(factors))], batch)
    done: dict[int, Element] = {}
    weights = None
    if first:
        g, weights = product_frame([parts[i] for i in first], batch)
        done = dict(zip(first, g if len(first) > 1 else (g,), strict=False))
    for i in later:
        if weights is None:  # nothing before it: computed on x itself
            gi, weights = frames[i](factors[i], symmetry, x, context)
            done[i] = gi
            continue
        k = weights.shape[1]
        # s⁻¹·x, moved by the factors found so far only (s is the identity on the others)
        moved = None
        for j, e in done.items():
            inv = factors[j].inverse(e)
            moved = symmetry.input.apply_repeated(factors[j], inv, x, k, context) if moved is None \
                else symmetry.input.apply(factors[j], inv, moved, context.repeat(k))
        gi, wi = frames[i](factors[i], symmetry, moved, symmetry.context(moved))
        ki = wi.shape[1]
        if ki > 1:
            done = {j: element_map(lambda t, ki=ki: t.repeat_interleave(ki, 0), e) for j, e in done.items()}
        done[i] = gi
        weights = (weights[:, :, None] * wi.reshape(batch, k, ki)).reshape(batch, k * ki)
    elements = tuple(done[j] for j in range(len(factors)))
    return (elements if len(elements) > 1 else elements[0]), weights


def _float(x) -> torch.dtype:
    t = reference_tensor(x)
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


def _device(x):
    return reference_tensor(x).device
