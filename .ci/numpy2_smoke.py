"""The core smoke test that .ci/numpy2_core.sh runs in a fresh environment holding the
core package and numpy 2 (no extras). Every check can fail: the wrapped models must be
equivariant and the plain one must not, the Lie derivative of an exact wrapper must be
small and the plain model's large, and a short training run must write its metrics."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy
import torch
from torch import nn

import symtrain as st

assert int(numpy.__version__.split(".")[0]) >= 2, numpy.__version__
assert "escnn" not in sys.modules, "import symtrain imported escnn"
torch.manual_seed(0)

n = 6
for dtype in (torch.float32, torch.float64):
    base = nn.Sequential(nn.Flatten(), nn.Linear(n * 3, 32), nn.Tanh(), nn.Linear(32, n * 3),
                         nn.Unflatten(1, (n, 3))).to(dtype)
    sym = st.Symmetry("E3", input=st.actions.Points(), output=st.actions.Points())
    x = torch.randn(4, n, 3, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert st.equivariance_error(st.FrameAveraging(base, sym), sym, x).max < tol
    assert st.equivariance_error(base, sym, x).max > 1e-2, "the plain model passed as equivariant"
    # Lie derivative along every generator of E(3): ~0 for the frame-averaged model.
    wrapped = st.lie_derivatives(st.FrameAveraging(base, sym), x, symmetry=sym, norm="squared")
    plain = st.lie_derivatives(base, x, symmetry=sym, norm="squared")
    assert max(float(v.detach().max()) for v in wrapped.values()) < tol
    assert max(float(v.detach().max()) for v in plain.values()) > 1e-3

    # Finite group averaging on images (D4): exact.
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).to(dtype)
    img_sym = st.Symmetry(st.groups.Dihedral(4), input=st.actions.Image(), output=st.actions.Trivial())
    images = torch.randn(3, 1, 9, 9, dtype=dtype)
    assert st.equivariance_error(st.GroupAveraging(cnn, img_sym), img_sym, images).max < tol
    assert st.equivariance_error(cnn, img_sym, images).max > 1e-3

# A recipe that needs no extras, at the smoke budget, through the command line.
with tempfile.TemporaryDirectory() as out:
    done = subprocess.run([sys.executable, "-m", "symtrain", "train", "exp_mlp_ps", "--budget", "smoke",
                           "--set", "train.progress=false", "--out", out], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    assert metrics, "empty metrics.json"
assert "escnn" not in sys.modules
print(f"numpy2 core smoke test passed (numpy {numpy.__version__}, torch {torch.__version__})")
