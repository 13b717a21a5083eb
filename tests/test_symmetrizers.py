"""Every registered symmetrizer × a catalogue of (symmetry, base model, input) cases, in
float32 and float64: the wrapped model is exactly equivariant on random inputs and group
elements (stochastic wrappers with their randomness transformed with the input, see
``Symmetrizer.fixed_draw``), the same check fails for the base model, gradients reach the
base model's parameters, and the Monte-Carlo error of stochastic wrappers falls as they
draw more samples.

A new symmetrizer is tested by registering it: the pairs come from
``symtrain.list_symmetrizers()`` (this module registers one of its own below), its options
from its registered signature, and pairs it does not support are skipped with the reason.
"""

from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch
from models import CNN, MaskedAdjacencyMLP, NBodyMLP, NodeIndexGNN, PointMLP
from torch import nn
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain.actions import Adjacency, Fields, Graph, GraphNodes, Image, Mask, Nodes, Points, Trivial, Vectors
from symtrain.symmetrize import Symmetrizer, register_symmetrizer, symmetrizer_options
from symtrain.symmetrize.averaging import SampledElements
from symtrain.symmetrize.base import uniform_weights
from symtrain.tree import leaves, reference_tensor, tree_map

try:  # the registry's own answer, where it has one
    from symtrain.symmetrize import symmetrizer_supports
except ImportError:  # pragma: no cover - until every symmetrizer declares supports()
    symmetrizer_supports = None


# --- a symmetrizer registered by a test module is tested like the library's -------------
@register_symmetrizer("test_sampled_averaging")
class SampledAveraging(Symmetrizer):
    """Monte-Carlo averaging over ``samples`` random elements, written as a user would
    (stochastic, with the fixed draw that makes the exact check possible): the catalogue
    below picks it up from the registry without being edited."""

    def __init__(self, base: nn.Module, symmetry: st.Symmetry, samples: int = 2):
        super().__init__(base, symmetry)
        self.samples = samples

    @property
    def stochastic(self) -> bool:
        return True

    def weighted_elements(self, x, context):
        ref = reference_tensor(x)
        g = self.symmetry.sample(context, self.samples, device=ref.device, dtype=ref.dtype)
        return g, uniform_weights(context.batch_size, self.samples, ref)

    def fixed_draw(self, x, context):
        return SampledElements(self, *self.weighted_elements(x, context))


# --- the catalogue -----------------------------------------------------------------------
def padded_adjacency(b=4, n=7):
    sizes = torch.tensor([7, 5, 6, 7])[:b]
    mask = torch.arange(n)[None] < sizes[:, None]
    adj = torch.rand(b, n, n)
    adj = (adj + adj.transpose(1, 2)) * (mask[:, :, None] & mask[:, None, :])
    return adj, mask


def pyg_batch():
    graphs = []
    for n in (5, 7, 6):
        e = torch.randint(n, (2, 2 * n))
        graphs.append(Data(x=torch.randn(n, 3), edge_index=e))
    return Batch.from_data_list(graphs)


@dataclass
class Case:
    name: str
    symmetry: st.Symmetry
    model: Callable[[], nn.Module]
    data: Callable[[], Any]


