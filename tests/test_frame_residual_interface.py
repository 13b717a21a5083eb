"""FrameResidualInterface: the minimal frame times a learned rotation of the canonicalized
input. Exactly equivariant (float32 and float64, random inputs and elements), the minimal
frame itself at initialisation, permutation-invariant in the canonical order; the same
network fed the raw input instead of F(x)⁻¹·x fails the check; wrapped by
ProbabilisticSymmetrization (PS and learned canonicalization) the model is equivariant;
inputs whose minimal frame has several elements get the element the noise chooses, exactly
equivariant (also under the input's own symmetries, where a fixed choice fails)."""

import pytest
import torch
from models import NBodyMLP
from test_interfaces import check_interface, nbody

import symtrain as st
from symtrain.actions import Fields, Nodes, Points, Vectors
from symtrain.errors import DegenerateFrameError
from symtrain.symmetrize.frames import MinimalFrame, frame_elements
from symtrain.symmetrize.frames_permutation import MinimalPermutationFrame, MonteCarloFrameWarning
from symtrain.symmetrize.interfaces import create_interface, default_interface
from symtrain.symmetrize.interfaces.frame_residual import FrameResidualInterface
from symtrain.symmetrize.probabilistic import ProbabilisticSymmetrization

torch.set_num_threads(1)

GROUPS = ["O3", "SO3", "E3", "SE3"]


def nbody_symmetry(group="E3"):
    return st.Symmetry(group, Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))


def trained_like(itf, seed=0):
    """The interface with a random (not zero) last layer, as after training: R ≠ I."""
    gen = torch.Generator().manual_seed(seed)
    last = itf.rho[-1]
    with torch.no_grad():
        last.weight.copy_(0.5 * torch.randn(last.weight.shape, generator=gen, dtype=last.weight.dtype))
        last.bias.copy_(0.5 * torch.randn(last.bias.shape, generator=gen, dtype=last.bias.dtype))
    return itf


def tol(dtype):
    return 1e-9 if dtype == torch.float64 else 1e-4


@pytest.mark.parametrize("order", ["canonical", "given"])
@pytest.mark.parametrize("group", GROUPS)
def test_interface_is_equivariant(group, order, dtype):
    itf = trained_like(FrameResidualInterface(group, in_vectors=2, in_scalars=1, hidden=16, order=order).to(dtype))
    g = check_interface(itf, nbody_symmetry(group), nbody(b=16, dtype=dtype), atol=tol(dtype))
    rot = g[0] if isinstance(g, tuple) else g
    eye = torch.eye(3, dtype=dtype).expand_as(rot)
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-5)
    if group.startswith(("SO", "SE")):
        assert torch.allclose(torch.linalg.det(rot), torch.ones(rot.shape[0], dtype=dtype), atol=1e-5)


class RawInputs(FrameResidualInterface):
    """The non-equivariant variant: h reads the raw input and noise, not F(x)⁻¹·x."""

    def canonical_inputs(self, x, frame, noise, context):
        identity = self.group.identity(noise.shape[0], dtype=noise.dtype)
        return super().canonical_inputs(x, identity, noise, context)


@pytest.mark.parametrize("group", ["O3", "E3"])
def test_the_same_network_on_the_raw_input_is_not_equivariant(group, dtype):
    itf = trained_like(RawInputs(group, in_vectors=2, in_scalars=1, hidden=16).to(dtype))
    with pytest.raises(AssertionError, match="not equivariant"):
        check_interface(itf, nbody_symmetry(group), nbody(b=16, dtype=dtype), atol=1e-3)


@pytest.mark.parametrize("order", ["canonical", "given"])
@pytest.mark.parametrize("group", GROUPS)
def test_at_initialisation_the_interface_is_the_minimal_frame(group, order):
    """Zero last layer: R = I exactly, so g is the library's minimal frame element, bit for bit."""
    sym = nbody_symmetry(group)
    itf = FrameResidualInterface(group, in_vectors=2, in_scalars=1, hidden=16, order=order).double().attach(sym)
    x = nbody(b=8, dtype=torch.float64)
    ctx = sym.context(x)
    g = itf(x, itf.sample_noise(x, ctx, 1.0), ctx)
    if order == "canonical":
        frame_sym = st.Symmetry(f"S_n x {group}", sym.input, sym.input)
        expected, w = frame_elements([MinimalPermutationFrame(), MinimalFrame()], frame_sym, x, frame_sym.context(x))
        expected = expected[1]
    else:
        expected, w = MinimalFrame()(sym.group, sym, x, ctx)
    assert w.shape == (8, 1)
    for a, b in zip(g if isinstance(g, tuple) else (g,), expected if isinstance(expected, tuple) else (expected,),
                    strict=True):
        assert torch.equal(a, b)


