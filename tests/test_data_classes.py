"""Empty batches, integer data, half precision, dtype mismatches and non-finite base
outputs, for every registered symmetrizer on the catalogue of test_symmetrizers.py, and
for the metrics, the losses and augmentation (the reliability issue's classes 2, 3, 7)."""

from __future__ import annotations

import pytest
import torch
from test_symmetrizers import CASES, NAMES, base_and_input, build, call, pair_id, run
from torch import nn

import symtrain as st
from symtrain.errors import DTypeError, NonFiniteError, ShapeError
from symtrain.tree import leaves, tree_map

CONTINUOUS = [c for c in CASES if any(f.is_continuous for f in c.symmetry.group.factors)]
TENSOR_CASES = [c for c in CASES if "pyg" not in c.name and "padded" not in c.name]


def first(x, n):
    return tree_map(lambda t: t[:n] if isinstance(t, torch.Tensor) else t, x)


def integer(x):
    return tree_map(lambda t: (t * 3).round().long() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", TENSOR_CASES, ids=pair_id)
def test_an_empty_batch_gives_the_base_models_empty_output(name, case):
    base, x = base_and_input(case)
    wrapped = build(name, "default", case, base, x).eval()
    empty = first(x, 0)
    with torch.no_grad():
        out = run(wrapped, empty)
        expected = call(base, empty)
    assert [t.shape for t in leaves(out)] == [t.shape for t in leaves(expected)]
    assert all(t.shape[0] == 0 for t in leaves(out))


@pytest.mark.parametrize("case", TENSOR_CASES[:3] + CONTINUOUS[:2], ids=pair_id)
def test_metrics_losses_and_augmentation_name_an_empty_batch(case):
    base, x = base_and_input(case)
    empty = first(x, 0)
    with pytest.raises(ShapeError, match="empty batch"):
        st.equivariance_error(base, case.symmetry, empty)
    with pytest.raises(ShapeError, match="empty batch"):
        st.Augment(case.symmetry).probe(empty)
    with pytest.raises(ShapeError, match="empty batch"):
        st.EquivarianceLoss(case.symmetry, target="self")(base, empty)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", CONTINUOUS, ids=pair_id)
def test_integer_coordinates_under_a_continuous_group_are_named(name, case):
    base, x = base_and_input(case)
    wrapped = build(name, "default", case, base, x)
    with pytest.raises(DTypeError, match=r"torch.int64.*floating-point"):
        call(wrapped, integer(x))


@pytest.mark.parametrize("case", CONTINUOUS, ids=pair_id)
def test_integer_coordinates_are_named_by_metrics_losses_and_augmentation(case):
    base, x = base_and_input(case)
    xi = integer(x)
    with pytest.raises(DTypeError, match="floating-point"):
        st.equivariance_error(base, case.symmetry, xi)
    with pytest.raises(DTypeError, match="floating-point"):
        st.Augment(case.symmetry).probe(xi)
    with pytest.raises(DTypeError, match="floating-point"):
        st.EquivarianceLoss(case.symmetry, target="self")(base, xi)


def test_integer_data_under_a_finite_group_is_permuted_exactly():
    sym = st.Symmetry("S_n", input="nodes", output="nodes")
    x = torch.randint(0, 9, (3, 5, 2))
    out = st.GroupAveraging(nn.Identity(), sym, samples=4)(x.float())
    assert torch.equal(out, x.float())
    st.Symmetry("C4", input="image", output="image").check_input(torch.randint(0, 255, (2, 1, 4, 4)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", [c for c in CONTINUOUS if c.name in ("SO3-points", "E3-points")], ids=pair_id)
def test_half_precision_batches_run_on_cpu_and_stay_half(name, case, dtype):
    """Group elements (QR, det: no half kernels on CPU) and interfaces (float32
    weights) are computed in float32 and cast to the data's dtype."""
    base, x = base_and_input(case)
    wrapped = build(name, "default", case, base, x).eval()
    wrapped.base = base.to(dtype)
    with torch.no_grad():
        out = run(wrapped, x.to(dtype))
    assert out.dtype == dtype and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["frame_averaging", "canonicalization"])
def test_half_precision_frames_keep_the_whole_cloud(name, dtype):
    """With an identity base an exact frame method returns its input: in half precision
    too (a rank tolerance of 1000 · eps of float16 called every cloud degenerate and
    projected it away)."""
    sym = st.Symmetry("SO3", input="points", output="points")
    x = torch.randn(4, 10, 3).to(dtype)
    out = st.create_symmetrizer(name, nn.Identity(), sym)(x)
    assert out.dtype == dtype
    assert torch.allclose(out.float(), x.float(), atol=0.05, rtol=0.02)


def test_float64_data_through_a_float32_interface_is_named():
    sym = st.Symmetry("SO3", input="points", output="points")
    wrapped = st.ProbabilisticSymmetrization(nn.Identity(), sym, samples=2)
    with pytest.raises(DTypeError, match=r"input is torch.float64 but the interface network's parameters are "
                                         r"torch.float32.*\.to\(torch.float64\)"):
        wrapped(torch.randn(2, 5, 3, dtype=torch.float64))
    assert wrapped.double()(torch.randn(2, 5, 3, dtype=torch.float64)).dtype == torch.float64


def test_data_on_another_device_than_the_interface_is_named():
    sym = st.Symmetry("SO3", input="points", output="points")
    wrapped = st.ProbabilisticSymmetrization(nn.Identity(), sym, samples=2).to("meta")
    with pytest.raises(DTypeError, match="input is on cpu but the interface network's parameters are on meta"):
        wrapped(torch.randn(2, 5, 3))


class NaNModel(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *x):
        return tree_map(lambda t: t * float("nan") if t.is_floating_point() else t, self.inner(*x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", TENSOR_CASES, ids=pair_id)
def test_a_base_model_returning_nan_is_named(name, case):
    """The README's promise: the wrappers check the base model's output."""
    base, x = base_and_input(case)
    wrapped = build(name, "default", case, NaNModel(base), x)
    with pytest.raises(NonFiniteError, match="the base model's output"):
        run(wrapped, x)
