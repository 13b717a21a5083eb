"""ProbabilisticSymmetrization: exact equivariance for a fixed noise draw transformed
with the input, Monte-Carlo error falling with k, gradients to base and interface
(through the straight-through path), clear errors. The base models are not
equivariant (they fail the same checks)."""

import pytest
import torch
from models import MaskedAdjacencyMLP, PointMLP
from test_symmetrizers import padded_adjacency

import symtrain as st
from symtrain.actions import Adjacency, Fields, Mask, Nodes, Trivial
from symtrain.groups.base import element_repeat
from symtrain.symmetrize.interfaces import PermutationInterface
from symtrain.symmetrize.probabilistic import LearnedCanonicalizer, ProbabilisticSymmetrization
from symtrain.tree import leaves


@torch.no_grad()
def fixed_noise_error(model, x):
    """Max |f(h·x, h·ε) − h·f(x, ε)| / max |h·f(x, ε)| for one noise draw ε of the B·k
    replicated inputs and one random h: the library's exact check (the wrapper's
    ``fixed_draw``, moved with the input by ``Probe.outputs``)."""
    probe = model.symmetry.probe(x, samples=1)
    f_gx, g_fx, estimate = probe.outputs(model)
    assert estimate != "monte-carlo"
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(leaves(f_gx), leaves(g_fx), strict=True))


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def nodes_model(k=4, out_action=None):
    sym = st.Symmetry("S_n", Nodes(), out_action or Nodes())
    base = PointMLP(6, 3, 2)
    return ProbabilisticSymmetrization(base, sym, PermutationInterface(in_features=3, hidden=16),
                                       samples=k, noise_scale=1.0)


def test_fixed_noise_is_exactly_equivariant_and_base_is_not():
    model = nodes_model().eval()
    x = torch.randn(5, 6, 3)
    assert fixed_noise_error(model, x) <= 1e-6
    assert st.equivariance_error(model.base, model.symmetry, x, samples=4).max > 0.05


def test_fixed_noise_padded_adjacency_invariant():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), Trivial())
    model = ProbabilisticSymmetrization(MaskedAdjacencyMLP(7), sym, PermutationInterface(0, hidden=16),
                                        samples=3).eval()
    adj, mask = padded_adjacency()
    assert fixed_noise_error(model, (adj, mask)) <= 1e-5
    assert st.equivariance_error(model.base, sym, (adj, mask), samples=4).max > 0.05


def test_error_of_sample_mean_falls_with_k():
    model = nodes_model().eval()
    x = torch.randn(16, 6, 3)
    errors = {}
    for k in (1, 32):
        model.eval_samples = k
        errors[k] = st.equivariance_error(model, model.symmetry, x, samples=4, exact=False).mean
    assert errors[32] < 0.5 * errors[1], errors


def test_gradients_reach_base_and_interface_through_straight_through():
    model = nodes_model(out_action=Trivial())
    model.base = PointMLP(6, 3, 1, pooled=True)
    y = model(torch.randn(4, 6, 3))
    y.sum().backward()  # no auxiliary loss: interface gradients come from the ST path only
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert float(model.aux_loss().detach()) > 0


def test_straight_through_keeps_forward_values_exact():
    model = nodes_model()
    x = torch.randn(4, 6, 3)
    k = model.num_samples
    ctx = model.symmetry.context(x)
    noise = model.interface.sample_noise(x.repeat_interleave(k, 0), ctx.repeat(k), 1.0)
    y_train = model(x, noise=noise)
    with torch.no_grad():
        y_hard = model(x, noise=noise)
    assert torch.equal(y_train, y_hard)


def test_per_sample_loss_and_canonicalization():
    model = nodes_model(k=3)
    model.loss_on = "per_sample"
    x, y = torch.randn(4, 6, 3), torch.randn(4, 6, 2)
    out = model(x)
    assert out.shape == (12, 6, 2)
    loss = (out - model.repeat_target(y)).pow(2).mean()
    loss.backward()
    assert model.eval()(x).shape == (4, 6, 2)
    canon = ProbabilisticSymmetrization.canonicalization(PointMLP(6, 3, 2), model.symmetry,
                                                         PermutationInterface(3, hidden=16)).eval()
    assert canon.num_samples == 1 and canon.noise_scale == 0
    assert st.equivariance_error(canon, None, torch.randn(4, 6, 3), samples=4).max < 1e-5


