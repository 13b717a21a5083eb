"""A new data type in one file: per-node symmetric tensors ``T`` ``(B, N, 3, 3)`` (stress,
inertia, diffusion tensors), rotated as ``R T Rᵀ`` and permuted with their nodes.

Declaring what the action can do (its node view, how a soft permutation moves it) is
all the package needs: the wrappers, metrics, augmentation, the REMUL loss and Lie
derivatives then work with it unchanged.

    python examples/new_data_type.py
"""

from __future__ import annotations

import torch
from torch import nn

import symtrain as st
from symtrain.actions import Action, NodeView, matrix_on_nodes, permute_axis, register_action
from symtrain.errors import ShapeError
from symtrain.groups import GroupContext


@register_action("symmetric_tensors")
class SymmetricTensors(Action):
    """Per-node symmetric ``d × d`` tensors ``(B, N, d, d)``: ``g·T = R T Rᵀ`` for the linear
    part ``R`` of a group factor (column-vector convention), nodes moved by S_n,
    translations ignored."""

    def supports(self, factor):
        if factor.permutes_nodes or factor.vector_dim is not None:
            return None
        return f"{factor} has no linear part to rotate tensors with"

    def check(self, x, group):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[-1] != x.shape[-2]:
            raise ShapeError(f"{self!r} expects (B, N, d, d), got {getattr(x, 'shape', type(x))}")
        for factor in group.factors:
            if factor.vector_dim is not None and factor.vector_dim != x.shape[-1]:
                raise ShapeError(f"{factor} acts on {factor.vector_dim}-d tensors, got {x.shape[-1]}-d")

    def act_factor(self, factor, g, x, context):
        if factor.permutes_nodes:
            return permute_axis(x, factor.permutation(g), 1)
        r = factor.rotation(g, x.dtype)
        return torch.einsum("bij,bnjk,blk->bnil", r, x, r)

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[1], batch_size=x.shape[0])

    # What the package asks of a data type:
    def node_view(self, x, context=None):
        # Rotation invariants per node (trace, trace of T², determinant): scalar features
        # for interfaces and sort frames.
        invariants = torch.stack([x.diagonal(dim1=-2, dim2=-1).sum(-1),
                                  (x @ x).diagonal(dim1=-2, dim2=-1).sum(-1), torch.linalg.det(x)], -1)
        return NodeView(features=invariants)

    def points(self, x):
        return None

    def pixels(self, x):
        return None

    def soft_permute(self, x, matrix, context=None):
        return matrix_on_nodes(matrix, x, 1)


class TensorMLP(nn.Module):
    """A plain MLP on positions and tensors: neither permutation- nor rotation-equivariant."""

    def __init__(self, n: int, hidden: int = 64):
        super().__init__()
        self.n = n
        self.net = nn.Sequential(nn.Linear(n * 12, hidden), nn.SiLU(), nn.Linear(hidden, n * 9))

    def forward(self, pos, tensors):
        h = torch.cat([pos.flatten(1), tensors.flatten(1)], 1)
        out = self.net(h).reshape(-1, self.n, 3, 3)
        return out + out.transpose(-1, -2)  # symmetric


def make_symmetry(group: str = "S_n x O3") -> st.Symmetry:
    tensors = SymmetricTensors()
    return st.Symmetry(group, input=st.actions.create_action("fields", "points", tensors), output=tensors)


def random_input(b: int = 4, n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.randn(b, n, 3, 3)
    return torch.randn(b, n, 3), a @ a.transpose(-1, -2)


def wrapped_models(n: int = 5) -> dict[str, nn.Module]:
    base = TensorMLP(n)
    x = random_input(n=n)
    sym = make_symmetry()
    return {
        "plain": base,
        "GroupAveraging (64 samples, in distribution)": st.GroupAveraging(base, sym, samples=64),
        "FrameAveraging (sort x PCA, exact)": st.FrameAveraging(base, sym),
        "learned canonicalization (exact)": st.create_symmetrizer("learned_canonicalization", base, sym,
                                                                  example=x),
        "LPS (16 samples, in distribution)": st.create_symmetrizer("ps", base, sym, samples=16, example=x),
    }


def main() -> None:
    torch.manual_seed(0)
    sym = make_symmetry()
    x = random_input()
    models = wrapped_models()
    for name, model in models.items():
        err = st.equivariance_error(model.eval(), sym, x, samples=8)
        print(f"{name:<46} equivariance error: mean {err.mean:.2e}, max {err.max:.2e}")

    fa, plain = models["FrameAveraging (sort x PCA, exact)"], models["plain"]
    with torch.no_grad():
        y = fa(*x)
        gx, gy = st.Augment(sym)(x, y)
        print(f"Augment + an equivariant model: |f(g·x) − g·y| = {float((fa(*gx) - gy).abs().max()):.1e}")
        for name, model in (("plain", plain), ("frame averaging", fa)):
            _, logs = st.EquivarianceLoss(sym)(model, x, y)
            print(f"REMUL metric E' of the {name} model: {float(logs['E_prime']):.2e}")
    rotations = st.Symmetry("SO3", input=sym.input, output=sym.output)
    for name, model in (("plain", plain), ("frame averaging", fa)):
        lie = st.lie_derivatives(model, x, "all", symmetry=rotations)
        print(f"Lie derivative of the {name} model per SO(3) generator:",
              ", ".join(f"{float(v.detach().abs().mean()):.1e}" for v in lie.values()))


if __name__ == "__main__":
    main()
