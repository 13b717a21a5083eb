"""``symtrain.symmetry_test``: the held-out AUC is ≈ 0.5 with a large p on data made
symmetric by augmentation and ≫ 0.5 with a small p on data that are not (upright images
under C4, clouds with a preferred direction under SO(3) and E(3), ordered graphs under
S_n, targets that do not move with their inputs); the AUC itself on hand cases."""

import pytest
import torch

import symtrain as st
from symtrain.metrics.symmetry_test import permutation_p_value, rank_auc

FAST = dict(samples=400, steps=150, hidden=64, permutations=500)


@pytest.fixture(autouse=True)
def _one_thread():
    # two CPU cores shared by many processes: one thread is several times faster here
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def augmented(sym, x, seed=1):
    """``x`` with every example moved by its own random element: a symmetric dataset."""
    g = sym.sample(sym.context(x), generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return sym.act_input(g, x)


def assert_symmetric(result):
    assert abs(result.auc - 0.5) < 0.1 and result.p_value > 0.05, result


def assert_broken(result):
    assert result.auc > 0.8 and result.p_value < 0.01, result


# --- the AUC ---------------------------------------------------------------------------
def test_rank_auc_on_hand_cases():
    labels = torch.tensor([0, 0, 1, 1])
    # pairs (positive, negative): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both): 3 of 4
    assert float(rank_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), labels)) == 0.75
    assert float(rank_auc(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels)) == 1.0
    assert float(rank_auc(torch.tensor([4.0, 3.0, 2.0, 1.0]), labels)) == 0.0
    # ties count one half: the positive 0.4 ties the negative 0.4 -> (1 + 0.5 + 1 + 1) / 4
    assert float(rank_auc(torch.tensor([0.1, 0.4, 0.4, 0.8]), labels)) == 0.875
    assert float(rank_auc(torch.zeros(6), torch.tensor([0, 1, 0, 1, 1, 0]))) == 0.5


def test_rank_auc_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    gen = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 20, (300,), generator=gen).float()  # many ties
    labels = (torch.rand(300, generator=gen) < 0.4).long()
    assert float(rank_auc(scores, labels)) == pytest.approx(metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_rank_auc_needs_both_classes():
    with pytest.raises(st.SymmetryTestError, match="both classes"):
        rank_auc(torch.rand(5), torch.ones(5))


def test_permutation_p_value_bounds():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1] * 20)
    # perfectly separated: no shuffle of 40 labels reaches AUC 1 -> the smallest p
    assert permutation_p_value(labels.float(), labels, 99, gen) == pytest.approx(1 / 100)
    # all scores tied: every shuffle has AUC 0.5 too -> p = 1
    assert permutation_p_value(torch.zeros(40), labels, 99, gen) == 1.0
    # scores unrelated to the labels: p is not small
    assert permutation_p_value(torch.rand(40, generator=gen), labels, 199, gen) > 0.05


# --- images under C4 -------------------------------------------------------------------
def upright_images(n=400, seed=0, dtype=torch.float32):
    """Noisy 8×8 images, bright at the top: they have an orientation."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(1, -1, 8, dtype=dtype)[:, None].expand(8, 8)
    return ramp + 0.8 * torch.randn(n, 1, 8, 8, generator=gen, dtype=dtype)


def test_upright_images_break_c4_and_the_rotations_say_by_which_element(dtype):
    sym = st.Symmetry("C4", input="image", output="trivial")
    result = st.symmetry_test((upright_images(dtype=dtype), None), sym, **FAST)
    assert_broken(result)
    assert result.group == "C4" and result.samples == 400 and result.train + result.test == 400
    assert not result.targets and result.features == 64
    rows = {r["label"]: r for r in result.per_element}
    assert set(rows) == {"rot0", "rot90", "rot180", "rot270"}
    assert sum(r["count"] for r in rows.values()) == result.test // 2
    # the identity moves nothing: as hard to tell as chance; a half turn is the easiest
    assert abs(rows["rot0"]["auc"] - 0.5) < 0.15
    assert rows["rot180"]["auc"] > 0.9 and result.per_element[-1]["label"] == "rot0"


def test_c4_augmented_images_look_symmetric(dtype):
    sym = st.Symmetry("C4", input="image", output="trivial")
    x = augmented(sym, upright_images(dtype=dtype))
    y = torch.randint(0, 3, (400,), generator=torch.Generator().manual_seed(2))
    result = st.symmetry_test((x, y), sym, **FAST)
    assert_symmetric(result)
    assert result.targets and result.features == 64 + 3  # labels one-hot encoded
    assert all(abs(r["auc"] - 0.5) < 0.2 for r in result.per_element)


# --- point clouds under SO(3) and E(3) ---------------------------------------------------
def pointing_clouds(n=400, seed=0, dtype=torch.float32, offset=(0.0, 0.0, 0.0)):
    """``[n, 8, 3]`` clouds elongated along z and shifted up: a preferred direction."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, 3, generator=gen, dtype=dtype) * torch.tensor([0.3, 0.3, 1.5], dtype=dtype)
    return x + torch.tensor([0.0, 0.0, 1.0], dtype=dtype) + torch.tensor(offset, dtype=dtype)