CASES = [
    Case("D4-image-invariant", st.Symmetry("D4", Image(), Trivial()), lambda: CNN(), lambda: torch.randn(4, 3, 9, 9)),
    Case("C4-image-equivariant", st.Symmetry("C4", Image(), Image()), lambda: CNN(3, 3, pooled=False),
         lambda: torch.randn(4, 3, 8, 8)),
    Case("SO3-points", st.Symmetry("SO3", Points(), Points()), lambda: PointMLP(10, 3, 3),
         lambda: torch.randn(4, 10, 3)),
    Case("O3-points-invariant", st.Symmetry("O3", Points(), Trivial()), lambda: PointMLP(10, 3, 4, pooled=True),
         lambda: torch.randn(4, 10, 3)),
    Case("E3-points", st.Symmetry("E3", Points(), Points()), lambda: PointMLP(10, 3, 3),
         lambda: torch.randn(4, 10, 3) + 3),
    Case("SE2-points", st.Symmetry("SE2", Points(), Vectors()), lambda: PointMLP(8, 2, 2),
         lambda: torch.randn(4, 8, 2)),
    Case("S5-nodes", st.Symmetry("S_n", Nodes(), Nodes()), lambda: PointMLP(5, 4, 2), lambda: torch.randn(4, 5, 4)),
    Case("Sn-padded-adjacency", st.Symmetry("S_n", Fields(Adjacency(), Mask()), Trivial()),
         lambda: MaskedAdjacencyMLP(7),
         padded_adjacency),
    Case("Sn-x-E3-nbody", st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors())),
         lambda: NBodyMLP(5), lambda: (torch.randn(4, 5, 3), torch.randn(4, 5, 3), torch.randn(4, 5, 1))),
    Case("Sn-pyg-nodes", st.Symmetry("S_n", Graph(positions=()), GraphNodes()), lambda: NodeIndexGNN(3), pyg_batch),
]

NAMES = st.list_symmetrizers()
#: Options the tests may set, when a symmetrizer takes them: a sample count (for a method
#: that is exact by default, a second variant that samples), an example input.
SAMPLES = 3


def variants(name: str) -> list[str]:
    """``"default"`` (the registered defaults), plus ``"sampled"`` when the method takes a
    sample count that it does not use by default (exact averaging → Monte-Carlo)."""
    option = symmetrizer_options(name).get("samples")
    return ["default", "sampled"] if option is not None and option.default is None else ["default"]


PAIRS = [(name, variant, case) for name in NAMES for variant in variants(name) for case in CASES]


def pair_id(value):
    return getattr(value, "name", value)


def call(model, x):
    return model(*x) if isinstance(x, tuple) else model(x)


def to_dtype(x, dtype):
    return tree_map(lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, x)


def base_and_input(case: Case, dtype=torch.float32):
    torch.manual_seed(1)
    model, x = case.model(), case.data()
    call(model, x)  # initialise lazy layers
    return model.to(dtype), to_dtype(x, dtype)


def build(name: str, variant: str, case: Case, base: nn.Module, x: Any, samples: int | None = None) -> nn.Module:
    """``base`` wrapped by the registered method ``name``, its options from the registry's
    defaults and the case (an example input for methods that read widths off one); pairs
    the method does not support are skipped with its reason."""
    group = case.symmetry.group
    options = symmetrizer_options(name)
    kwargs: dict[str, Any] = {}
    if "example" in options:
        kwargs["example"] = x
    if samples is not None or variant == "sampled":
        kwargs["samples"] = samples or SAMPLES
    if symmetrizer_supports is not None:
        settings = {k: v for k, v in kwargs.items() if k != "example"}
        try:  # the answer for the options the method is built with, where the registry takes them
            reason = symmetrizer_supports(name, group, **settings)
        except TypeError:
            reason = symmetrizer_supports(name, group)
        if reason is not None:
            pytest.skip(f"{name} does not support {group}: {reason}")
    try:
        return st.create_symmetrizer(name, base, case.symmetry, **kwargs).to(reference_tensor(x).dtype)
    except st.SymmetryError as err:  # UnsupportedGroupError, or a method needing samples here
        pytest.skip(f"{name} ({variant}) on {case.name}: {err}")


def run(model, x):
    """``model(x)``, skipping when the method reports the data unsupported (an
    ``UnsupportedGroupError``, or the plain ``ValueError`` of a group that cannot list its
    elements for this batch, e.g. S_n on padded graphs); symtrain's other errors fail."""
    try:
        return call(model, x)
    except st.UnsupportedGroupError as err:
        pytest.skip(str(err))
    except ValueError as err:
        if isinstance(err, st.SymmetryError):
            raise
        pytest.skip(str(err))


