"""FLOP counting on a real training step, against hand counts."""

import pytest
import torch
from torch import nn

from symtrain.metrics.flops import count_flops, count_step_flops, training_compute

B, IN, HID, OUT = 8, 7, 11, 5


def _mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_linear_model_matches_hand_count():
    model = nn.Linear(IN, OUT)
    batch = (torch.randn(B, IN), torch.randn(B, OUT))
    flops = count_step_flops(model, batch, _mse)
    # forward: one [B, IN] @ [IN, OUT] product (addmm with the bias) = 2·B·IN·OUT.
    assert flops.forward == 2 * B * IN * OUT
    # backward: the weight gradient [OUT, B] @ [B, IN] = 2·B·IN·OUT; the data needs no
    # gradient, so there is no input-gradient product. The bias gradient is a sum (0).
    assert flops.backward == 2 * B * IN * OUT
    assert flops.total == 4 * B * IN * OUT
    assert flops.by_op == {"aten.addmm": 2 * B * IN * OUT, "aten.mm": 2 * B * IN * OUT}


def test_input_gradient_is_counted_when_needed():
    model = nn.Linear(IN, OUT, bias=False)
    x = torch.randn(B, IN, requires_grad=True)
    flops = count_step_flops(model, (x, torch.randn(B, OUT)), _mse)
    # forward 2·B·IN·OUT; backward weight and input gradients, 2·B·IN·OUT each.
    assert (flops.forward, flops.backward) == (2 * B * IN * OUT, 4 * B * IN * OUT)


def test_two_layer_mlp_and_k_copies():
    model = nn.Sequential(nn.Linear(IN, HID), nn.ReLU(), nn.Linear(HID, OUT))
    batch = (torch.randn(B, IN), torch.randn(B, OUT))
    # layer 1 on data: 2 forward + 2 backward; layer 2 on activations: 2 + 4 (units of 2·B·in·out).
    expected = 4 * B * IN * HID + 6 * B * HID * OUT
    assert count_step_flops(model, batch, _mse).total == expected

    def averaged(model, batch, k=3):  # a method that runs k copies per step
        x, y = batch
        return nn.functional.mse_loss(torch.stack([model(x) for _ in range(k)]).mean(0), y)

    assert count_step_flops(model, batch, averaged).total == 3 * expected


def test_gradients_are_restored_and_loss_must_be_scalar():
    model = nn.Linear(IN, OUT)
    model.weight.grad = torch.ones_like(model.weight)
    count_step_flops(model, (torch.randn(B, IN), torch.randn(B, OUT)), _mse)
    assert torch.equal(model.weight.grad, torch.ones_like(model.weight)) and model.bias.grad is None
    with pytest.raises(ValueError, match="scalar"):
        count_step_flops(model, (torch.randn(B, IN), None), lambda m, b: m(b[0]))


def test_count_flops_and_training_compute():
    a, b = torch.randn(3, 4), torch.randn(4, 6)
    assert count_flops(lambda: a @ b) == 2 * 3 * 4 * 6
    flops = count_step_flops(nn.Linear(IN, OUT), (torch.randn(B, IN), torch.randn(B, OUT)), _mse)
    assert training_compute(flops, 100) == 100 * 4 * B * IN * OUT == training_compute(flops.total, 100)