def test_learned_canonicalizer_in_canonicalization_wrapper():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    canon = LearnedCanonicalizer(PermutationInterface(3, hidden=16), sym)
    model = st.Canonicalization(PointMLP(6, 3, 2), sym, canonicalizer=canon)
    assert st.equivariance_error(model, sym, torch.randn(4, 6, 3), samples=4).max < 1e-5


def test_bad_inputs():
    sym = st.Symmetry("S_n", Nodes(), Nodes())
    for k in (0, -1, 1.5):
        with pytest.raises(st.SymmetryError, match="samples"):
            ProbabilisticSymmetrization(PointMLP(6, 3, 2), sym, PermutationInterface(3), samples=k)
    with pytest.raises(st.SymmetryError, match="eval_samples"):
        ProbabilisticSymmetrization(PointMLP(6, 3, 2), sym, PermutationInterface(3), eval_samples=0)
    with pytest.raises(st.SymmetryError, match="loss_on"):
        ProbabilisticSymmetrization(PointMLP(6, 3, 2), sym, PermutationInterface(3), loss_on="sum")
    o3 = st.Symmetry("O3", st.actions.Points(), st.actions.Points())
    with pytest.raises(st.SymmetryError, match="interface produces elements of S_n"):
        ProbabilisticSymmetrization(PointMLP(6, 3, 3), o3, PermutationInterface(3))
    model = ProbabilisticSymmetrization(PointMLP(6, 3, 2), sym, PermutationInterface(3, max_nodes=4))
    with pytest.raises(st.SymmetryError, match="max_nodes"):
        model(torch.randn(2, 6, 3))
    model = nodes_model()
    with pytest.raises(st.SymmetryError, match="noise must have shape"):
        model(torch.randn(2, 6, 3), noise=torch.rand(2, 6, 2))


# --- rotations and S_n × E(3) ----------------------------------------------------------
from models import NBodyMLP  # noqa: E402

from symtrain.actions import Points, Vectors  # noqa: E402
from symtrain.symmetrize.interfaces import ProductInterface, RotationInterface  # noqa: E402


def nbody_model(group="S_n x E3", k=4, **options):
    sym = st.Symmetry(group, Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors()))
    itf = ProductInterface(group, in_vectors=2, in_scalars=1, hidden=16, **options)
    return ProbabilisticSymmetrization(NBodyMLP(5), sym, itf, samples=k).double()


def nbody_data(b=4):
    return tuple(t.double() for t in (torch.randn(b, 5, 3) + 2, torch.randn(b, 5, 3), torch.randn(b, 5, 1)))


LPS_OPTIONS = {"noise_on": "vectors", "normalize": True, "dropout": 0.08}


@pytest.mark.parametrize("options", [{}, LPS_OPTIONS], ids=["channel", "lps"])
@pytest.mark.parametrize("group", ["S_n x E3", "S_n x O3"])
def test_nbody_fixed_noise_is_exactly_equivariant_and_base_is_not(group, options):
    model = nbody_model(group, **options).eval()
    x = nbody_data()
    assert fixed_noise_error(model, x) < 1e-9
    assert st.equivariance_error(model.base, model.symmetry, x, samples=4).max > 0.05


def test_rotation_only_lps_and_gradients():
    sym = st.Symmetry("SO3", Points(), Points())
    model = ProbabilisticSymmetrization(PointMLP(6, 3, 3), sym, RotationInterface("SO3", hidden=16),
                                        samples=3).double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    assert fixed_noise_error(model.eval(), x) < 1e-9
    model.train()
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("options", [{}, LPS_OPTIONS], ids=["channel", "lps"])
def test_nbody_gradients_reach_both_parts_of_the_product_interface(options):
    model = nbody_model(**options).train()
    pos, vel = model(*nbody_data())
    (pos.pow(2).sum() + vel.pow(2).sum()).backward()
    itf = model.interface
    assert float(itf.score[0].weight.grad.abs().sum()) > 0      # through the soft permutation
    assert float(itf.frame.weight.grad.abs().sum()) > 0         # through the rotation
    assert float(model.base.net[1].weight.grad.abs().sum()) > 0


def test_nbody_error_of_sample_mean_falls_with_k():
    model = nbody_model("S_n x O3").eval()
    x = nbody_data(16)
    errors = {}
    for k in (1, 32):
        model.eval_samples = k
        errors[k] = st.equivariance_error(model, None, x, samples=4, exact=False).mean
    assert errors[32] < 0.6 * errors[1], errors


