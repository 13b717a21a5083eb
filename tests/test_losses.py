"""REMUL loss (symtrain.losses.EquivarianceLoss) and GradNorm weighting."""

import pytest
import torch
from models import NBodyMLP, NodeIndexGNN, PointMLP
from torch import nn
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain.actions import Fields, Graph, GraphNodes, Nodes, Points, Vectors
from symtrain.losses import EquivarianceLoss, GradNorm, equivariance_metrics

TOL = 1e-4  # absolute, float32, outputs of order 1


class CentredStretch(nn.Module):
    """``x ↦ c + s·(x − c)`` per point cloud (c the centroid): S_n × E(3) equivariant."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        c = x.mean(1, keepdim=True)
        return c + self.s * (x - c)


class NBodyStep(nn.Module):
    """``(pos, vel, charge) -> (pos + dt·q·vel, q·vel)``: S_n × E(3) equivariant."""

    def __init__(self):
        super().__init__()
        self.dt = nn.Parameter(torch.tensor(0.1))

    def forward(self, pos, vel, charge):
        return pos + self.dt * charge * vel, charge * vel


class MessagePassing(nn.Module):
    """PyG batch -> flat node outputs: ``W x_i + Σ_{j→i} V x_j`` (S_n equivariant)."""

    def __init__(self, f_in, out=2):
        super().__init__()
        self.lin, self.msg = nn.Linear(f_in, out), nn.Linear(f_in, out, bias=False)

    def forward(self, batch):
        src, dst = batch.edge_index
        agg = torch.zeros(batch.num_nodes, batch.x.shape[1]).index_add_(0, dst, batch.x[src])
        return self.lin(batch.x) + self.msg(agg)


def _points_case():
    sym = st.Symmetry("S_n x E3", input=Points(), output=Points())
    return sym, CentredStretch(), PointMLP(5, 3, 3), (torch.randn(6, 5, 3),)


def _nbody_case():
    sym = st.Symmetry("S_n x E3", input=Fields(Points(), Vectors(), Nodes()),
                      output=Fields(Points(), Vectors()))
    x = (torch.randn(6, 5, 3), torch.randn(6, 5, 3), torch.randn(6, 5, 1).sign())
    return sym, NBodyStep(), NBodyMLP(5), (x,)


def _graph_case():
    graphs = [Data(x=torch.randn(n, 3), edge_index=torch.randint(0, n, (2, 2 * n))) for n in (4, 7, 5)]
    sym = st.Symmetry("S_n", input=Graph(positions=()), output=GraphNodes())
    return sym, MessagePassing(3), NodeIndexGNN(3), (Batch.from_data_list(graphs),)


CASES = {"points_SnxE3": _points_case, "nbody_fields": _nbody_case, "pyg_graph": _graph_case}


def _call(model, x):
    return model(*x) if isinstance(x, tuple) else model(x)


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def test_self_consistency_is_zero_for_equivariant_and_positive_otherwise(case):
    sym, good, bad, (x,) = case
    criterion = EquivarianceLoss(sym, target="self", samples=3, generator=torch.Generator().manual_seed(1))
    loss, logs = criterion(good, x)
    assert float(logs["loss"]) < TOL and float(logs["E_prime"]) < TOL and float(logs["E"]) < TOL
    loss, logs = criterion(bad, x)
    assert float(logs["loss"]) > 1e-3 and float(logs["E_prime"]) > 1e-2
    assert float(logs["E"]) <= float(logs["E_prime"]) + 1e-6  # triangle inequality


def test_remul_label_term_for_equivariant_model(case):
    """With isometric actions, an equivariant model's REMUL term equals its task loss:
    zero when it fits the labels, and a non-equivariant model shows a gap."""
    sym, good, bad, (x,) = case
    criterion = EquivarianceLoss(sym, target="label", generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = _call(good, x)
    _, logs = criterion(good, x, y)
    assert float(logs["loss"]) < TOL and float(logs["equivariance_loss"]) < TOL
    noisy = _noisy(y)
    _, logs = criterion(good, x, noisy)
    assert abs(float(logs["equivariance_loss"]) - float(logs["task_loss"])) < TOL * 10
    _, logs = criterion(bad, x, y)
    assert float(logs["equivariance_loss"]) > 1e-3
    assert abs(float(logs["equivariance_loss"]) - float(logs["task_loss"])) > 1e-3


def _noisy(y):
    if isinstance(y, tuple):
        return tuple(v + 0.3 * torch.randn_like(v) for v in y)
    return y + 0.3 * torch.randn_like(y)


def test_gradients_reach_the_model_and_l1_distance(case):
    sym, _, bad, (x,) = case
    with torch.no_grad():
        y = _noisy(_call(bad, x))
    criterion = EquivarianceLoss(sym, distance="l1", alpha=0.5, beta=2.0)
    loss, logs = criterion(bad, x, y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bad.parameters() if p.requires_grad
               and p.dim() > 1)
    expected = 0.5 * logs["task_loss"] + 2.0 * logs["equivariance_loss"]
    assert torch.allclose(logs["loss"], expected)


def test_detached_self_target_changes_gradients_not_values():
    sym, _, bad, (x,) = _points_case()
    grads = []
    for detach in (False, True):
        criterion = EquivarianceLoss(sym, target="self", detach_target=detach,
                                     generator=torch.Generator().manual_seed(4))
        loss, logs = criterion(bad, x)
        bad.zero_grad()
        loss.backward()
        grads.append((float(logs["loss"]), bad.net[1].weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0])
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_metrics_match_their_definitions():
    """E′ is the mean per-element distance ‖f(g·x) − g·f(x)‖ and E the norm of the mean
    difference; with one element they agree."""
    sym = st.Symmetry("SO3", input=Points(), output=Points())
    model = PointMLP(4, 3, 3)
    x = torch.randn(3, 4, 3)
    gen = torch.Generator().manual_seed(3)
    m = equivariance_metrics(model, sym, x, samples=5, generator=gen)
    gen = torch.Generator().manual_seed(3)
    rot = st.groups.SO(3).sample(15, generator=gen)
    with torch.no_grad():
        fgx = model(x.repeat_interleave(5, 0) @ rot.transpose(1, 2)).reshape(3, 5, -1)
        gfx = (model(x).repeat_interleave(5, 0) @ rot.transpose(1, 2)).reshape(3, 5, -1)
    assert m["E_prime"] == pytest.approx(float((fgx - gfx).norm(dim=-1).mean()), rel=1e-5)
    assert m["E"] == pytest.approx(float((fgx.mean(1) - gfx.mean(1)).norm(dim=-1).mean()), rel=1e-5)
    one = EquivarianceLoss(sym, target="self")(model, x)[1]
    assert torch.allclose(one["E"], one["E_prime"])


def test_loss_arguments_are_checked():
    sym = st.Symmetry("SO3", input=Points(), output=Points())
    with pytest.raises(ValueError, match="needs labels"):
        EquivarianceLoss(sym)(CentredStretch(), torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="target must be"):
        EquivarianceLoss(sym, target="labels")
    with pytest.raises(ValueError, match="distance"):
        EquivarianceLoss(sym, distance="l3")
    with pytest.raises(ValueError, match="samples"):
        EquivarianceLoss(sym, samples=0)


def test_gradnorm_downweights_the_task_with_larger_gradients():
    """Two tasks on one shared layer, the first with 10× larger gradients: GradNorm moves
    weight from it to the other, step after step, keeping Σw = 2."""
    torch.manual_seed(0)
    shared, head_a, head_b = nn.Linear(4, 8), nn.Linear(8, 1), nn.Linear(8, 1)
    gradnorm = GradNorm(shared, alpha=1.5, lr=0.05)
    params = [*shared.parameters(), *head_a.parameters(), *head_b.parameters()]
    opt = torch.optim.SGD(params, lr=1e-3)
    x, ta, tb = torch.randn(64, 4), torch.randn(64, 1), torch.randn(64, 1)
    history = []
    for _ in range(6):
        h = torch.tanh(shared(x))
        losses = torch.stack([10 * (head_a(h) - ta).pow(2).mean(), (head_b(h) - tb).pow(2).mean()])
        opt.zero_grad()
        gradnorm(losses).backward()
        opt.step()
        history.append(gradnorm.weights.detach().clone())
    w = torch.stack(history)
    assert torch.allclose(w.sum(1), torch.full((6,), 2.0))
    assert bool((w[1:, 0] < w[:-1, 0]).all()) and w[-1, 0] < 0.9 < 1.1 < w[-1, 1]
    before = gradnorm.weights.detach().clone()
    gradnorm.eval()
    gradnorm(torch.stack([10 * (head_a(torch.tanh(shared(x))) - ta).pow(2).mean(),
                          (head_b(torch.tanh(shared(x))) - tb).pow(2).mean()]))
    assert torch.equal(gradnorm.weights.detach(), before)


def test_gradnorm_inside_the_remul_loss():
    """GradNorm on [task, self-consistency] of a non-equivariant model: the term with the
    larger gradient on the shared layer loses weight over a few steps; the logs report
    the weights used."""
    sym = st.Symmetry("SO3", input=Points(), output=Points())
    model = PointMLP(4, 3, 3)
    first = model.net[1]
    criterion = EquivarianceLoss(sym, target="self", weighting=GradNorm(first, lr=0.05),
                                 generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(32, 4, 3)
    y = 3 * x  # labels far from the initial outputs: the task term dominates
    rot = st.groups.SO(3).sample(32, generator=torch.Generator().manual_seed(5))
    task = nn.functional.mse_loss(model(x), y)
    equiv = nn.functional.mse_loss(model(x @ rot.transpose(1, 2)), model(x) @ rot.transpose(1, 2))
    norms = [torch.autograd.grad(term, first.weight)[0].norm() for term in (task, equiv)]
    assert norms[0] > 1.5 * norms[1]
    logs = []
    for _ in range(5):
        loss, log = criterion(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        logs.append(log)
    assert float(logs[0]["alpha"]) == pytest.approx(1.0) and float(logs[0]["beta"]) == pytest.approx(1.0)
    w = criterion.weighting.weights.detach()
    assert float(w.sum()) == pytest.approx(2.0)
    assert float(logs[-1]["alpha"]) < 0.95 < 1.05 < float(logs[-1]["beta"])
    assert "weighting" in repr(criterion) or "gradnorm" in repr(criterion)