def test_clouds_with_a_preferred_direction_break_so3(dtype):
    sym = st.Symmetry("SO3", input="points", output="trivial")
    assert_broken(st.symmetry_test((pointing_clouds(dtype=dtype), None), sym, **FAST))


def test_rotated_clouds_look_so3_symmetric(dtype):
    sym = st.Symmetry("SO3", input="points", output="trivial")
    result = st.symmetry_test((augmented(sym, pointing_clouds(dtype=dtype)), None), sym, **FAST)
    assert_symmetric(result)
    assert result.per_element == []  # infinite group: no element table


def test_e3_rotates_about_the_centroid(dtype):
    # clouds far from the origin, each at its own place: rotations about the origin would
    # move them elsewhere and be spotted at once; the test rotates about each centroid,
    # so randomly oriented clouds pass and upright ones fail
    sym = st.Symmetry("E3", input="points", output="trivial")
    so3 = st.Symmetry("SO3", input="points", output="trivial")
    shift = 5 * torch.randn(400, 1, 3, generator=torch.Generator().manual_seed(7), dtype=dtype)
    upright = pointing_clouds(dtype=dtype, offset=(4.0, 0.0, 0.0)) + shift
    oriented = augmented(so3, pointing_clouds(dtype=dtype)) + torch.tensor([4.0, 0, 0], dtype=dtype) + shift
    assert_symmetric(st.symmetry_test((oriented, None), sym, **FAST))
    assert_broken(st.symmetry_test((upright, None), sym, **FAST))


def test_targets_that_do_not_move_with_the_inputs_break_the_joint_symmetry():
    # the inputs (three points) are rotation invariant in distribution, but the target,
    # declared invariant, is the first point: (x, y) and (g·x, y) differ
    sym = st.Symmetry("SO3", input="points", output="trivial")
    x = augmented(sym, pointing_clouds()[:, :3])
    y = x[:, 0].clone()
    result = st.symmetry_test((x, y), sym, **FAST)
    assert result.auc > 0.75 and result.p_value < 0.01, result
    assert_symmetric(st.symmetry_test((x, y), sym, targets=False, **FAST))
    # declared as what it is (a point moving with the cloud) the pair is symmetric again
    moving = st.Symmetry("SO3", input="points", output="points")
    assert_symmetric(st.symmetry_test((x, y[:, None]), moving, **FAST))


# --- graphs under S_n -------------------------------------------------------------------
def ordered_graphs(n=400, nodes=8, seed=0):
    """Dense adjacencies ``[n, 8, 8]`` whose first nodes are the best connected."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.linspace(0.9, 0.1, nodes)
    prob = weight[:, None] * weight[None, :]
    upper = (torch.rand(n, nodes, nodes, generator=gen) < prob).float().triu(1)
    return upper + upper.transpose(1, 2)


def test_graphs_in_degree_order_break_sn_and_shuffled_ones_do_not():
    sym = st.Symmetry("S_n", input="adjacency", output="trivial")
    graphs = ordered_graphs()
    assert_broken(st.symmetry_test((graphs, None), sym, **FAST))
    assert_symmetric(st.symmetry_test((augmented(sym, graphs), None), sym, **FAST))


# --- datasets, seeds and bad arguments --------------------------------------------------
def test_reads_a_task_split_and_is_reproducible():
    from symtrain.data import TensorData

    sym = st.Symmetry("C4", input="image", output="trivial")
    data = TensorData(upright_images(300), torch.randint(0, 4, (300,)))
    a = st.symmetry_test(data, sym, samples=200, steps=50, hidden=16, permutations=100, seed=3)
    b = st.symmetry_test(data, sym, samples=200, steps=50, hidden=16, permutations=100, seed=3)
    assert a == b and a.samples == 200 and a.targets


@pytest.mark.parametrize("kwargs, message", [
    (dict(samples=3), "samples: must be an integer >= 8 or None"),
    (dict(samples=1000), "samples=1000: the dataset has only 400 examples"),
    (dict(test_fraction=1.5), "test_fraction: must be a number in (0, 1), got 1.5"),
    (dict(permutations=0), "permutations: must be a positive integer, got 0"),
    (dict(steps=2.5), "steps: must be a positive integer, got 2.5"),
    (dict(lr=-1.0), "lr: must be a positive number, got -1.0"),
])
def test_bad_arguments_are_named(kwargs, message):
    sym = st.Symmetry("C4", input="image", output="trivial")
    with pytest.raises(st.SymmetryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        st.symmetry_test((upright_images(), None), sym, **kwargs)


def test_bad_datasets_are_named():
    sym = st.Symmetry("C4", input="image", output="trivial")
    with pytest.raises(st.SymmetryTestError, match="dataset: expected a dataset with __len__"):
        st.symmetry_test(object(), sym)
    with pytest.raises(st.SymmetryTestError, match="has 5 examples; the test needs at least 8"):
        st.symmetry_test((upright_images(5), None), sym)
    with pytest.raises(st.ShapeError):
        st.symmetry_test((torch.randn(20, 3), None), sym)
