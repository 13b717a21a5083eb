"""symtrain.tree: one walker over nested inputs, PyG graphs included."""

import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Batch, Data

import symtrain as st
from symtrain import tree


def graphs():
    return Batch.from_data_list([Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]])),
                                 Data(x=torch.randn(2, 2), edge_index=torch.tensor([[0], [1]]))])


def test_import_does_not_load_pyg():
    code = "import sys, symtrain, symtrain.tree; print('torch_geometric' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_walk_paths_and_insertion_order():
    x = {"b": torch.ones(1), "a": [torch.zeros(2), None, 3]}
    assert [p for p, _ in tree.walk(x)] == ["['b']", "['a'][0]", "['a'][2]"]
    assert [p for p, _ in tree.walk((graphs(), {"pos": torch.ones(1)}))] == \
        ["[0].x", "[0].edge_index", "[0].batch", "[0].ptr", "[1]['pos']"]


def test_batch_round_trips_through_map():
    b = graphs()
    c = tree.tree_map(lambda t: 2 * t if t.is_floating_point() else t, b)
    assert type(c) is type(b) and c is not b and c.num_graphs == 2
    assert torch.equal(c.ptr, b.ptr) and torch.equal(c.batch, b.batch) and torch.equal(c.x, 2 * b.x)
    assert torch.equal(c.get_example(1).x, 2 * b.get_example(1).x)
    assert torch.equal(tree.tree_map(torch.add, b, c).x, 3 * b.x)
    assert tree.is_single_graph(b.get_example(0)) and not tree.is_single_graph(b)


def test_reference_tensor_and_its_errors():
    ints, floats = torch.arange(3), torch.ones(2, dtype=torch.float64)
    assert st.reference_tensor((ints, {"f": floats})) is floats
    assert tree.reference_tensor([ints, None]) is ints
    with pytest.raises(TypeError, match="input of type int"):
        tree.reference_tensor(3)
    with pytest.raises(TypeError, match="holds no tensors"):
        tree.reference_tensor([3, None])


def test_nan_in_a_graph_is_named_by_its_path():
    b = graphs()
    b.x[1, 0] = float("nan")
    sym = st.Symmetry("S_n", st.actions.Graph(positions=()), st.actions.GraphNodes())
    with pytest.raises(st.SymmetryError, match=r"\.x is not finite"):
        sym.check_input(b)


def test_monte_carlo_averaging_is_checked_exactly_with_its_samples_moved():
    sym = st.Symmetry("SO3", st.actions.Points(), st.actions.Points())
    model = st.GroupAveraging(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 15),
                                                  torch.nn.Unflatten(1, (5, 3))), sym, samples=4).eval()
    x = torch.randn(3, 5, 3)
    err = st.equivariance_error(model, sym, x, samples=4)
    assert err.estimate == "fixed draw" and err.max < 1e-5, err
    assert st.equivariance_error(model, sym, x, samples=4, exact=False).max > 1e-3