# --- images: finite groups through the distribution's straight-through path -------------
from models import CNN  # noqa: E402

from symtrain.actions import Image  # noqa: E402
from symtrain.symmetrize.interfaces import ImageInterface  # noqa: E402


def test_image_lps_fixed_noise_and_straight_through_gradients():
    sym = st.Symmetry("D4", Image(), Image())
    model = ProbabilisticSymmetrization(CNN(2, 2, pooled=False), sym,
                                        ImageInterface("D4", in_channels=2, hidden=2), samples=2)
    x = torch.randn(3, 2, 9, 9)
    assert fixed_noise_error(model.eval(), x) < 1e-5
    assert st.equivariance_error(model.base, sym, x).max > 0.05
    model.train()
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


# --- PyG graphs, per-sample equivariance, learned canonicalization of rotations ---------
from models import NodeIndexGNN  # noqa: E402
from test_symmetrizers import pyg_batch  # noqa: E402

from symtrain.actions import Graph, GraphNodes  # noqa: E402


def test_pyg_graph_lps_is_equivariant_with_fixed_noise_and_trains_the_interface():
    sym = st.Symmetry("S_n", Graph(positions=()), GraphNodes())
    model = ProbabilisticSymmetrization(NodeIndexGNN(3), sym, PermutationInterface(3, hidden=16), samples=3)
    batch = pyg_batch()
    ctx = sym.context(batch)
    k = model.num_samples
    noise = model.interface.sample_noise(sym.input.repeat(batch, k, ctx), ctx.repeat(k), 1.0)
    h = sym.sample(ctx)
    with torch.no_grad():
        y = model(batch, noise=noise)
        h_noise = model.interface.noise_action.act(sym.group, element_repeat(h, k), noise)
        y_h = model(sym.act_input(h, batch, ctx), noise=h_noise)
    assert torch.allclose(y_h, sym.act_output(h, y, ctx), atol=1e-6)
    assert st.equivariance_error(model.base, sym, batch, samples=4).max > 0.05
    model(batch).pow(2).sum().backward()
    assert float(model.interface.head.weight.grad.abs().sum()) > 0


@torch.no_grad()
def test_each_sample_is_exactly_equivariant():
    """loss_on="per_sample" returns the k outputs g_i·f(g_i⁻¹·x) themselves."""
    model = nodes_model(k=3)
    model.loss_on = "per_sample"
    sym, k = model.symmetry, 3
    x = torch.randn(4, 6, 3)
    ctx = sym.context(x)
    noise = model.interface.sample_noise(x.repeat_interleave(k, 0), ctx.repeat(k), 1.0)
    h = element_repeat(sym.sample(ctx), k)
    y = model(x, noise=noise)
    y_h = model(sym.act_input(h[::k], x), noise=model.interface.noise_action.act(sym.group, h, noise))
    assert y.shape == (12, 6, 2)
    assert torch.allclose(y_h, sym.act_output(h, y), atol=1e-6)


def test_learned_rotation_canonicalizer_with_prior():
    sym = st.Symmetry("SO3", Points(), Points())
    canon = LearnedCanonicalizer(RotationInterface("SO3", hidden=16), sym, prior_weight=0.1)
    model = st.Canonicalization(PointMLP(6, 3, 3), sym, canonicalizer=canon).double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    assert fixed_noise_error_canon(model, x) < 1e-9
    y = model(x)
    (y.pow(2).sum() + canon.aux_loss()).backward()
    assert float(canon.aux_loss().detach()) > 0
    assert float(canon.interface.frame.weight.grad.abs().sum()) > 0


def fixed_noise_error_canon(model, x):
    with torch.no_grad():
        h = model.symmetry.sample(model.symmetry.context(x), dtype=x.dtype)
        y, y_h = model(x), model(model.symmetry.act_input(h, x))
        return float((y_h - model.symmetry.act_output(h, y)).abs().max() / y.abs().max())


class FixedInterface(st.symmetrize.interfaces.Interface):
    """Returns given hard permutations and a given (leaf) soft matrix."""

    def __init__(self, perm, soft):
        super().__init__("S_n")
        self.noise_action = Nodes()
        self.perm, self.soft = perm, soft

    def sample_noise(self, x, context, scale, generator=None):
        return torch.zeros(context.batch_size, context.num_nodes, 1)

    def relaxed(self, x, noise, context=None, soft=False):
        return st.symmetrize.interfaces.RelaxedElement(self.perm, (self.soft if soft else None,), torch.zeros(()))


