"""Your own transformer, made S_n × O(3)-equivariant by learned probabilistic
symmetrization (LPS), trained for a few steps on a toy n-body task.

The transformer below knows nothing about symmetry (it even adds a learned per-slot
position embedding, so it depends on node order). ProbabilisticSymmetrization draws k
elements (permutation, rotation) per input from an equivariant interface network,
runs the transformer on g⁻¹·x and maps its output back by g. Run:
``python examples/lps_sn_o3_transformer.py``.
"""
import os

import torch
from torch import nn

import symtrain as st
from symtrain.symmetrize.interfaces import ProductInterface


class MyTransformer(nn.Module):
    """(pos [B,N,3], vel [B,N,3], charge [B,N,1]) -> predicted positions [B,N,3]."""

    def __init__(self, n: int, d: int = 64):
        super().__init__()
        self.embed = nn.Linear(7, d)
        self.slot = nn.Parameter(torch.randn(n, d) * 0.1)  # order-dependent on purpose
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, pos, vel, charge):
        h = self.embed(torch.cat([pos, vel, charge], -1)) + self.slot
        return pos + self.head(self.encoder(h))


def toy_nbody(b: int, n: int = 5, steps: int = 20, dt: float = 0.02, generator=None):
    """Charged particles under softened Coulomb forces: S_n × E(3)-equivariant data."""
    pos = torch.randn(b, n, 3, generator=generator)
    vel = 0.5 * torch.randn(b, n, 3, generator=generator)
    charge = torch.randint(0, 2, (b, n, 1), generator=generator).float() * 2 - 1
    p, v = pos.clone(), vel.clone()
    for _ in range(steps):
        diff = p[:, :, None] - p[:, None]                                   # [B, N, N, 3]
        inv = (diff.pow(2).sum(-1, keepdim=True) + 0.1).pow(-1.5)
        force = (charge[:, :, None] * charge[:, None] * diff * inv).sum(2)
        v = v + dt * force
        p = p + dt * v
    return (pos, vel, charge), p


n = 5
sym = st.Symmetry("S_n x O3", input=st.actions.Fields(st.actions.Points(), st.actions.Vectors(), st.actions.Nodes()),
                  output=st.actions.Points())
interface = ProductInterface("S_n x O3", in_vectors=2, in_scalars=1, hidden=16)   # positions, velocities; charges
model = st.symmetrize.ProbabilisticSymmetrization(MyTransformer(n), sym, interface,
                                                  samples=4, eval_samples=8, noise_scale=1.0)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
gen = torch.Generator().manual_seed(0)
(x_test, y_test) = toy_nbody(32, n, generator=gen)

steps = int(os.environ.get("SYMTRAIN_EXAMPLE_STEPS", "30"))  # the docs test runs 2
for step in range(1, steps + 1):
    x, y = toy_nbody(32, n, generator=gen)
    model.train()
    loss = nn.functional.mse_loss(model(*x), y)             # loss on the mean over k samples
    (loss + model.aux_loss()).backward()                    # + entropy penalty of the soft permutation
    optimizer.step()
    optimizer.zero_grad()
    if step % 10 == 0:
        model.eval()
        with torch.no_grad():
            test = nn.functional.mse_loss(model(*x_test), y_test)
        print(f"step {step:3d}  train mse {loss.item():.4f}  test mse {test.item():.4f}")

model.eval()
err = st.equivariance_error(model, sym, x_test, samples=4)
base_err = st.equivariance_error(model.base, sym, x_test, samples=4)
print(f"equivariance error: transformer alone {base_err.mean:.2e}, with LPS (k=8) {err.mean:.2e}")
