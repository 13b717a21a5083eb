"""A new group in one file: point reflection ("parity") ``P_d = {I, −I}`` acting on
``d``-dimensional vectors.

A group is a frozen dataclass with batched elements (here ``[B]`` long tensors, 0 for
the identity and 1 for ``−I``) and the group axioms, plus the capabilities the rest of
the package asks about: ``vector_dim`` and ``rotation`` (its linear part) are all that
points, vectors, the wrappers, the metrics and augmentation need. Registering a name
pattern makes ``"P3"`` a group name everywhere (``Symmetry("P3", ...)``, recipes).

    python examples/new_group.py
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import symtrain as st
from symtrain.groups import Group, register_group


@register_group(r"P(\d+)", example="P3")
@dataclass(frozen=True)
class Parity(Group):
    """``{I, −I}`` on ``R^d``. Elements: ``[B]`` long tensors in ``{0, 1}``."""

    d: int

    def __post_init__(self):
        object.__setattr__(self, "d", int(self.d))
        if self.d < 1:
            raise ValueError(f"the dimension d of P_d must be >= 1, got {self.d}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"P{self.d}"

    @property
    def order(self) -> int:
        return 2

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        return torch.zeros(batch, dtype=torch.long, device=device)

    def compose(self, g, h):
        return (g + h) % 2

    def inverse(self, g):
        return g

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        return torch.randint(0, 2, (batch,), generator=generator, device=device)

    def elements(self, *, context=None, device=None, dtype=None):
        return torch.arange(2, device=device)

    # Capabilities: what actions and wrappers ask a group.
    @property
    def vector_dim(self) -> int:
        return self.d

    def rotation(self, g, dtype=None):
        sign = 1.0 - 2.0 * g.to(dtype or torch.get_default_dtype())
        return sign[:, None, None] * torch.eye(self.d, dtype=sign.dtype, device=g.device)


def main() -> float:
    """Average an MLP over P3 and check that its output flips with its input."""
    sym = st.Symmetry("P3", input=st.actions.Points(), output=st.actions.Vectors(nodes=False))
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 3))
    model = st.GroupAveraging(base, sym)  # exact: both elements in one batched call
    x = torch.randn(8, 5, 3)
    err = st.equivariance_error(model, sym, x)
    assert err.max < 1e-5, err
    assert st.equivariance_error(base, sym, x).max > 1e-2  # the MLP alone is not odd
    return err.max


if __name__ == "__main__":
    print(f"P3 group averaging: worst relative equivariance error {main():.2g}")
