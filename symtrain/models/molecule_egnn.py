"""EGNN (Satorras et al. 2021) from the maintained ``egnn-pytorch`` package
(``EGNN_Network``) on dense molecule batches, an E(3)-equivariant reference for MD17 and
QM9: energy the sum of per-atom scalars of the final node features (invariant), forces
``−∂E/∂x`` by autograd (equivariant, conservative).

The graph is complete over the real atoms (``z > 0``; 0 is padding, masked out of every
message). Each layer updates the invariant features from squared distances and moves
the coordinates by ``Σ_j w_ij (x_i − x_j)``; the moved coordinates feed the next
layer's distances. The last layer's coordinate update would reach no output, so it is
switched off (no parameter without a gradient).

``egnn-pytorch`` is an optional dependency: ``pip install symtrain[egnn]``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .molecule_transformer import gradient_forces
from .registry import register_model
from .rigid_egnn import import_egnn

FORCES = ("gradient", "none")


@register_model("molecule_egnn")
class MoleculeEGNN(nn.Module):
    """``egnn_pytorch.EGNN_Network`` over atoms embedded by atomic number.

    Args: ``dim`` (node width), ``layers``, ``m_dim`` (message width), ``max_z``,
    ``coor_clamp`` (egnn-pytorch's ``coor_weights_clamp_value``), ``init_eps`` (the
    standard deviation egnn-pytorch draws every linear weight from; its own default,
    1e-3, starts the node features nearly independent of the geometry and the forces
    near zero: on the 21-atom MD17-format molecule of ``bench/molecules_cpu.py``, 250
    steps of the ``cpu`` preset reached force MAE 13.9 with 1e-3 and 2.0 with 0.05),
    ``forces``
    (``"gradient"``: ``−∂E/∂x``; ``"none"``: the energy alone, QM9).

    ``forward(pos (B, N, 3), z (B, N) long) -> (energy (B,), forces (B, N, 3))``.
    """

    def __init__(self, dim: int = 64, layers: int = 4, m_dim: int = 32, max_z: int = 100,
                 coor_clamp: float | None = 2.0, init_eps: float = 0.05, forces: str = "gradient"):
        super().__init__()
        egnn = import_egnn()
        if forces not in FORCES:
            raise ValueError(f"forces must be one of {', '.join(FORCES)}, got {forces!r}")
        self.forces, self.max_z = forces, max_z
        self.egnn = egnn.EGNN_Network(depth=layers, dim=dim, m_dim=m_dim, num_tokens=max_z + 1,
                                      coor_weights_clamp_value=coor_clamp, norm_coors=False,
                                      init_eps=init_eps)
        self.egnn.layers[-1][1].coors_mlp = None
        for _, layer in self.egnn.layers[:-1]:
            # egnn-pytorch leaves this bias at its default (±0.1): the first update would
            # move every atom by Σ_j 0.1 (x_i − x_j), metres on a 21-atom molecule.
            nn.init.zeros_(layer.coors_mlp[-1].bias)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1))

    def _energy(self, pos: Tensor, z: Tensor) -> Tensor:
        z = z.long()
        if z.numel() and (int(z.min()) < 0 or int(z.max()) > self.max_z):
            raise ValueError(f"atomic numbers must lie in [0, {self.max_z}] (max_z; 0 = padding), "
                             f"got [{int(z.min())}, {int(z.max())}]")
        real = z > 0
        feats, _ = self.egnn(z, pos, mask=real)
        return (self.head(feats).squeeze(-1) * real.to(feats.dtype)).sum(1)

    def forward(self, pos: Tensor, z: Tensor) -> tuple[Tensor, Tensor] | Tensor:
        if self.forces == "none":
            return self._energy(pos, z)
        return gradient_forces(lambda p: self._energy(p, z), pos, self.training)
