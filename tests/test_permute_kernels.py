"""The index kernels behind every node permutation, against a per-graph loop: any dtype,
with and without trailing feature axes, on non-contiguous inputs, and their gradient."""

import pytest
import torch

from symtrain.actions.base import permute_axis, take_rows
from symtrain.actions.nodes import permute_square


def loop_square(x, p):
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        out[b][p[b][:, None], p[b][None, :]] = x[b]  # entry (i, j) moves to (p_i, p_j)
    return out


def loop_axis(x, p):
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        out[b][p[b]] = x[b]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.bool])
@pytest.mark.parametrize("trailing", [(), (3,), (2, 5)])
def test_permutations_match_a_loop(dtype, trailing):
    torch.manual_seed(0)
    b, n = 4, 7
    p = torch.stack([torch.randperm(n) for _ in range(b)])
    x = (torch.randn(b, n, n, *trailing) * 10).to(dtype)
    assert torch.equal(permute_square(x, p), loop_square(x, p))
    nodes = (torch.randn(b, n, *trailing) * 10).to(dtype)
    assert torch.equal(permute_axis(nodes, p, 1), loop_axis(nodes, p))
    # non-contiguous inputs (a transposed view) give the same answer
    xt = x.transpose(1, 2)
    assert torch.equal(permute_square(xt, p), loop_square(xt.contiguous(), p))


def test_take_rows_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 5, (3, 4))
    expected = torch.stack([x[b, index[b]] for b in range(3)])
    assert torch.equal(take_rows(x, index), expected)
    assert torch.autograd.gradcheck(lambda t: take_rows(t, index), (x,))
    # a wrong offset (rows taken from the first graph only) would be caught
    assert not torch.equal(x.reshape(15, 2)[index.reshape(-1)].reshape(3, 4, 2), expected)


def test_inverse_memo_hits_only_the_same_unchanged_tensor():
    """``invert_permutation`` remembers its last results by tensor identity: the inverse of
    an inverse is the original object, free; a modified or merely equal tensor is inverted
    afresh, so the memo can never return a stale inverse."""
    from symtrain.groups.permutation import TensorMemo, invert_permutation

    torch.manual_seed(0)
    p = torch.stack([torch.randperm(6) for _ in range(3)])
    inv = invert_permutation(p)
    assert torch.equal(inv.gather(1, p), torch.arange(6).expand(3, 6))
    assert invert_permutation(inv) is p and invert_permutation(p) is inv
    same_values = p.clone()
    assert invert_permutation(same_values) is not inv
    assert torch.equal(invert_permutation(same_values), inv)
    p[0] = p[0].flip(0)  # in place: the remembered inverse is stale, never returned
    fresh = invert_permutation(p)
    assert fresh is not inv and torch.equal(fresh.gather(1, p), torch.arange(6).expand(3, 6))
    inv2 = invert_permutation(p)
    inv2[1] = torch.arange(6)  # the remembered result changed in place: recomputed too
    assert torch.equal(invert_permutation(p).gather(1, p), torch.arange(6).expand(3, 6))
    with torch.inference_mode():  # inference tensors keep no version counter: no memo, no error
        q = torch.stack([torch.randperm(6) for _ in range(3)])
        assert torch.equal(invert_permutation(q).gather(1, q), torch.arange(6).expand(3, 6))
    memo = TensorMemo(size=2)
    keys = [torch.zeros(1) for _ in range(3)]
    for k in keys:
        memo.put(k, k + 1)
    assert memo.get(keys[0]) is None and memo.get(keys[2]) is not None  # bounded: oldest dropped
