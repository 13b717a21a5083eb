"""Wrap your own model: a plain point-cloud MLP made exactly E(3)-equivariant."""
import torch
from torch import nn

import symtrain as st

n = 16
my_model = nn.Sequential(nn.Flatten(), nn.Linear(n * 3, 128), nn.SiLU(), nn.Linear(128, n * 3), nn.Unflatten(1, (n, 3)))
sym = st.Symmetry("E3", input=st.actions.Points(), output=st.actions.Points())  # rotations, reflections, translations

x = torch.randn(8, n, 3)
for model in (my_model, st.FrameAveraging(my_model, sym), st.GroupAveraging(my_model, sym, samples=64)):
    err = st.equivariance_error(model, sym, x, samples=16)
    print(f"{type(model).__name__:<16} relative equivariance error: mean {err.mean:.2e}, max {err.max:.2e}")

st.assert_equivariant(st.FrameAveraging(my_model, sym), x, tol=1e-5)  # exact up to float32 rounding