def test_canonical_order_is_permutation_invariant_and_given_order_is_not():
    sym = nbody_symmetry("E3")
    perm_sym = st.Symmetry("S_n", sym.input, sym.output)
    x = nbody(b=8, dtype=torch.float64)
    for order, invariant in (("canonical", True), ("given", False)):
        itf = trained_like(FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=16, order=order).double())
        itf.attach(sym)
        ctx = sym.context(x)
        noise = itf.sample_noise(x, ctx, 1.0)
        s = perm_sym.sample(perm_sym.context(x))
        sx = perm_sym.act_input(s, x)
        snoise = itf.noise_action.act(perm_sym.group, s, noise, perm_sym.context(x))
        same = sym.group.allclose(itf(sx, snoise, sym.context(sx)), itf(x, noise, ctx), atol=1e-9)
        assert bool(same.all()) == invariant, order


def wrapped(interface_class, samples, dtype):
    sym = nbody_symmetry("E3")
    torch.manual_seed(0)
    itf = trained_like(interface_class("E3", in_vectors=2, in_scalars=1, hidden=16))
    base = NBodyMLP(5)
    if samples == 1:  # learned canonicalization: no noise, one sample
        model = ProbabilisticSymmetrization.canonicalization(base, sym, itf)
    else:
        model = ProbabilisticSymmetrization(base, sym, itf, samples=samples, noise_scale=1.0)
    return model.to(dtype).eval()


@pytest.mark.parametrize("samples", [1, 3])
def test_wrapped_model_is_equivariant_and_base_and_raw_input_variant_are_not(samples, dtype):
    model = wrapped(FrameResidualInterface, samples, dtype)
    x = nbody(b=8, dtype=dtype)
    err = st.equivariance_error(model, None, x)
    assert err.estimate == "fixed draw" and err.max <= (1e-10 if dtype == torch.float64 else 1e-4), err
    assert st.equivariance_error(model.base, model.symmetry, x, samples=4).max > 0.05
    raw = st.equivariance_error(wrapped(RawInputs, samples, dtype), None, x)
    assert raw.estimate == "fixed draw" and raw.max > 1e-2, raw


