"""Vision transformers on graphs: a timm ViT reads a graph as an image.

A graph of at most ``max_nodes`` nodes becomes a dense ``[N, N, C]`` tensor: edge
features (or the adjacency) in every entry and node features on the diagonal, zero
padded to ``grid · patch`` where ``grid`` is the ViT's token grid and
``patch = ⌈max_nodes / grid⌉``. A new patch embedding (``Conv2d`` with
kernel = stride = ``patch``) turns it into the ViT's tokens; the ViT's position
embeddings, blocks and norms are reused through its public ``forward_features`` /
``forward_head``. Readouts: graph-level from the pooled tokens, node-level from the
diagonal of a ``ConvTranspose2d`` map back to ``N × N``, edge-level from the whole map.

The adapter is *not* permutation-equivariant by itself (the patch grid and position
embeddings see node order). Make it so with a wrapper over S_n acting on
``Fields(Adjacency(), Nodes(), Mask())``: see :func:`graph_vit_symmetry`.
(Kim et al., NeurIPS 2023, "Learning Probabilistic Symmetrization", section on ViTs.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..actions import create_action
from ..errors import ShapeError
from ..symmetry import Symmetry
from .registry import register_model
from .timm_loader import WeightsUnavailableError, load_timm_model

PretrainedWeightsUnavailable = WeightsUnavailableError  # the name before the shared loader

Task = Literal["graph", "node", "edge"]
PAD_MODES = ("zero", "reflect", "replicate", "circular")


class TokenDropout(nn.Module):
    """LPS's patch dropout: timm's ``PatchDropout`` (keep a random subset of the patch
    tokens, the prefix tokens always) at rate ``prob``, or, with ``max_prob``, at a rate
    drawn uniformly from ``[0, max_prob)`` at every forward (LPS ``max_patch_dropout``).
    ``at_eval``: also in evaluation mode. The LPS code builds a fresh ``PatchDropout``
    inside every forward, whose ``training`` flag is always ``True``, so its Peptides
    runs drop patches at evaluation too; ``at_eval=True`` reproduces that."""

    def __init__(self, prob: float = 0.0, max_prob: float = 0.0, prefix: int = 1, at_eval: bool = False):
        super().__init__()
        if prob and max_prob:
            raise ValueError("give patch_dropout or max_patch_dropout, not both")
        for name, value in (("patch_dropout", prob), ("max_patch_dropout", max_prob)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        self.prob, self.max_prob, self.prefix, self.at_eval = prob, max_prob, prefix, at_eval

    def forward(self, x: Tensor) -> Tensor:
        from timm.layers import PatchDropout

        if not (self.training or self.at_eval):
            return x
        rate = self.prob if self.prob else float(torch.rand(())) * self.max_prob
        if rate <= 0:
            return x
        return PatchDropout(rate, num_prefix_tokens=self.prefix)(x)  # a new module: in training mode

    def extra_repr(self) -> str:
        return f"prob={self.prob}, max_prob={self.max_prob}, at_eval={self.at_eval}"


class GraphPatchEmbed(nn.Module):
    """``[B, C, N_pad, N_pad] -> [B, grid², D]`` tokens (replaces the ViT's image patch embedding)."""

    def __init__(self, in_chans: int, embed_dim: int, patch: int, grid: int):
        super().__init__()
        self.patch, self.grid_size = patch, (grid, grid)
        self.num_patches = grid * grid
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class GraphViT(nn.Module):
    """A timm vision transformer applied to dense graphs.

    ``forward(adj, x=None, mask=None)``:
        adj: ``[B, N, N]`` adjacency or ``[B, N, N, E]`` edge features, ``N ≤ max_nodes``.
        x: ``[B, N, F]`` node features (placed on the diagonal), optional.
        mask: ``[B, N]`` bool, True for real nodes; padded entries are zeroed.
    Returns ``[B, out_dim]`` (graph), ``[B, N, out_dim]`` (node) or ``[B, N, N, out_dim]`` (edge).

    Args:
        vit: a timm ``VisionTransformer`` (or family: DeiT, …). Its ``patch_embed`` is replaced and
            its classifier removed; ``backbone_parameters()`` / ``new_parameters()`` split the
            parameters for separate learning rates.
        node_embed / edge_embed: if given, node features and edge channels first go through a
            linear map without bias to that many channels (on one-hot categorical features,
            OGB's ``AtomEncoder`` / ``BondEncoder``: a sum of per-column embeddings), so the
            dense image has ``edge_embed + node_embed`` channels instead of the raw widths.
        pad_mode: how the ``N × N`` image is padded to ``grid · patch`` (``F.pad`` modes as
            in LPS: ``"zero"``, ``"reflect"``, ``"replicate"``, ``"circular"``).
        centering: pad on both sides (half before, half after) instead of after only (LPS
            ``centering``; with ``"zero"`` padding and no centering, the default, the image
            is zero-padded at the end).
        patch_dropout / max_patch_dropout / patch_dropout_eval: LPS's patch dropout (see
            :class:`TokenDropout`); graph readout only (node and edge readouts need every token).
    """

    def __init__(self, vit: nn.Module, max_nodes: int, edge_dim: int = 1, node_dim: int = 0,
                 out_dim: int = 1, task: Task = "graph", node_embed: int | None = None,
                 edge_embed: int | None = None, pad_mode: str = "zero", centering: bool = False,
                 patch_dropout: float = 0.0, max_patch_dropout: float = 0.0, patch_dropout_eval: bool = False):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.pad_mode, self.centering = pad_mode, centering
        if (patch_dropout or max_patch_dropout) and task != "graph":
            raise ValueError(f"patch dropout needs the graph readout (every token is read back for "
                             f"{task!r} outputs)")
        self.node_encoder = nn.Linear(node_dim, node_embed, bias=False) if node_embed and node_dim else None
        self.edge_encoder = nn.Linear(edge_dim, edge_embed, bias=False) if edge_embed else None
        if task not in ("graph", "node", "edge"):
            raise ValueError(f"task must be 'graph', 'node' or 'edge', got {task!r}")
        grid = getattr(getattr(vit, "patch_embed", None), "grid_size", None)
        if grid is None or not hasattr(vit, "forward_features"):
            raise TypeError(f"{type(vit).__name__} is not a timm vision transformer (no patch_embed.grid_size)")
        if grid[0] != grid[1]:
            raise ValueError(f"the ViT's token grid must be square, got {tuple(grid)}")
        self.grid = int(grid[0])
        self.max_nodes, self.edge_dim, self.node_dim, self.task = max_nodes, edge_dim, node_dim, task
        self.patch = max(1, math.ceil(max_nodes / self.grid))
        self.padded = self.patch * self.grid
        dim = vit.embed_dim
        vit.reset_classifier(0)
        channels = (edge_embed or edge_dim) + ((node_embed or node_dim) if node_dim else 0)
        vit.patch_embed = GraphPatchEmbed(channels, dim, self.patch, self.grid)
        if patch_dropout or max_patch_dropout:
            vit.patch_drop = TokenDropout(patch_dropout, max_patch_dropout, getattr(vit, "num_prefix_tokens", 1),
                                          patch_dropout_eval)
        self.backbone = vit
        if task == "graph":
            self.head = nn.Linear(vit.num_features, out_dim)
        else:
            self.head = nn.ConvTranspose2d(dim, out_dim, kernel_size=self.patch, stride=self.patch)

    def backbone_parameters(self):
        """Pretrained parameters (position embeddings, blocks, norms)."""
        return [p for n, p in self.backbone.named_parameters() if not n.startswith("patch_embed.")]

    def new_parameters(self):
        """Parameters this adapter adds (graph patch embedding, readout head)."""
        encoders = [m for m in (self.node_encoder, self.edge_encoder) if m is not None]
        return ([p for m in encoders for p in m.parameters()] + list(self.backbone.patch_embed.parameters())
                + list(self.head.parameters()))

    def dense_input(self, adj: Tensor, x: Tensor | None, mask: Tensor | None) -> Tensor:
        """``[B, C, N_pad, N_pad]`` image of the graph."""
        if adj.dim() == 3:
            adj = adj[..., None]
        if adj.dim() != 4 or adj.shape[1] != adj.shape[2]:
            raise ShapeError(f"GraphViT expects adjacency (B, N, N) or (B, N, N, E), got {tuple(adj.shape)}")
        b, n = adj.shape[:2]
        if n > self.max_nodes:
            raise ShapeError(f"graph has {n} nodes but this GraphViT was built for at most "
                             f"{self.max_nodes}; build it with max_nodes >= {n}")
        if adj.shape[-1] != self.edge_dim:
            raise ShapeError(f"GraphViT was built for edge_dim={self.edge_dim}, got {adj.shape[-1]} edge channels")
        adj = adj.to(self.head.weight.dtype)
        parts = [self.edge_encoder(adj) if self.edge_encoder is not None else adj]
        if self.node_dim:
            if x is None or x.shape[:2] != (b, n) or x.shape[-1] != self.node_dim:
                got = None if x is None else tuple(x.shape)
                raise ShapeError(f"GraphViT expects node features ({b}, {n}, {self.node_dim}), got {got}")
            x = x.to(parts[0].dtype)
            if self.node_encoder is not None:
                x = self.node_encoder(x)
            parts.append(torch.diag_embed(x.to(parts[0].dtype).transpose(1, 2)).permute(0, 2, 3, 1))
        dense = torch.cat(parts, -1)
        if mask is not None:
            pair = (mask[:, :, None] & mask[:, None, :]).to(dense.dtype)
            dense = dense * pair[..., None]
        dense = dense.permute(0, 3, 1, 2)
        pad = self.padded - n
        before = pad // 2 if self.centering else 0
        sides = (before, pad - before, before, pad - before)
        if self.pad_mode == "zero" or pad == 0:
            return F.pad(dense, sides)
        return F.pad(dense, sides, mode=self.pad_mode)

    def forward(self, adj: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        n = adj.shape[1]
        tokens = self.backbone.forward_features(self.dense_input(adj, x, mask))
        if self.task == "graph":
            return self.head(self.backbone.forward_head(tokens, pre_logits=True))
        prefix = getattr(self.backbone, "num_prefix_tokens", 1)
        grid = tokens[:, prefix:].transpose(1, 2).reshape(tokens.shape[0], -1, self.grid, self.grid)
        start = (self.padded - n) // 2 if self.centering else 0
        out = self.head(grid)[:, :, start:start + n, start:start + n].permute(0, 2, 3, 1)  # [B, N, N, out]
        if self.task == "edge":
            return out
        return torch.diagonal(out, dim1=1, dim2=2).transpose(1, 2)  # [B, N, out]


def create_vit(model_name: str, *, pretrained: bool = False, checkpoint: str | Path | None = None,
               **timm_kwargs) -> nn.Module:
    """A timm ViT by name, with weights from the hub (``pretrained=True``), a local file
    (``checkpoint=PATH``) or random; see :func:`~symtrain.models.timm_loader.load_timm_model`.
    A checkpoint's classifier is dropped (the head is new)."""
    return load_timm_model(model_name, pretrained=pretrained, checkpoint=checkpoint,
                           checkpoint_head=False, **timm_kwargs)


def create_graph_vit(model_name: str = "vit_tiny_patch16_224", *, max_nodes: int, edge_dim: int = 1,
                     node_dim: int = 0, out_dim: int = 1, task: Task = "graph", pretrained: bool = False,
                     checkpoint: str | Path | None = None, node_embed: int | None = None,
                     edge_embed: int | None = None, pad_mode: str = "zero", centering: bool = False,
                     patch_dropout: float = 0.0, max_patch_dropout: float = 0.0, patch_dropout_eval: bool = False,
                     **timm_kwargs) -> GraphViT:
    """``GraphViT`` around ``timm.create_model(model_name, ...)``; see :func:`create_vit`.
    The ViT's classifier is not used, so it is built without one (and a checkpoint's
    classifier weights, whatever their size, are dropped by timm's loader)."""
    timm_kwargs.setdefault("num_classes", 0)
    vit = create_vit(model_name, pretrained=pretrained, checkpoint=checkpoint, **timm_kwargs)
    return GraphViT(vit, max_nodes=max_nodes, edge_dim=edge_dim, node_dim=node_dim, out_dim=out_dim, task=task,
                    node_embed=node_embed, edge_embed=edge_embed, pad_mode=pad_mode, centering=centering,
                    patch_dropout=patch_dropout, max_patch_dropout=max_patch_dropout,
                    patch_dropout_eval=patch_dropout_eval)


def graph_vit_symmetry(task: Task = "graph") -> Symmetry:
    """S_n acting on ``(adj, x, mask)`` inputs and on graph / node / edge outputs."""
    output = {"graph": "trivial", "node": "nodes", "edge": "adjacency"}[task]
    return Symmetry("S_n", create_action("fields", "adjacency", "nodes", "mask"), output)


def _size_kwargs(**kwargs) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None}


@register_model("timm_vit")
def timm_vit(vit: str = "vit_tiny_patch16_224", num_classes: int = 1000, pretrained: bool = False,
             checkpoint: str | None = None, img_size: int | None = None, patch_size: int | None = None,
             in_chans: int = 3, depth: int | None = None, drop_path_rate: float = 0.0) -> nn.Module:
    """A timm vision transformer by name (weights from the hub, a local file, or random)."""
    return create_vit(vit, pretrained=pretrained, checkpoint=checkpoint, num_classes=num_classes,
                      in_chans=in_chans, drop_path_rate=drop_path_rate,
                      **_size_kwargs(img_size=img_size, patch_size=patch_size, depth=depth))


@register_model("graph_vit")
def graph_vit(max_nodes: int, vit: str = "vit_tiny_patch16_224", num_classes: int = 2,
              in_features: int = 0, edge_dim: int = 1, readout: str = "node", pretrained: bool = False,
              checkpoint: str | None = None, img_size: int | None = None, patch_size: int | None = None,
              depth: int | None = None, drop_path_rate: float = 0.0, node_embed: int | None = None,
              edge_embed: int | None = None, pad_mode: str = "zero", centering: bool = False,
              patch_dropout: float = 0.0, max_patch_dropout: float = 0.0,
              patch_dropout_eval: bool = False) -> nn.Module:
    """A timm ViT reading dense graphs (:class:`GraphViT`); ``readout`` is ``"graph"``,
    ``"node"`` or ``"edge"``; ``node_embed`` / ``edge_embed``: linear encoders of the
    features first (categorical one-hot features); ``pad_mode``, ``centering`` and the
    patch dropout options: LPS's Peptides settings (see :class:`GraphViT`). Parameter names: the pretrained part is
    ``backbone.*`` except ``backbone.patch_embed.*`` (new), plus ``head.*``,
    ``node_encoder.*``, ``edge_encoder.*`` (new)."""
    return create_graph_vit(vit, max_nodes=max_nodes, edge_dim=edge_dim, node_dim=in_features,
                            out_dim=num_classes, task=readout, pretrained=pretrained, checkpoint=checkpoint,
                            drop_path_rate=drop_path_rate, node_embed=node_embed, edge_embed=edge_embed,
                            pad_mode=pad_mode, centering=centering, patch_dropout=patch_dropout,
                            max_patch_dropout=max_patch_dropout, patch_dropout_eval=patch_dropout_eval,
                            **_size_kwargs(img_size=img_size, patch_size=patch_size, depth=depth))
