"""The Laplacian-eigenvector frame of S_n on graphs: the frame-averaging ablation of the
LPS paper (Kim et al., NeurIPS 2023; ``configs/node_classification_pattern/*_fa.yaml``,
``src/data/compute_frames.py`` and ``src/symmetry/frame/S.py`` in ``jw9730/lps``), after
Puny et al. (ICLR 2022, section 3.2).

The rule, as the LPS code computes it for each graph:

1. the Laplacian ``L = D − A`` of the graph (LPS: PyG's ``get_laplacian`` of
   ``edge_index``, unweighted, self-loops removed) and its eigen-decomposition
   (ascending eigenvalues);
2. a matrix ``S(G) [N, #distinct eigenvalues]``: for a simple eigenvalue, ``|v_i|``; for a
   repeated one, the norm of node ``i``'s row of the eigenspace's basis,
   ``sqrt(Σ_k v_k[i]²)`` (both invariant to the sign and basis choices of ``eigh``);
3. ``S`` rounded to 2 decimals, the nodes sorted lexicographically by their rows (the
   column of the smallest eigenvalue first);
4. nodes with identical rows are tied; the frame is every ordering of the tied nodes, and
   LPS samples one element by breaking ties uniformly at random (uniform noise in
   ``(0.1, 0.5)`` added to the tied nodes' common rank, then ``argsort``), one sample at
   training and one at evaluation.

**What differs from the LPS code, and why.** Eigenvalues are grouped as repeated when
they are within ``eig_tol`` (relative to the largest) of each other; LPS groups them by
*exact* float equality (``np.unique`` of float32 eigenvalues), which in floating point
splits most repeated eigenvalues, and then ``|v|`` of one vector of an arbitrary basis of
the eigenspace is not a function of the graph (not equivariant). The decomposition runs
in float64, batched (``torch.linalg.eigh``), the first time a graph is seen (then from a
cache keyed by the graph; LPS precomputes the frames once per dataset);
padded nodes get a diagonal entry above the spectrum so they do not mix with the graph's
eigenspaces. The adjacency's values are the edge weights: 0/1 for PATTERN, where this is
LPS's unweighted Laplacian; directed adjacencies are symmetrised (``(A + Aᵀ)/2``) and the
diagonal is ignored.

**Equivariance.** ``S(P·G) = P·S(G)`` (rows move with the nodes), so the set of orderings
(the frame) satisfies ``F(P·G) = P·F(G)``, and the uniform distribution over it moves the
same way. Hence:

- the average over the whole frame (``samples=None``, ties enumerated) is exactly
  equivariant;
- with ``samples=K`` tie-breaks drawn at random (LPS: ``K = 1``) the wrapper is
  **equivariant in distribution**: the law of its output at ``P·G`` is the law at ``G``
  moved by ``P``; a single draw is not equivariant on graphs with ties (there is no
  canonical order of tied nodes). On graphs without ties it is one element, exact.

Both hold wherever no entry of ``S`` is within float error of a rounding boundary
(``(k + ½)·10⁻²``): rounding makes the frame a discontinuous function of the graph.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_prefix_mask
from ..domains import OPTIONAL_COUNT, POSITIVE_INT, Count, Real, check_args
from ..errors import ShapeError, UnsupportedGroupError
from ..groups.base import Group, GroupContext
from ..symmetry import Symmetry
from .averaging import SampledElements
from .base import Symmetrizer, check_samples
from .frames import SortFrame, _float, sort_order
from .registry import register_symmetrizer


def edge_weights(adjacency: Tensor) -> Tensor:
    """``[B, N, N]`` edge weights (detached) of an adjacency ``[B, N, N]`` or edge features
    ``[B, N, N, E]`` (an edge where any channel is non-zero, weight 1)."""
    if adjacency.dim() == 4:
        adjacency = (adjacency != 0).any(-1)
    if adjacency.dim() != 3 or adjacency.shape[1] != adjacency.shape[2]:
        raise ShapeError(f"a Laplacian frame needs an adjacency [B, N, N], got {tuple(adjacency.shape)}")
    return adjacency.detach()


@check_args(decimals=Count(0), eig_tol=Real(0))
def laplacian_keys(adjacency: Tensor, mask: Tensor | None = None, decimals: int = 2,
                   eig_tol: float = 1e-6) -> Tensor:
    """The LPS sort criterion ``S(G)``, rounded: ``[B, N, N]`` float64, column ``c`` the
    ``c``-th distinct eigenvalue of the Laplacian (ascending; unused columns 0), row ``i``
    node ``i``'s entries ``sqrt(Σ_{k in eigenspace c} v_k[i]²)`` rounded to ``decimals``.

    Args:
        adjacency: ``[B, N, N]`` edge weights (``[B, N, N, E]``: an edge where any channel
            is non-zero, weight 1).
        mask: ``[B, N]`` bool, True for real nodes (a prefix of each row), or ``None``.
        decimals: the rounding of ``S`` (LPS: 2).
        eig_tol: eigenvalues closer than ``eig_tol × max(1, λ_max)`` form one eigenspace.

    >>> import torch
    >>> path = torch.tensor([[[0., 1, 0], [1, 0, 1], [0, 1, 0]]])  # 0 - 1 - 2
    >>> laplacian_keys(path)[0, :, :3].tolist()  # nodes 0 and 2 tie, node 1 differs
    [[0.58, 0.71, 0.41], [0.58, 0.0, 0.82], [0.58, 0.71, 0.41]]
    """
    a = edge_weights(adjacency).to(torch.float64)
    a = (a + a.transpose(1, 2)) / 2
    b, n, _ = a.shape
    eye = torch.eye(n, dtype=torch.bool, device=a.device)
    a = a.masked_fill(eye, 0.0)
    real = torch.ones(b, n, dtype=torch.bool, device=a.device) if mask is None else mask.to(torch.bool)
    pair = real[:, :, None] & real[:, None, :]
    a = a * pair
    degree = a.sum(-1)
    # padded nodes: an isolated diagonal entry above the spectrum (λ_max(L) ≤ 2·max degree)
    above = 2 * a.abs().sum(-1).amax(1, keepdim=True) + 1.0  # [B, 1], above every real eigenvalue (Gershgorin)
    lap = torch.diag_embed(torch.where(real, degree, above.expand(b, n))) - a
    evals, evecs = torch.linalg.eigh(lap)  # ascending; columns of evecs are eigenvectors
    count = real.sum(1, keepdim=True)  # the real eigenvalues are the first `count`
    real_eig = torch.arange(n, device=a.device)[None, :] < count
    scale = eig_tol * evals.abs().masked_fill(~real_eig, 0).amax(1, keepdim=True).clamp_min(1.0)
    new_space = torch.ones(b, n, dtype=torch.long, device=a.device)
    new_space[:, 1:] = ((evals[:, 1:] - evals[:, :-1]) > scale).long()
    space = new_space.cumsum(1) - 1  # [B, N]: eigenspace index of each eigenvalue
    sq = evecs.square() * real_eig[:, None, :]
    norms = torch.zeros(b, n, n, dtype=torch.float64, device=a.device)
    norms.scatter_add_(2, space[:, None, :].expand(b, n, n), sq)
    factor = 10.0 ** decimals
    return torch.round(norms.sqrt() * factor) / factor + 0.0  # + 0.0: no −0.0


class LaplacianFrame(SortFrame):
    """The frame of S_n on graphs from the Laplacian's eigenvectors (see the module
    docstring): the permutations that sort the nodes by :func:`laplacian_keys`, every
    ordering of tied nodes (``samples=None``), or ``samples`` uniformly random tie-breaks.

    Elements follow :class:`~symtrain.symmetrize.frames.SortFrame` (the node of rank ``r``
    goes to position ``r``): ``[B·K, N]`` with weights ``[B, K]``; ``K = 1`` when no input
    of the batch has ties.

    Args:
        decimals: rounding of the criterion (LPS: 2).
        eig_tol: relative tolerance under which eigenvalues count as repeated.
        samples: tie-breaks drawn per input (LPS: 1); ``None``: all orderings (exact).
        max_size: the most orderings enumerated per input when ``samples`` is ``None``.
        generator: ``torch.Generator`` for the tie-breaks (default: torch's global RNG).
        cache_size: sorted orders kept per frame, keyed by a hash of the exact graph (an
            epoch over the same graphs decomposes each once, as LPS precomputes its frames
            once per dataset); 0 disables the cache.
    """

    @check_args(decimals=Count(0), eig_tol=Real(0), samples=OPTIONAL_COUNT, max_size=POSITIVE_INT,
                cache_size=Count(0))
    def __init__(self, decimals: int = 2, eig_tol: float = 1e-6, samples: int | None = None,
                 max_size: int = 720, generator: torch.Generator | None = None, cache_size: int = 65536):
        super().__init__(ties="enumerate", max_size=max_size)
        self.decimals, self.eig_tol, self.samples, self.generator = decimals, eig_tol, samples, generator
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[Tensor, Tensor]] = OrderedDict()
        self.last_tied: bool | None = None  # whether the last call met ties (None: no call yet)

    def __repr__(self):
        return (f"LaplacianFrame(decimals={self.decimals}, eig_tol={self.eig_tol}, samples={self.samples}, "
                f"max_size={self.max_size})")

    def graph(self, symmetry: Symmetry, x: Any, context: GroupContext) -> tuple[Tensor, Tensor | None]:
        """The input's edge weights ``[B, N, N]`` and node mask ``[B, N]`` (or ``None``)."""
        view = symmetry.input.node_view(x, context)
        if view.adjacency is None:
            raise UnsupportedGroupError("a Laplacian frame orders the nodes of a graph: the input has no "
                                        "adjacency (use frame_averaging's sort frames for sets)")
        return edge_weights(view.adjacency), (view.mask if view.mask is not None else context.mask)

    def sorted_nodes(self, adjacency: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """:func:`~symtrain.symmetrize.frames.sort_order` of :func:`laplacian_keys`: ``order
        [B, N]`` and ``tied [B, N-1]``, from the cache for graphs seen before."""
        if not self.cache_size:
            return sort_order(laplacian_keys(adjacency, mask, self.decimals, self.eig_tol), mask)
        b, n = adjacency.shape[:2]
        sizes = [n] * b if mask is None else mask.sum(1).tolist()
        host = adjacency.cpu()
        names = [hashlib.blake2b(str((m, host.dtype)).encode() + host[i, :m, :m].contiguous().numpy().tobytes(),
                                 digest_size=16).digest() for i, m in enumerate(sizes)]
        missing = [i for i, name in enumerate(names) if name not in self._cache]
        if missing:
            rows = torch.tensor(missing, device=adjacency.device)
            sub_mask = None if mask is None else mask[rows]
            order, tied = sort_order(laplacian_keys(adjacency[rows], sub_mask, self.decimals, self.eig_tol),
                                     sub_mask)
            for j, i in enumerate(missing):
                m = sizes[i]
                self._cache[names[i]] = (order[j, :m].cpu(), tied[j, :max(m - 1, 0)].cpu())
        order = torch.arange(n).repeat(b, 1)
        tied = torch.zeros(b, max(n - 1, 0), dtype=torch.bool)
        for i, name in enumerate(names):
            o, t = self._cache[name]
            self._cache.move_to_end(name)
            order[i, :o.shape[0]], tied[i, :t.shape[0]] = o, t
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return order.to(adjacency.device), tied.to(adjacency.device)

    def __call__(self, factor, symmetry, x, context):
        if not factor.permutes_nodes:
            raise UnsupportedGroupError(f"Laplacian frames are for S_n, not {factor}")
        adjacency, mask = self.graph(symmetry, x, context)
        if mask is not None:
            check_prefix_mask(mask)
        order, tied = self.sorted_nodes(adjacency, mask)
        self.last_tied = bool(tied.any())
        if not self.last_tied:
            return order, torch.ones(order.shape[0], 1, device=order.device, dtype=_float(x))
        if self.samples is None:
            return self._enumerate_ties(order, tied, x)
        return self.sample_ties(order, tied, self.samples, _float(x))

    def sample_ties(self, order: Tensor, tied: Tensor, k: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``k`` uniformly random orderings of the tied ranks of each input: elements
        ``[B·k, N]`` and weights ``[B, k]`` (``1/k``). Each tied block is shuffled by an
        ``argsort`` of the block index plus uniform noise in ``[0, ½)``, which keeps the
        blocks in order (the rule of LPS's ``sample_perm``)."""
        b, n = order.shape
        block = torch.zeros(b, n, dtype=torch.float64, device=order.device)
        block[:, 1:] = (~tied).to(torch.float64).cumsum(1)
        noise = torch.rand(b, k, n, generator=self.generator, dtype=torch.float64,
                           device=order.device if self.generator is None else self.generator.device)
        ranks = torch.argsort(block[:, None, :] + 0.5 * noise.to(order.device), dim=-1)  # [B, k, N]
        elems = order[:, None, :].expand(b, k, n).gather(2, ranks)  # g[r] = order[π(r)]
        return elems.reshape(b * k, n), torch.full((b, k), 1.0 / k, device=order.device, dtype=dtype)


@register_symmetrizer("laplacian_frame_averaging", "laplacian_fa")
class LaplacianFrameAveraging(Symmetrizer):
    """Frame averaging over S_n with the Laplacian-eigenvector frame (:class:`LaplacianFrame`),
    the LPS PATTERN ablation ``FA``.

    ``samples=None`` (the default): the average over every ordering of tied nodes, exactly
    equivariant (an error past ``max_size`` orderings). ``samples=K``: ``K`` random
    tie-breaks per input (LPS: 1 at training, ``eval_samples=1`` at evaluation), equivariant
    in distribution; :meth:`fixed_draw` fixes them for the exact check of the average.

    Args:
        base: the backbone, called on ``B·K`` reordered inputs.
        symmetry: S_n acting on an input with an adjacency (dense ``Adjacency`` fields, a PyG graph).
        samples / eval_samples: tie-breaks per input in training / evaluation mode.
        decimals, eig_tol, max_size, generator, cache_size: see :class:`LaplacianFrame`.
        chunk_size: see :class:`~symtrain.symmetrize.base.Symmetrizer`.
    """

    @check_args(samples=OPTIONAL_COUNT, eval_samples=OPTIONAL_COUNT, decimals=Count(0), eig_tol=Real(0),
                max_size=POSITIVE_INT, chunk_size=OPTIONAL_COUNT, cache_size=Count(0))
    def __init__(self, base: nn.Module, symmetry: Symmetry, samples: int | None = None,
                 eval_samples: int | None = None, decimals: int = 2, eig_tol: float = 1e-6,
                 max_size: int = 720, generator: torch.Generator | None = None, chunk_size: int | None = None,
                 cache_size: int = 65536):
        super().__init__(base, symmetry, chunk_size)
        reason = self.supports(symmetry.group)
        if reason is not None:
            raise UnsupportedGroupError(reason)
        self.samples = check_samples("samples", samples)
        self.eval_samples = check_samples("eval_samples", eval_samples)
        self.frame = LaplacianFrame(decimals, eig_tol, None, max_size, generator, cache_size)

    @classmethod
    def supports(cls, group: Group, **options) -> str | None:
        """Only S_n itself (the frame orders the nodes of a graph)."""
        if len(group.factors) == 1 and group.permutes_nodes:
            return None
        return f"Laplacian frames order the nodes of a graph: the group must be S_n, not {group}"

    @property
    def num_samples(self) -> int | None:
        if not self.training and self.eval_samples is not None:
            return self.eval_samples
        return self.samples

    @property
    def stochastic(self) -> bool:
        """Tie-breaks are drawn (``samples`` set) and the last input had ties (before any
        call: whenever ``samples`` is set)."""
        return self.num_samples is not None and self.frame.last_tied is not False

    def fixed_draw(self, x: Any, context: GroupContext) -> SampledElements | None:
        """The drawn frame elements, fixed (``None`` when nothing is drawn)."""
        if self.num_samples is None:
            return None
        return SampledElements(self, *self.weighted_elements(x, context))

    def weighted_elements(self, x, context):
        self.frame.samples = self.num_samples
        return self.frame(self.symmetry.group, self.symmetry, x, context)

    def extra_repr(self):
        return (f"{super().extra_repr()}, samples={self.samples}, eval_samples={self.eval_samples}, "
                f"frame={self.frame!r}")