@pytest.mark.parametrize("action", ["nodes", "adjacency"])
def test_straight_through_gradient_equals_matrix_estimator(action):
    """The gradient reaching the soft matrix is that of the base model applied to
    P_stᵀ x (P_stᵀ A P_st for adjacency), P_st = P_hard + S − stopgrad(S)."""
    b, n = 3, 5
    perm = torch.stack([torch.randperm(n) for _ in range(b)])
    soft = torch.softmax(torch.randn(b, n, n), -1).requires_grad_()
    x = torch.randn(b, n, n) if action == "adjacency" else torch.randn(b, n, 2)
    act = Adjacency() if action == "adjacency" else Nodes()
    sym = st.Symmetry("S_n", act, Trivial())
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 1))
    model = ProbabilisticSymmetrization(base, sym, FixedInterface(perm, soft), samples=1)
    model(x).sum().backward()
    ours = soft.grad.clone()
    soft.grad = None
    p_st = (sym.group.matrix(perm) - soft).detach() + soft
    xs = p_st.transpose(1, 2) @ x
    if action == "adjacency":
        xs = xs @ p_st
    base(xs).sum().backward()
    assert torch.allclose(ours, soft.grad, atol=1e-6)
    assert float(ours.abs().sum()) > 0


# --- equivariance_error checks a stochastic wrapper exactly ------------------------------
class PositionBiasedInterface(PermutationInterface):
    """A broken interface: its scores depend on where a node sits in the input, so the
    permutations it draws do not move with the input."""

    def scores(self, x, noise, context=None):
        s, mask = super().scores(x, noise, context)
        return s + torch.arange(s.shape[1], dtype=s.dtype, device=s.device), mask


def test_equivariance_error_tells_a_correct_ps_model_from_a_broken_one_in_eval_mode():
    x = torch.randn(5, 6, 3)
    correct = nodes_model().eval()
    broken = ProbabilisticSymmetrization(PointMLP(6, 3, 2), correct.symmetry,
                                         PositionBiasedInterface(in_features=3, hidden=16),
                                         samples=4, noise_scale=1.0).eval()
    good, bad = st.equivariance_error(correct, None, x), st.equivariance_error(broken, None, x)
    assert (good.estimate, good.exact, bad.estimate) == ("fixed draw", True, "fixed draw")
    assert good.max <= 1e-5 and bad.max > 1e-2, (good, bad)
    # Declaring the noise's action wrongly is caught too: the noise then stays put.
    declared_wrong = nodes_model().eval()
    declared_wrong.interface.noise_action = Trivial()
    assert st.equivariance_error(declared_wrong, None, x).max > 1e-3
    # Comparing independent draws (today's Monte-Carlo estimate) cannot tell them apart.
    mc = st.equivariance_error(correct, None, x, exact=False)
    assert mc.estimate == "monte-carlo" and not mc.exact and "monte-carlo" in repr(mc)
    assert mc.mean > 1e-3 and st.equivariance_error(broken, None, x, exact=False).mean > 1e-3


def test_exact_check_of_padded_and_nbody_ps_models():
    sym = st.Symmetry("S_n", Fields(Adjacency(), Mask()), Trivial())
    model = ProbabilisticSymmetrization(MaskedAdjacencyMLP(7), sym, PermutationInterface(0, hidden=16),
                                        samples=3).eval()
    err = st.equivariance_error(model, None, padded_adjacency())
    assert err.estimate == "fixed draw" and err.max <= 1e-5, err
    assert st.equivariance_error(model.base, sym, padded_adjacency(), samples=4).max > 0.05


def test_noise_free_ps_is_checked_with_its_tie_break_noise_fixed():
    """Learned canonicalization (``noise_scale=0``) still draws tie-breaking noise, so it
    is checked with a fixed draw too."""
    model = ProbabilisticSymmetrization(PointMLP(6, 3, 2), st.Symmetry("S_n", Nodes(), Nodes()),
                                        PermutationInterface(in_features=3, hidden=16), samples=1,
                                        noise_scale=0.0).eval()
    err = st.equivariance_error(model, None, torch.randn(3, 6, 3))
    assert model.stochastic and err.estimate == "fixed draw" and err.max <= 1e-5, err