class PerParticle(torch.nn.Module):
    """A permutation-equivariant (not E(3)-equivariant) base: one MLP per particle."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(7, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))

    def forward(self, pos, vel, charge):
        out = self.net(torch.cat([pos, vel, charge], -1))
        return pos + out[..., :3], out[..., 3:]


@pytest.mark.parametrize("samples", [1, 3])
def test_e3_wrapper_of_a_permutation_equivariant_base_is_exact_against_sn_x_e3(samples, dtype):
    """As in the n-body recipes: the interface for E(3) only, the base permutation-
    equivariant; in the canonical order the model is S_n x E(3)-equivariant (checked with
    the fixed draw moved by the whole group), in the given order it is not."""
    full = nbody_symmetry("S_n x E3")
    x = nbody(b=8, dtype=dtype)
    for order, exact in (("canonical", True), ("given", False)):
        torch.manual_seed(0)
        itf = trained_like(FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=16, order=order))
        model = ProbabilisticSymmetrization(PerParticle(), nbody_symmetry("E3"), itf, samples=samples,
                                           noise_scale=0.0 if samples == 1 else 1.0).to(dtype).eval()
        err = st.equivariance_error(model, full, x)
        assert err.estimate == "fixed draw", err
        assert (err.max <= (1e-10 if dtype == torch.float64 else 1e-4)) == exact, (order, err)


def test_gradients_reach_the_residual_network():
    sym = nbody_symmetry("E3")
    itf = FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=16)
    model = ProbabilisticSymmetrization(NBodyMLP(5), sym, itf, samples=2, noise_scale=1.0).train()
    pos, vel = model(*nbody(b=4))
    (pos.square().sum() + vel.square().sum()).backward()
    # at zero initialisation only the last layer's gradient is non-zero (Δ enters linearly)
    assert itf.rho[-1].weight.grad is not None and float(itf.rho[-1].weight.grad.abs().sum()) > 0


def test_tied_nodes_are_exact_and_the_given_order_handles_them(dtype):
    """Two identical nodes: the minimal S_n frame has two elements of the same rotation,
    so the noise's choice is that rotation, exactly equivariant; order='given' reads the
    rows as they are, and is exact even on a degenerate (collinear) cloud."""
    sym = nbody_symmetry("E3")
    pos, vel, charge = nbody(b=3, dtype=dtype)
    pos[1, 1], vel[1, 1], charge[1, 1] = pos[1, 0], vel[1, 0], charge[1, 0]
    x = (pos, vel, charge)
    itf = trained_like(FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=16).to(dtype))
    check_interface(itf, sym, x, atol=tol(dtype))
    given = trained_like(FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=16, order="given").to(dtype))
    check_interface(given, sym, x, atol=tol(dtype))
    line = torch.linspace(-1, 1, 5, dtype=dtype)[None, :, None] * torch.tensor([1.0, 2, 3], dtype=dtype)
    collinear = (line.expand(3, 5, 3) + 1, torch.zeros(3, 5, 3, dtype=dtype), charge)
    check_interface(given, sym, collinear, atol=tol(dtype))


def pentagon(b, dtype):
    """Regular pentagons in the xy plane about the origin, at rest, equal charges: the
    Gram graph cannot tell the nodes apart (a 10-element S_n frame of distinct rotations)."""
    angle = torch.arange(5, dtype=dtype) * (2 * torch.pi / 5)
    ring = torch.stack([angle.cos(), angle.sin(), torch.zeros_like(angle)], -1)
    return (ring.expand(b, 5, 3).clone(), torch.zeros(b, 5, 3, dtype=dtype), torch.ones(b, 5, 1, dtype=dtype))


class FirstElement(FrameResidualInterface):
    """The non-equivariant choice: always the frame's first element, whatever the noise."""

    def _choose(self, x, rotations, weights, noise, context):
        return super()._choose(x, rotations, weights, torch.zeros_like(noise), context)


@pytest.mark.parametrize("group", ["O3", "SO3", "E3", "SE3"])
def test_a_symmetric_input_gets_the_element_its_noise_chooses_exactly_equivariant(group, dtype):
    """A pentagon: g(x, ε) is one of its frame's elements, chosen by the noise (several
    distinct ones over draws); equivariant for random group elements and for the
    pentagon's own symmetry (π, h) with π·h·x = x: g(x, π·h·ε) = h·g(x, ε). Choosing the
    first element instead passes the random-element check (the frame's order moves with
    the input) but fails the stabiliser one, as every deterministic choice must."""
    sym = nbody_symmetry(group)
    x = pentagon(4, dtype)
    for cls, equivariant in ((FrameResidualInterface, True), (FirstElement, False)):
        itf = cls(group, in_vectors=2, in_scalars=1, hidden=16).to(dtype).attach(sym)  # zero-init: g = F_j(x)
        ctx = sym.context(x)
        gen = torch.Generator().manual_seed(1)
        noise = torch.randn(4, 5, 3, generator=gen, dtype=dtype)
        g = itf(x, noise, ctx)
        frame_sym = st.Symmetry(f"S_n x {group}", sym.input, sym.input)
        elements, w = frame_elements([MinimalPermutationFrame(), MinimalFrame()], frame_sym, x, frame_sym.context(x))
        assert w.shape[1] == 10 and bool((w > 0).all())
        rots = sym.group.rotation(elements[1]).reshape(4, 10, 3, 3)
        hit = (sym.group.rotation(g)[:, None] - rots).abs().amax((-1, -2)) < 1e-12
        assert bool((hit.sum(1) == 1).all())  # one of the frame's (distinct) elements
        chosen = {int(i) for i in hit.float().argmax(1)}
        assert len(chosen) > 1 if equivariant else chosen == {0}
        check_interface(itf, sym, x, atol=tol(dtype))  # random h: passes for both
        # the pentagon's symmetry: rotation by 72° about z, then relabel the nodes back
        turn = torch.tensor(2 * torch.pi / 5, dtype=dtype)
        c, si = torch.cos(turn), torch.sin(turn)
        rot = torch.tensor([[c, -si, 0], [si, c, 0], [0, 0, 1]], dtype=dtype).expand(4, 3, 3)
        h = sym.group.from_parts(rot) if sym.group.has_translations else rot
        hx = sym.act_input(h, x, ctx)
        perm = (hx[0][0][None, :] - x[0][0][:, None]).norm(dim=-1).argmin(1)  # (h·x)[perm] = x
        assert torch.allclose(hx[0][:, perm], x[0], atol=1e-6)
        h_noise = itf.noise_action.act(sym.group, h, noise, ctx)[:, perm]
        same = sym.group.allclose(itf(x, h_noise, ctx), sym.group.compose(h, g), atol=tol(dtype))
        assert bool(same.all()) == equivariant, cls.__name__


