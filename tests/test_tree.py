"""symtrain.tree: one walker over nested inputs, PyG graphs included."""

import ast
import subprocess
import sys
from pathlib import Path

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


def hand_walkers(root: Path) -> list[str]:
    """Places that import ``torch.utils._pytree`` or recognise a PyG object by
    ``hasattr(x, "to_dict" | "apply" | "items")``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any("_pytree" in n for n in names):
                    found.append(f"{path.name}:{node.lineno} imports _pytree")
            elif isinstance(node, ast.Attribute) and node.attr == "_pytree":
                found.append(f"{path.name}:{node.lineno} uses _pytree")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr" \
                    and len(node.args) == 2 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in ("to_dict", "apply", "items"):
                found.append(f"{path.name}:{node.lineno} hasattr(..., {node.args[1].value!r})")
    return found


def test_no_module_walks_trees_by_hand(tmp_path):
    assert hand_walkers(Path(st.__file__).parent) == []
    (tmp_path / "bad.py").write_text("import torch.utils._pytree as p\n"
                                     "def f(x):\n    return hasattr(x, 'to_dict')\n")
    assert len(hand_walkers(tmp_path)) == 2  # the check can fail


def test_detach_leaves_the_callers_graph_alone():
    g = graphs()
    g.x.requires_grad_(True)
    d = tree.detach((g, torch.ones(1, requires_grad=True)))
    assert not d[0].x.requires_grad and not d[1].requires_grad and g.x.requires_grad