def tolerance(wrapped: nn.Module, base: nn.Module, dtype) -> float:
    """Exact up to rounding: 1e-10 in float64; in float32 1e-5, or 1e-4 when the wrapper
    learns its elements with a network of its own (an interface's Gram–Schmidt frame adds
    float32 rounding of its own)."""
    if dtype == torch.float64:
        return 1e-10
    learned = {id(p) for p in wrapped.parameters()} - {id(p) for p in base.parameters()}
    return 1e-4 if learned else 1e-5


def test_catalogue_covers_every_method_and_case():
    assert "test_sampled_averaging" in NAMES  # registered above, collected without editing the list
    assert {"group_averaging", "frame_averaging", "canonicalization", "ps"} <= set(NAMES)


@pytest.mark.parametrize("case", CASES, ids=pair_id)
def test_base_model_is_not_equivariant(case):
    model, x = base_and_input(case)
    assert st.equivariance_error(model, case.symmetry, x, samples=8).mean > 1e-2


@pytest.mark.parametrize("name,variant,case", PAIRS, ids=pair_id)
def test_wrapped_model_is_exactly_equivariant(name, variant, case, dtype):
    base, x = base_and_input(case, dtype)
    wrapped = build(name, variant, case, base, x).eval()
    with torch.no_grad():
        run(wrapped, x)
    err = st.equivariance_error(wrapped, case.symmetry, x, samples=8)
    if not err.exact:
        pytest.skip(f"{name} is stochastic without a fixed draw: only its Monte-Carlo error is tested")
    assert err.max <= tolerance(wrapped, base, dtype), err
    assert st.equivariance_error(base, case.symmetry, x, samples=8).max > 1e-2  # same check fails unwrapped


@pytest.mark.parametrize("name,variant,case", PAIRS, ids=pair_id)
def test_gradients_reach_base_parameters(name, variant, case, dtype):
    base, x = base_and_input(case, dtype)
    wrapped = build(name, variant, case, base, x).train()
    out = run(wrapped, x)
    sum(torch.sin(y).sum() for y in leaves(out) if isinstance(y, torch.Tensor)).backward()
    params = dict(base.named_parameters())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params.values())
    # Every weight matrix gets a signal. (An output bias may legitimately get none: averaging
    # g·b over all sign flips of a PCA frame is 0, so the wrapped model does not depend on it.)
    for pname, p in params.items():
        if p.dim() >= 2 and "index" not in pname:
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name,case", [(n, c) for n in NAMES if "samples" in symmetrizer_options(n) for c in CASES],
                         ids=pair_id)
def test_monte_carlo_error_falls_with_samples(name, case):
    """In expectation: comparing independent draws (``exact=False``), the error of a
    stochastic wrapper falls as it averages over more samples."""
    base, x = base_and_input(case)
    errs = []
    for k in (2, 16, 256):  # 4 elements per input: B·4·k copies, affordable for PS too
        wrapped = build(name, "sampled", case, base, x, samples=k).eval()
        with torch.no_grad():
            run(wrapped, x)
        if not wrapped.stochastic:
            pytest.skip(f"{name} draws nothing at random on {case.name}")
        errs.append(st.equivariance_error(wrapped, case.symmetry, x, samples=4, exact=False).mean)
    assert errs[2] < 0.5 * errs[0] and errs[2] < errs[1], errs


@pytest.mark.parametrize("name,variant,case", PAIRS, ids=pair_id)
def test_wrapped_model_runs_under_inference_mode(name, variant, case):
    """``torch.inference_mode`` (what serving code and many eval loops use) gives the same
    output as ``no_grad``: inference tensors have no version counter, so nothing in a
    wrapper may read one (a memo keyed on ``_version`` raised there)."""
    base, x = base_and_input(case)
    wrapped = build(name, variant, case, base, x).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        ref = run(wrapped, x)
    torch.manual_seed(1)
    with torch.inference_mode():
        out = run(wrapped, x)
    for a, b in zip(leaves(ref), leaves(out), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.isfinite(b).all() if a.is_floating_point() else True
            if not getattr(wrapped, "stochastic", False):
                assert torch.allclose(a, b, atol=1e-6), name
