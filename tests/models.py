"""Small non-equivariant base models for the tests: each mixes positions/pixels/nodes
with a dense layer, so none of them respects any symmetry on its own."""

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch


class PointMLP(nn.Module):
    """``[B, N, d_in] -> [B, N, d_out]`` (or ``[B, out]`` if ``pooled``)."""

    def __init__(self, n, d_in, d_out, hidden=32, pooled=False):
        super().__init__()
        self.n, self.d_out, self.pooled = n, d_out, pooled
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * d_in, hidden), nn.Tanh(),
                                 nn.Linear(hidden, d_out if pooled else n * d_out))

    def forward(self, x):
        y = self.net(x)
        return y if self.pooled else y.reshape(x.shape[0], self.n, self.d_out)


class NBodyMLP(nn.Module):
    """``(pos [B,N,3], vel [B,N,3], charge [B,N,1]) -> (pos, vel)``."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * 7, 64), nn.Tanh(), nn.Linear(64, n * 6))

    def forward(self, pos, vel, charge):
        out = self.net(torch.cat([pos, vel, charge], -1)).reshape(pos.shape[0], self.n, 6)
        return pos + out[..., :3], out[..., 3:]


class MaskedAdjacencyMLP(nn.Module):
    """``(adj [B,N,N], mask [B,N]) -> [B, out]``, padding zeroed."""

    def __init__(self, n, out=3):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n * n, 32), nn.Tanh(), nn.Linear(32, out))

    def forward(self, adj, mask):
        pair = (mask[:, :, None] & mask[:, None, :]).to(adj.dtype)
        return self.net(adj * pair)


class CNN(nn.Module):
    def __init__(self, c=3, out=5, pooled=True):
        super().__init__()
        self.pooled = pooled
        self.conv = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, out, 3, padding=1))
        self.head = nn.LazyLinear(out) if pooled else None

    def forward(self, x):
        y = self.conv(x)
        if self.pooled:
            return self.head(y.flatten(1))
        return y + x.mean(1, keepdim=True) * torch.linspace(0, 1, x.shape[-1])


class NodeIndexGNN(nn.Module):
    """PyG batch -> flat node outputs ``[num_nodes, out]``; uses each node's index within its
    graph, so it is not permutation equivariant."""

    def __init__(self, f_in, out=2, max_nodes=16):
        super().__init__()
        self.lin = nn.Linear(f_in, out)
        self.index = nn.Embedding(max_nodes, out)
        self.mix = nn.Linear(max_nodes * f_in, out)

    def forward(self, batch):
        dense, mask = to_dense_batch(batch.x, batch.batch, max_num_nodes=self.index.num_embeddings)
        local = torch.arange(dense.shape[1], device=dense.device).expand(dense.shape[0], -1)
        y = self.lin(dense) + self.index(local) + self.mix(dense.flatten(1))[:, None, :]
        return y[mask]
