"""Bad input gets a clear error naming the problem at every public entry point, never a
silent wrong answer. Organised by class; each test asserts the exception type and a
phrase of its message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import symtrain as st
from symtrain.errors import NonFiniteError


class Flat(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))

    def forward(self, x):
        return self.net(x)


# --- shapes: actions check their data wherever they are called ---------------------------
def test_action_called_directly_checks_the_image_is_square():
    sym = st.Symmetry("C4", input="image")
    g = sym.group.sample(2)
    with pytest.raises(st.ShapeError, match="square image"):
        sym.act_input(g, torch.randn(2, 3, 8, 10))
    with pytest.raises(st.ShapeError, match="square image"):
        sym.input.act(sym.group, g, torch.randn(2, 3, 8, 10))


@pytest.mark.parametrize("group,action,x", [
    ("SO3", "points", torch.randn(2, 5, 2)),          # 2-d points for a 3-d group
    ("SO3", "points", torch.randn(2, 5)),             # no coordinate axis
    ("S5", "nodes", torch.randn(2, 4, 3)),            # S5 on 4 nodes
    ("S_n", "adjacency", torch.randn(2, 4, 5)),       # not square
    ("D4", "image", torch.randn(2, 16, 16)),          # no channel axis
])
def test_action_shape_mismatch(group, action, x):
    sym = st.Symmetry(group, input=action)
    g = sym.group.sample(2, context=st.groups.GroupContext(num_nodes=5))
    with pytest.raises(st.ShapeError):
        sym.act_input(g, x)


def test_element_count_must_match_the_batch():
    sym = st.Symmetry("SO3", input="points")
    with pytest.raises(st.ShapeError, match="3 group elements for a batch of 2"):
        sym.act_input(sym.group.sample(3), torch.randn(2, 5, 3))


def test_wrapper_checks_the_base_models_output():
    sym = st.Symmetry("C4", input="image", output="image")
    model = st.GroupAveraging(nn.Conv2d(1, 1, (1, 3)), sym)  # output 8x6: not square
    with pytest.raises(st.ShapeError, match="square image"):
        model(torch.randn(2, 1, 8, 8))


def test_metrics_augment_and_losses_check_shapes():
    sym = st.Symmetry("C4", input="image", output="trivial")
    x = torch.randn(2, 3, 8, 10)
    model = Flat(240, 2)
    with pytest.raises(st.ShapeError, match="square image"):
        st.equivariance_error(model, sym, x)
    with pytest.raises(st.ShapeError, match="square image"):
        st.Augment(sym)(x)
    with pytest.raises(st.ShapeError, match="square image"):
        st.EquivarianceLoss(sym)(model, x, torch.randn(2, 2))


# --- masks --------------------------------------------------------------------------------
MIDDLE = torch.tensor([[True, False, True, False, True]])


def test_mask_with_padding_in_the_middle_is_rejected_everywhere():
    sym = st.Symmetry("S_n", input=st.actions.create_action("fields", "nodes", "mask"), output="trivial")
    x = (torch.randn(1, 5, 2), MIDDLE)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        sym.check_input(x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.GroupAveraging(Flat(10, 1), sym, samples=4)(*x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.groups.SymmetricGroup().sample(1, context=st.groups.GroupContext(num_nodes=5, mask=MIDDLE))
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.create_symmetrizer("ps", Flat(10, 1), sym, example=x, samples=2)(*x)
    with pytest.raises(st.ShapeError, match="padding between real nodes"):
        st.FrameAveraging(Flat(10, 1), sym)(*x)


def test_prefix_masks_and_non_bool_masks():
    sym = st.Symmetry("S_n", input=st.actions.create_action("fields", "nodes", "mask"), output="trivial")
    ok = (torch.randn(1, 5, 2), torch.tensor([[True, True, True, False, False]]))
    sym.check_input(ok)
    with pytest.raises(st.ShapeError, match="bool mask"):
        sym.check_input((ok[0], ok[1].float()))


# --- non-finite values -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_named_before_linear_algebra(bad):
    sym = st.Symmetry("SO3", input="points", output="points")
    x = torch.randn(3, 6, 3)
    x[1, 2, 0] = bad
    base = nn.Identity()
    for model in (st.FrameAveraging(base, sym), st.Canonicalization(base, sym), st.GroupAveraging(base, sym, samples=2)):
        with pytest.raises(NonFiniteError, match=r"not finite.*samples \[1\]"):
            model(x)
    with pytest.raises(NonFiniteError, match="not finite"):
        st.equivariance_error(base, sym, x, samples=2)
    with pytest.raises(NonFiniteError, match="not finite"):
        st.Augment(sym)(x)


def test_non_finite_value_in_a_field_names_the_field():
    sym = st.Symmetry("S_n x O3", input=st.actions.create_action("fields", pos="points", vel="vectors"))
    x = {"pos": torch.randn(2, 4, 3), "vel": torch.randn(2, 4, 3)}
    x["vel"][0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"\['vel'\].*NaN"):
        sym.check_input(x)


# --- counts -------------------------------------------------------------------------------------
def test_infinite_group_needs_training_samples_at_construction():
    sym = st.Symmetry("SO3", input="points", output="trivial")
    with pytest.raises(st.SymmetryError, match="infinite"):
        st.GroupAveraging(Flat(15, 1), sym, samples=None, eval_samples=4)


def test_numpy_integers_are_integers():
    sym = st.Symmetry("SO3", input="points", output="trivial")
    model = st.GroupAveraging(Flat(15, 1), sym, samples=np.int64(4), eval_samples=np.int32(2))
    assert model.samples == 4 and isinstance(model.samples, int)
    loss = st.EquivarianceLoss(sym, samples=np.int64(2))
    assert loss.samples == 2
    with pytest.raises(st.SymmetryError, match="positive integer"):
        st.GroupAveraging(Flat(15, 1), sym, samples=np.float64(4.0))
    with pytest.raises(st.SymmetryError, match="positive integer"):
        st.GroupAveraging(Flat(15, 1), sym, samples=True)


# --- tracing: value checks run in eager mode only --------------------------------------------
def test_frame_averaging_on_meta_and_under_vmap():
    sym = st.Symmetry("O3", input="points", output="points")
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    out = model.to("meta")(torch.randn(2, 5, 3, device="meta"))
    assert out.shape == (2, 5, 3) and out.device.type == "meta"
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    x = torch.randn(4, 2, 5, 3)
    batched = torch.func.vmap(model)(x)
    assert torch.allclose(batched[1], model(x[1]), atol=1e-5)


def test_frame_averaging_exports():
    sym = st.Symmetry("O3", input="points", output="points")
    model = st.FrameAveraging(nn.Linear(3, 3), sym)
    x = torch.randn(2, 5, 3)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


# --- symtrain lie --images: one line and exit code 2 -------------------------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "not_images", "corrupt"])
def test_lie_images_folder_errors(tmp_path, capsys, case):
    from symtrain.cli import main

    folder = tmp_path / "imgs"
    if case != "missing":
        folder.mkdir()
    if case == "not_images":
        (folder / "notes.txt").write_text("hello")
    if case == "corrupt":
        (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    code = main(["lie", "--model", "resnet10t", "--no-pretrained", "--images", str(folder),
                 "--image-size", "32", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("symtrain lie:")
    phrase = {"missing": "is not a folder", "empty": "no images", "not_images": "no images",
              "corrupt": "a.png is not a readable image"}[case]
    assert phrase in err[0]
