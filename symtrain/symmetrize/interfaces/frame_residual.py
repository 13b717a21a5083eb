"""An interface that starts from the minimal frame: ``g(x, ε) = F(x) · R(h(F(x)⁻¹·x, F(x)⁻¹·ε))``
for O(d), SO(d), E(d), SE(d) on point sets.

``F(x)`` is the minimal frame element of the input
(:class:`~symtrain.symmetrize.frames.MinimalFrame`, Lin et al. ICML 2024: the QR frame of
the centred points); ``F(x)⁻¹·x`` and ``F(x)⁻¹·ε`` are invariant, so ``h`` is an ordinary
network: a DeepSets encoder (per-node MLP, masked mean over the nodes, MLP) whose last
layer is **zero-initialised**, and ``R`` is the Gram–Schmidt orthonormalisation of
``I + Δ`` (``Δ``: ``h``'s ``d × d`` output). At initialisation ``Δ = 0``, ``R = I`` and the
interface *is* the minimal frame; training learns a correction. For
``h = (H, s)`` in the group, ``F(h·x) = h·F(x)`` and ``F(h·x)⁻¹·(h·x) = F(x)⁻¹·x``, so
``g(h·x, h·ε) = h·F(x)·R = h·g(x, ε)`` exactly.

Row order (``order``):

- ``"canonical"`` (the default): the QR frame reads the rows in the order of the minimal
  S_n frame (:class:`~symtrain.symmetrize.frames_permutation.MinimalPermutationFrame`,
  the canonical labelling of the rotation-invariant Gram graph), composed as the library's
  S_n × G frames are (:func:`~symtrain.symmetrize.frames.frame_elements`). The element is
  then also invariant to permutations of the nodes, as needed when the data's S_n is part
  of the task (``h`` pools over the nodes, so it is permutation-invariant too).
- ``"given"``: the rows in their given order (equivariant to the group only).

**Degenerate inputs.** The rotation frame itself is always one element (rank-deficient
clouds get a partial isometry, exact as in :mod:`~symtrain.symmetrize.qr_frame`). An input
whose *S_n* frame has several elements (nodes the Gram graph cannot tell apart: a regular
polygon, a symmetric molecule) has several rotations ``F_1(x), …, F_m(x)``, one per
canonical order, and the set moves with the input: ``{F_j(h·x)} = h·{F_j(x)}``. An
interface returns one element per draw, so the **noise chooses** among them: ``F(x, ε)``
is the ``F_j`` minimising ``Σ_n φ(ε_n F_j)`` (``ε_n F_j``: node ``n``'s noise in frame
``j``; ``φ(v) = v·w + (v·u)³`` with fixed generic ``w, u``; masked nodes left out). The
score is invariant to permutations of the nodes and ``ε_n F_j`` to the group
(``(h ε_n)(h F_j) = ε_n F_j``), so ``F(h·x, h·ε) = h·F(x, ε)`` exactly: the choice is part
of the draw (a fixed noise gives a fixed choice, and equivariance holds in distribution
as for every LPS interface). Frames of the same rotation tie and are the same element;
distinct ones tie with probability 0. Inputs with zero noise (learned canonicalization,
``noise_scale=0``) have nothing to choose with, and no fixed element is invariant to the
permutations that fix such an input: they raise :class:`~symtrain.errors.DegenerateFrameError`.
Automorphism groups too large to enumerate (the S_n frame's ``max_elements``) are sampled,
not a function of the input: such inputs raise :class:`~symtrain.errors.DegenerateFrameError`.

Noise: one Gaussian vector per node ``[B, N, d]`` (acted on by
:class:`~symtrain.actions.Vectors`: rotated and permuted, never translated), moved into
the frame with the points.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...actions.registry import create_action
from ...domains import POSITIVE, POSITIVE_INT, Count, Real, check_args
from ...errors import DegenerateFrameError, ShapeError, SymmetryError
from ...groups.base import Element, Group, GroupContext, element_take
from ...groups.registry import create_group
from ...symmetry import Symmetry
from ...tree import reference_tensor
from ..frames import MinimalFrame, frame_elements
from ..frames_permutation import MinimalPermutationFrame
from .base import Interface, RelaxedElement, node_view
from .registry import register_interface
from .rotation import RotationInterface, _is_rotation_group, _masked_mean, gram_schmidt

ORDERS = ("canonical", "given")


@register_interface("frame_residual")
class FrameResidualInterface(Interface):
    """An opt-in variant (never a group's default interface: ``default_candidate = False``).

    Minimal frame times a learned rotation of the canonicalized input (see the module
    docstring): ``g = F(x) · R(h(F(x)⁻¹·x, F(x)⁻¹·ε))``, ``g = F(x)`` at initialisation.

    Input: the Points field and any Vectors fields (``in_vectors`` in all), Nodes fields
    as ``in_scalars`` invariant scalars. Noise: ``[B, N, d]``, standard deviation
    ``noise_scale`` of the wrapper.

    Args:
        group: ``"O3"``, ``"SO3"``, ``"E3"``, ``"SE3"`` (any d).
        in_vectors: number of point/vector fields per node.
        in_scalars: number of per-node scalar channels.
        hidden, layers: width of the DeepSets encoder and number of its per-node layers.
        order: ``"canonical"`` (rows in the minimal S_n frame's order: permutation-
            invariant elements) or ``"given"``.
        frame_tol: rank tolerance of the QR frame (default: its dtype's).
        gram_round: rounding of the Gram matrix for the canonical order
            (:class:`~symtrain.symmetrize.frames_permutation.MinimalPermutationFrame`).
    """

    default_candidate = False

    @check_args(in_vectors=POSITIVE_INT, in_scalars=Count(0), hidden=POSITIVE_INT, layers=POSITIVE_INT,
                gram_round=POSITIVE, frame_tol=Real(0, optional=True))
    def __init__(self, group: str | Group = "E3", in_vectors: int = 1, in_scalars: int = 0,
                 hidden: int = 32, layers: int = 2, order: str = "canonical",
                 frame_tol: float | None = None, gram_round: float = 0.1):
        super().__init__(group)
        if not _is_rotation_group(self.group):
            raise SymmetryError(f"FrameResidualInterface is for O(d), SO(d), E(d), SE(d), not {self.group}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.dim = self.group.vector_dim
        self.in_vectors, self.in_scalars, self.order = in_vectors, in_scalars, order
        self.noise_action = create_action("vectors")
        self.frames = [MinimalFrame(frame_tol)]
        if order == "canonical":
            self.frames.insert(0, MinimalPermutationFrame(gram_round=gram_round))
        self._frame_symmetry: Symmetry | None = None
        width = (in_vectors + 1) * self.dim + in_scalars
        per_node: list[nn.Module] = [nn.Linear(width, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            per_node += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.phi = nn.Sequential(*per_node)
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, self.dim ** 2))
        nn.init.zeros_(self.rho[-1].weight)  # Δ = 0: the interface starts as the minimal frame
        nn.init.zeros_(self.rho[-1].bias)

    # what it supports and reads off an example: the rotation interface's (points, vectors, scalars)
    supports = classmethod(RotationInterface.supports.__func__)  # type: ignore[attr-defined]
    infer_args = classmethod(RotationInterface.infer_args.__func__)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return (f"group={self.group}, in_vectors={self.in_vectors}, in_scalars={self.in_scalars}, "
                f"order={self.order!r}")

    def attach(self, symmetry: Symmetry) -> "FrameResidualInterface":
        super().attach(symmetry)
        # The frame is computed for G (or S_n x G, for the canonical order) on the same data.
        group = create_group(f"S_n x {self.group}") if self.order == "canonical" else self.group
        self._frame_symmetry = Symmetry(group, symmetry.input, symmetry.input)
        return self

    def sample_noise(self, x: Any, context: GroupContext, scale: float,
                     generator: torch.Generator | None = None) -> Tensor:
        ref = reference_tensor(x)
        dtype = ref.dtype if ref.is_floating_point() else None
        return scale * torch.randn(context.batch_size, context.num_nodes, self.dim,
                                   generator=generator, device=ref.device, dtype=dtype)

    # --- the frame ----------------------------------------------------------------------
    def minimal_frame(self, x: Any, noise: Tensor | None = None, context: GroupContext | None = None) -> Element:
        """``F(x, ε)``: one element of ``group`` per input ``[B]``: the minimal frame's
        element, or where the minimal frame has several, the one the noise ``ε``
        (``[B, N, d]``) chooses (module docstring; without noise such inputs raise
        :class:`DegenerateFrameError`)."""
        self._action()
        sym = self._frame_symmetry
        assert sym is not None  # set by attach, which _action checks
        elements, weights = frame_elements(self.frames, sym, x, sym.context(x))
        rotations = elements[-1] if isinstance(elements, tuple) and self.order == "canonical" else elements
        k = weights.shape[1]
        if k == 1:
            return rotations
        sampled = getattr(self.frames[0], "sampled", None)
        if sampled is not None and bool(sampled.any()):
            idx = sampled.nonzero().flatten()[:5].tolist()
            raise DegenerateFrameError(
                f"FrameResidualInterface: the automorphism groups of inputs {idx} are larger than the "
                f"S_n frame's max_elements={self.frames[0].max_elements} and were sampled, so their "
                "frame is not a function of the input; pass a larger max_elements through the "
                "interface's frame, or use order='given' or RotationInterface for such inputs")
        several = (weights > 0).sum(1) > 1
        silent = several if noise is None else several & (noise.flatten(1) == 0).all(1)
        if bool(silent.any()):
            idx = silent.nonzero().flatten()[:5].tolist()
            raise DegenerateFrameError(
                f"FrameResidualInterface: the minimal frame of inputs {idx} has several elements "
                f"(up to {k}: nodes that the rotation-invariant Gram graph cannot tell apart), and "
                "the interface's noise chooses among them, but these inputs have no noise (zero, as "
                "in learned canonicalization): one fixed element cannot be invariant to the "
                "permutations that fix such an input; use noise (noise_scale > 0), or order='given' "
                "(equivariant to the rotation group only)")
        return self._choose(x, rotations, weights, noise, context)

    def _choose(self, x: Any, rotations: Element, weights: Tensor, noise: Tensor,
                context: GroupContext | None) -> Element:
        """The frame element of least score ``Σ_n φ(ε_n F_j)`` per input (weight-0
        padding never chosen): ``rotations`` ``[B·K]`` b-major, ``weights`` ``[B, K]``."""
        batch, k = weights.shape
        rot = self.group.rotation(rotations).reshape(batch, k, self.dim, self.dim)
        eps = noise.to(rot.dtype)
        mask = node_view(self._action(), x, context).mask
        if mask is not None:
            eps = eps * mask[..., None].to(eps.dtype)
        moved = torch.einsum("bnd,bkde->bkne", eps, rot)                      # ε_n F_j
        w, u = _generic_directions(self.dim, rot.dtype, rot.device)
        score = (moved @ w + (moved @ u) ** 3).sum(-1)                          # [B, K]
        score = score.masked_fill(weights <= 0, float("inf"))
        pick = score.argmin(1) + torch.arange(batch, device=score.device) * k
        return element_take(rotations, pick)

    def canonical_inputs(self, x: Any, frame: Element, noise: Tensor,
                         context: GroupContext | None) -> tuple[Tensor, Tensor | None]:
        """Per-node invariant features ``[B, N, (in_vectors + 1)·d + in_scalars]``:
        ``F(x)⁻¹`` applied to the points (centred on the frame's translation), the vectors
        and the noise, next to the scalars; and the mask ``[B, N]`` (or ``None``)."""
        view = node_view(self._action(), x, context)
        rot = self.group.rotation(frame)                                        # [B, d, d]
        channels = list(view.vectors)
        if view.points is not None:
            centre = self.group.translation(frame)[:, None] if self.group.has_translations else 0.0
            channels.insert(0, view.points - centre)
        if len(channels) != self.in_vectors:
            raise ShapeError(f"FrameResidualInterface(in_vectors={self.in_vectors}) got {len(channels)} "
                             "point/vector fields; set in_vectors to the number of Points and Vectors fields")
        ref = channels[0] if channels else noise
        want = tuple(ref.shape[:2]) + (self.dim,)
        if noise.shape != want:
            raise ShapeError(f"noise must have shape {want}, got {tuple(noise.shape)}")
        # F⁻¹ acts on a row v as v ↦ v Q (Q⁻¹ = Qᵀ; v ↦ v Qᵀ⁻¹ᵀ): the input in the frame
        feats = [c @ rot.to(c.dtype) for c in channels + [noise.to(ref.dtype)]]
        if self.in_scalars:
            got = 0 if view.features is None else view.features.shape[-1]
            if got != self.in_scalars:
                raise ShapeError(f"FrameResidualInterface(in_scalars={self.in_scalars}) got {got} "
                                 "per-node scalar channels (Nodes fields)")
            feats.append(view.features.to(ref.dtype))
        return torch.cat(feats, -1), view.mask

    def residual(self, feats: Tensor, mask: Tensor | None) -> Tensor:
        """``R = GramSchmidt(I + Δ)`` ``[B, d, d]`` from the invariant features (DeepSets)."""
        pooled = _masked_mean(self.phi(feats), mask)
        delta = self.rho(pooled).reshape(-1, self.dim, self.dim)
        eye = torch.eye(self.dim, dtype=delta.dtype, device=delta.device)
        return gram_schmidt(eye + delta, proper=self.group.is_proper)

    def relaxed(self, x: Any, noise: Tensor, context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        frame = self.minimal_frame(x, noise, context)
        feats, mask = self.canonical_inputs(x, frame, noise, context)
        rot = self.residual(feats, mask)
        if self.group.has_translations:
            step = self.group.from_parts(rot, rot.new_zeros(rot.shape[0], self.dim))
        else:
            step = self.group.from_parts(rot)
        return RelaxedElement(self.group.compose(frame, step), (None,), rot.new_zeros(()))


def _generic_directions(dim: int, dtype: torch.dtype, device: Any) -> tuple[Tensor, Tensor]:
    """Two fixed unit vectors ``[d]`` in no special position (no coordinate axis or plane),
    the same at every call: the directions of the frame-choice score."""
    i = torch.arange(1, dim + 1, dtype=torch.float64)
    w, u = torch.cos(1.3 * i + 0.4), torch.sin(2.1 * i ** 1.5 + 0.7)
    return ((w / w.norm()).to(device=device, dtype=dtype), (u / u.norm()).to(device=device, dtype=dtype))