def test_a_frame_too_large_to_enumerate_is_refused():
    """Six identical nodes: 720 automorphisms, past a max_elements of 100, so the S_n frame
    is sampled (not a function of the input) and the interface says so."""
    sym = nbody_symmetry("E3")
    itf = FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=8).double().attach(sym)
    itf.frames[0] = MinimalPermutationFrame(max_elements=100, samples=8)
    x = (torch.ones(2, 6, 3, dtype=torch.float64), torch.zeros(2, 6, 3, dtype=torch.float64),
         torch.ones(2, 6, 1, dtype=torch.float64))
    x[0][0] = torch.randn(6, 3, dtype=torch.float64)
    with pytest.warns(MonteCarloFrameWarning), \
            pytest.raises(DegenerateFrameError, match=r"inputs \[1\] are larger than.*max_elements=100"):
        itf(x, torch.randn(2, 6, 3, dtype=torch.float64), sym.context(x))


def test_zero_noise_on_a_symmetric_input_is_refused_not_a_silent_fixed_choice():
    """Learned canonicalization (no noise) of a pentagon: nothing to choose with, and the
    first element would not be invariant to the pentagon's relabelling; a clear error
    names the input. Generic inputs in the same batch are fine alone."""
    sym = nbody_symmetry("E3")
    itf = FrameResidualInterface("E3", in_vectors=2, in_scalars=1, hidden=8).double().attach(sym)
    sym_x, generic = pentagon(1, torch.float64), nbody(b=1, dtype=torch.float64)
    x = tuple(torch.cat([a, b]) for a, b in zip(generic, sym_x, strict=True))
    with pytest.raises(DegenerateFrameError, match=r"inputs \[1\] .*no noise.*noise_scale > 0"):
        itf(x, torch.zeros(2, 5, 3, dtype=torch.float64), sym.context(x))
    model = ProbabilisticSymmetrization.canonicalization(NBodyMLP(5), sym, itf).double()
    with pytest.raises(DegenerateFrameError, match="no noise"):
        model(*x)
    model(*generic)


def test_registry_arguments_and_errors():
    sym = nbody_symmetry("E3")
    x = nbody()
    itf = create_interface("frame_residual", sym, example=x, hidden=8)
    assert isinstance(itf, FrameResidualInterface) and (itf.in_vectors, itf.in_scalars) == (2, 1)
    assert create_interface({"name": "FrameResidualInterface"}, sym, example=x).order == "canonical"
    assert default_interface(sym.group) == "rotation"  # the default interface is unchanged
    assert "order='canonical'" in repr(itf)
    with pytest.raises(st.SymmetryError, match="is for O\\(d\\), SO\\(d\\), E\\(d\\), SE\\(d\\)"):
        FrameResidualInterface("S_n")
    with pytest.raises(ValueError, match="order must be one of"):
        FrameResidualInterface("E3", order="sorted")
    bad = FrameResidualInterface("E3", in_vectors=1, in_scalars=1).attach(sym)
    with pytest.raises(st.SymmetryError, match="in_vectors=1"):
        bad(x, torch.zeros(4, 5, 3), sym.context(x))
    with pytest.raises(ValueError, match="does not know how to read its input"):
        FrameResidualInterface("E3").minimal_frame(x)


def test_an_opt_in_interface_is_never_a_default_whatever_the_registration_order():
    """default_interface skips classes that are not default candidates: frame_residual
    registered first (as a file sorting before rotation.py would be) is still not picked."""
    from symtrain.groups import create_group
    from symtrain.symmetrize.interfaces import registry

    entries = dict(registry.INTERFACES.items())
    assert registry.default_interface(create_group("E3")) == "rotation"
    for name in ("frame_residual", "rotation"):
        assert name in entries
    cls = entries["frame_residual"]
    assert cls.supports(create_group("E3")) and not cls.default_candidate
