"""Registries and factories, timm-style: a recipe names its dataset, model, symmetrization
method and interface by string, and these build them.

- :data:`DATASETS`: ``name -> factory(**args) -> Task`` (splits, symmetry, loss, metrics);
- :data:`MODELS`: ``name -> nn.Module class``; constructor arguments the recipe leaves
  out are filled from the task (``num_nodes``, ``num_classes``, ``in_features``, …);
- :data:`METHODS`: ``name -> builder(base, symmetry, settings, task) -> Built``.

Arguments are checked against each factory's signature, so a misspelt key fails before
training with its dotted name (``model.dimm: not an argument of nbody_transformer``).
Register your own with :func:`register_dataset`, :func:`register_model` and
:func:`register_method`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import actions as A
from ..symmetry import Symmetry
from .config import ConfigError, Recipe, SymmetrizationConfig

Metrics = Callable[[Any, Any], dict[str, tuple[Tensor, Tensor]]]


# --- data -----------------------------------------------------------------------------------
class TensorData(torch.utils.data.Dataset):
    """A split held as tensors: ``inputs`` (one tensor or a tuple, first axis the example)
    and ``target``. ``data[[i, j, …]]`` (``__getitems__``) returns the batch
    ``(inputs, target)`` by tensor indexing, with tuples kept as tuples."""

    def __init__(self, inputs: Tensor | tuple[Tensor, ...], target: Tensor):
        self.inputs, self.target = inputs, target
        sizes = {t.shape[0] for t in self._tensors()}
        if len(sizes) != 1:
            raise ValueError(f"inputs and target have different numbers of examples: {sorted(sizes)}")

    def _tensors(self) -> list[Tensor]:
        inputs = self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)
        return [*inputs, self.target]

    def __len__(self) -> int:
        return self.target.shape[0]

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        if isinstance(self.inputs, tuple):
            x = tuple(t[idx] for t in self.inputs)
        else:
            x = self.inputs[idx]
        return x, self.target[idx]


def collate_batch(batch):
    """The batch is built by :meth:`TensorData.__getitems__` already."""
    return batch


@dataclass
class Task:
    """A dataset with what training needs to know about it.

    ``loss(pred, y)`` is a scalar mean over the batch; ``metrics(pred, y)`` returns, per
    name, per-example numerators and denominators ``([B], [B])`` (summed over the split,
    then divided); ``main_metric`` is the one reported first. ``info`` fills model
    arguments (``num_nodes``, ``num_classes``, ``in_features``, ``max_nodes``, …).
    """

    train: TensorData
    val: TensorData
    test: TensorData
    symmetry: Symmetry
    loss: Callable[[Any, Any], Tensor]
    metrics: Metrics
    main_metric: str
    info: dict = field(default_factory=dict)


DATASETS: dict[str, Callable[..., Task]] = {}
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_dataset(name: str):
    def wrap(fn):
        DATASETS[name] = fn
        return fn
    return wrap


def register_model(name: str, cls: Callable[..., nn.Module] | None = None):
    if cls is not None:
        MODELS[name] = cls
        return cls

    def wrap(fn):
        MODELS[name] = fn
        return fn
    return wrap


def mse_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    err = (pred.float() - y.float()).pow(2).flatten(1).mean(1)
    return {"mse": (err, torch.ones_like(err))}


def accuracy_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Graph accuracy for ``pred [B, C]``, ``y [B]``; node accuracy (real nodes, ``y != -1``)
    for ``pred [B, N, C]``, ``y [B, N]``."""
    correct = (pred.argmax(-1) == y).float()
    if y.dim() == 1:
        return {"accuracy": (correct, torch.ones_like(correct))}
    real = (y >= 0).float()
    return {"accuracy": ((correct * real).sum(1), real.sum(1))}


def node_cross_entropy(pred: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(pred.flatten(0, 1).float(), y.flatten(), ignore_index=-1)


def graph_cross_entropy(pred: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(pred.float(), y)


@register_dataset("nbody")
def nbody_task(train: int = 3000, val: int = 2000, test: int = 2000, seed: int = 0,
               particles: int = 5, cache_dir: str | None = None, path: str | None = None) -> Task:
    """Charged 5-body dynamics (positions, velocities, charges → positions 1000 steps
    later), group S_n × E(3). See :mod:`symtrain.data.nbody`."""
    from ..data.nbody import NBodySettings, nbody_dataset

    splits = nbody_dataset(train, val, test, seed=seed, settings=NBodySettings(particles=particles),
                           cache_dir=cache_dir, path=path)
    make = {k: TensorData((v["pos"], v["vel"], v["charge"]), v["target"]) for k, v in splits.items()}
    sym = Symmetry("S_n x E3", input=A.create_action("fields", "points", "vectors", "nodes"), output="points")
    return Task(make["train"], make["val"], make["test"], sym, F.mse_loss, mse_metrics, "mse",
                {"space_dim": 3, "charge_dim": 1, "num_nodes": particles, "interface_features": 1,
                 "interface_vectors": 2})


def _split(n: int, val_fraction: float, test_fraction: float, seed: int) -> list[Tensor]:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum below 1")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    return [order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]]


def _graph_task(graphs, seed: int, val_fraction: float, test_fraction: float) -> Task:
    parts = _split(len(graphs), val_fraction, test_fraction, seed)
    make = [TensorData(graphs.adjacency[i], graphs.labels[i]) for i in parts]
    sym = Symmetry("S_n", input="adjacency", output="trivial")
    n = graphs.adjacency.shape[1]
    return Task(*make, sym, graph_cross_entropy, accuracy_metrics, "accuracy",
                {"num_nodes": n, "max_nodes": n, "num_classes": graphs.num_classes,
                 "in_features": 0, "interface_features": 0})


@register_dataset("exp")
def exp_task(pairs: int = 600, base_nodes: int = 8, edge_prob: float = 0.25, cycle: int | None = None,
             seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Task:
    """EXP-style graph separation: pairs of 1-WL-equivalent graphs with different labels
    (:func:`symtrain.data.graphs.exp_pairs`), group S_n. Pairs are split, not graphs."""
    from ..data.graphs import exp_pairs

    graphs = exp_pairs(pairs, base_nodes=base_nodes, edge_prob=edge_prob, cycle=cycle,
                       generator=torch.Generator().manual_seed(seed))
    parts = _split(pairs, val_fraction, test_fraction, seed)
    idx = [torch.stack([2 * p, 2 * p + 1], 1).flatten() for p in parts]
    make = [TensorData(graphs.adjacency[i], graphs.labels[i]) for i in idx]
    task = _graph_task(graphs, seed, val_fraction, test_fraction)
    task.train, task.val, task.test = make
    return task


@register_dataset("csl")
def csl_task(per_class: int = 15, nodes: int = 41, seed: int = 0, val_fraction: float = 0.2,
             test_fraction: float = 0.2) -> Task:
    """Circular skip-link graphs, 10 classes that 1-WL cannot separate; group S_n."""
    from ..data.graphs import csl_graphs

    graphs = csl_graphs(per_class, nodes=nodes, generator=torch.Generator().manual_seed(seed))
    return _graph_task(graphs, seed, val_fraction, test_fraction)


@register_dataset("sbm")
def sbm_task(train: int = 1000, val: int = 200, test: int = 200, seed: int = 0,
             communities: int = 3, community_size: list[int] = (5, 10), pattern_size: int = 6,
             p: float = 0.5, q: float = 0.2, p_pattern: float = 0.5, q_pattern: float = 0.5,
             vocabulary: int = 3) -> Task:
    """PATTERN-style node classification on stochastic-block-model graphs
    (:func:`symtrain.data.graphs.sbm_pattern`), group S_n on ``(adjacency, features, mask)``."""
    from ..data.graphs import sbm_pattern

    graphs = sbm_pattern(train + val + test, communities=communities,
                         community_size=tuple(community_size), p=p, q=q, pattern_size=pattern_size,
                         p_pattern=p_pattern, q_pattern=q_pattern, vocabulary=vocabulary,
                         generator=torch.Generator().manual_seed(seed))
    bounds = [(0, train), (train, train + val), (train + val, train + val + test)]
    make = [TensorData((graphs.adjacency[a:b], graphs.features[a:b], graphs.mask[a:b]),
                       graphs.labels[a:b]) for a, b in bounds]
    sym = Symmetry("S_n", input=A.create_action("fields", "adjacency", "nodes", "mask"), output="nodes")
    n = graphs.adjacency.shape[1]
    return Task(*make, sym, node_cross_entropy, accuracy_metrics, "accuracy",
                {"num_nodes": n, "max_nodes": n, "num_classes": 2, "in_features": vocabulary,
                 "interface_features": vocabulary})


@register_dataset("shapes")
def shapes_task(train: int = 20000, val: int = 1000, test: int = 1000, size: int = 64,
                noise: float = 0.1, seed: int = 0) -> Task:
    """Locally generated shape images (:func:`symtrain.data.images.shapes_dataset`) for
    pretraining ViTs offline. The classes are invariant to D4 (quarter turns and flips)."""
    from ..data.images import SHAPE_CLASSES, shapes_dataset

    splits = []
    for i, n in enumerate((train, val, test)):
        x, y = shapes_dataset(n, size=size, noise=noise, generator=torch.Generator().manual_seed(seed * 3 + i))
        splits.append(TensorData(x, y))
    sym = Symmetry("D4", input="image", output="trivial")
    return Task(*splits, sym, graph_cross_entropy, accuracy_metrics, "accuracy",
                {"num_classes": len(SHAPE_CLASSES), "img_size": size, "in_chans": 3})


@register_dataset("pattern")
def pattern_task(path: str | None = None, max_nodes: int = 188, train: int | None = None,
                 val: int | None = None, test: int | None = None) -> Task:
    """PATTERN (Dwivedi et al.) read from a local ``torch_geometric`` ``GNNBenchmarkDataset``
    root (``data.path``): nothing is downloaded. Graphs are made dense (adjacency,
    one-hot node features, mask, node labels) up to ``max_nodes``; ``train``/``val``/``test``
    keep the first graphs of each split."""
    from ..data.pyg import load_gnn_benchmark

    if path is None:
        raise ConfigError("data.path: PATTERN is read from a local GNNBenchmarkDataset root; "
                          "set data.path to the folder that holds PATTERN/")
    limits = {"train": train, "val": val, "test": test}
    splits = {k: load_gnn_benchmark(path, "PATTERN", k, max_nodes, limit=v) for k, v in limits.items()}
    make = {k: TensorData((g.adjacency, g.features, g.mask), g.labels) for k, g in splits.items()}
    sym = Symmetry("S_n", input=A.create_action("fields", "adjacency", "nodes", "mask"), output="nodes")
    feats = splits["train"].features.shape[-1]
    return Task(make["train"], make["val"], make["test"], sym, node_cross_entropy, accuracy_metrics,
                "accuracy", {"num_nodes": max_nodes, "max_nodes": max_nodes, "num_classes": 2,
                             "in_features": feats, "interface_features": feats})


def timm_vit(vit: str = "vit_tiny_patch16_224", num_classes: int = 1000, pretrained: bool = False,
             checkpoint: str | None = None, img_size: int | None = None, patch_size: int | None = None,
             in_chans: int = 3, depth: int | None = None, drop_path_rate: float = 0.0) -> nn.Module:
    """A timm vision transformer by name (weights from the hub, a local file, or random)."""
    from ..models.graph_vit import create_vit

    kwargs = {k: v for k, v in dict(img_size=img_size, patch_size=patch_size, depth=depth).items()
              if v is not None}
    return create_vit(vit, pretrained=pretrained, checkpoint=checkpoint, num_classes=num_classes,
                      in_chans=in_chans, drop_path_rate=drop_path_rate, **kwargs)


def graph_vit(max_nodes: int, vit: str = "vit_tiny_patch16_224", num_classes: int = 2,
              in_features: int = 0, edge_dim: int = 1, readout: str = "node", pretrained: bool = False,
              checkpoint: str | None = None, img_size: int | None = None, patch_size: int | None = None,
              depth: int | None = None, drop_path_rate: float = 0.0) -> nn.Module:
    """A timm ViT reading dense graphs (:class:`symtrain.models.graph_vit.GraphViT`);
    ``readout`` is ``"graph"``, ``"node"`` or ``"edge"``. Parameter names: the pretrained
    part is ``backbone.*`` except ``backbone.patch_embed.*`` (new), plus ``head.*`` (new)."""
    from ..models.graph_vit import create_graph_vit

    kwargs = {k: v for k, v in dict(img_size=img_size, patch_size=patch_size, depth=depth).items()
              if v is not None}
    return create_graph_vit(vit, max_nodes=max_nodes, edge_dim=edge_dim, node_dim=in_features,
                            out_dim=num_classes, task=readout, pretrained=pretrained, checkpoint=checkpoint,
                            drop_path_rate=drop_path_rate, **kwargs)


def _register_models() -> None:
    from ..models import AdjacencyMLP, DenseGIN, NBodyTransformer, NodeTransformer

    for name, cls in [("nbody_transformer", NBodyTransformer), ("adjacency_mlp", AdjacencyMLP),
                      ("gin", DenseGIN), ("node_transformer", NodeTransformer),
                      ("timm_vit", timm_vit), ("graph_vit", graph_vit)]:
        MODELS.setdefault(name, cls)


_register_models()


# --- calling factories with checked arguments -------------------------------------------------
def call_checked(fn: Callable, args: dict, section: str, what: str, fill: dict | None = None) -> Any:
    """``fn(**args)`` with missing arguments taken from ``fill`` when ``fn`` has them;
    unknown or missing arguments raise :class:`ConfigError` naming ``section.key``."""
    sig = inspect.signature(fn)
    params = {k: p for k, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in args:
        if key not in params:
            raise ConfigError(f"{section}.{key}: not an argument of {what} "
                              f"(arguments: {', '.join(params) or 'none'})")
    kwargs = dict(args)
    for key, value in (fill or {}).items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    missing = [k for k, p in params.items() if p.default is p.empty and k not in kwargs]
    if missing:
        raise ConfigError(f"{section}.{missing[0]}: required by {what}")
    try:
        return fn(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{section}: {what} rejected its arguments {kwargs}: {err}") from err


def build_task(recipe: Recipe) -> Task:
    d = recipe.data
    if d.name not in DATASETS:
        raise ConfigError(f"data.name: unknown dataset {d.name!r}; known: {', '.join(sorted(DATASETS))}")
    fn = DATASETS[d.name]
    args = dict(d.args)
    params = inspect.signature(fn).parameters
    for key in ("cache_dir", "path"):
        value = getattr(d, key)
        if value is not None:
            if key not in params:
                raise ConfigError(f"data.{key}: dataset {d.name!r} does not use it")
            args[key] = value
    try:
        return call_checked(fn, args, "data", f"dataset {d.name!r}")
    except FileNotFoundError as err:
        raise ConfigError(f"data.path: {err}") from err


def build_model(recipe: Recipe, task: Task) -> nn.Module:
    m = recipe.model
    if m.name not in MODELS:
        raise ConfigError(f"model.name: unknown model {m.name!r}; known: {', '.join(sorted(MODELS))}")
    try:
        return call_checked(MODELS[m.name], m.args, "model", f"model {m.name!r}", task.info)
    except FileNotFoundError as err:  # a weights file named by the recipe
        raise ConfigError(f"model.checkpoint: {err}") from err


# --- symmetrization methods ---------------------------------------------------------------
@dataclass
class Built:
    """What a method makes: the model to train, and optionally a batch transform
    (augmentation) or a loss module that replaces the task loss (REMUL)."""

    model: nn.Module
    augment: Callable | None = None
    criterion: nn.Module | None = None


METHODS: dict[str, Callable[[nn.Module, Symmetry, SymmetrizationConfig, Task], Built]] = {}


def register_method(name: str):
    def wrap(fn):
        METHODS[name] = fn
        return fn
    return wrap


def _no_samples(s: SymmetrizationConfig, method: str) -> None:
    for key in ("samples", "eval_samples"):
        if getattr(s, key) is not None:
            raise ConfigError(f"symmetrization.{key}: not used by method {method!r} "
                              "(it has no Monte-Carlo samples); remove it")


@register_method("none")
def _plain(base, sym, s, task) -> Built:
    _no_samples(s, "none")
    return Built(base)


@register_method("augment")
def _augment(base, sym, s, task) -> Built:
    from ..augment import Augment

    _no_samples(s, "augment")
    return Built(base, augment=Augment(sym))


@register_method("remul")
def _remul(base, sym, s, task) -> Built:
    from ..losses import EquivarianceLoss

    args = dict(s.remul)
    args.setdefault("task_loss", task.loss)
    if s.samples is not None:
        args.setdefault("samples", s.samples)
    crit = call_checked(functools.partial(EquivarianceLoss, sym), args, "symmetrization.remul",
                        "EquivarianceLoss")
    return Built(base, criterion=crit)


@register_method("group_averaging")
def _ga(base, sym, s, task) -> Built:
    from ..symmetrize import GroupAveraging

    try:
        return Built(GroupAveraging(base, sym, samples=s.samples, eval_samples=s.eval_samples))
    except ValueError as err:
        raise ConfigError(f"symmetrization.samples: {err}") from err


def _frames(sym: Symmetry, s: SymmetrizationConfig, canonical: bool) -> list:
    """The default frame of each factor, with ``symmetrization.frame_tol`` applied."""
    from ..symmetrize.frames import PCAFrame, default_frame

    frames = [default_frame(f, canonical=canonical) for f in sym.group.factors]
    for frame in frames:
        if isinstance(frame, PCAFrame) and s.frame_tol is not None:
            frame.tol = s.frame_tol
    return frames


@register_method("frame_averaging")
def _fa(base, sym, s, task) -> Built:
    from ..symmetrize import FrameAveraging

    _no_samples(s, "frame_averaging")
    return Built(FrameAveraging(base, sym, frames=_frames(sym, s, canonical=False)))


@register_method("canonicalization")
def _canon(base, sym, s, task) -> Built:
    from ..symmetrize import Canonicalization

    _no_samples(s, "canonicalization")
    return Built(Canonicalization(base, sym, canonicalizer=_frames(sym, s, canonical=True)))


def build_interface(sym: Symmetry, s: SymmetrizationConfig, task: Task) -> nn.Module:
    """The PS interface named by ``symmetrization.interface.name`` (a class in
    :mod:`symtrain.symmetrize.interfaces`), by default the one for the group."""
    from ..symmetrize import interfaces
    from ..symmetrize.interfaces import Interface

    available = {n: getattr(interfaces, n) for n in dir(interfaces)
                 if isinstance(getattr(interfaces, n), type) and issubclass(getattr(interfaces, n), Interface)
                 and getattr(interfaces, n) is not Interface}
    args = dict(s.interface)
    name = args.pop("name", None)
    if name is None:
        name = _default_interface(sym, available)
    if name not in available:
        raise ConfigError(f"symmetrization.interface.name: unknown interface {name!r}; "
                          f"available: {', '.join(sorted(available)) or 'none'}")
    fill = {"in_features": task.info.get("interface_features", 0), "group": str(sym.group),
            "in_vectors": task.info.get("interface_vectors", 1),
            "in_scalars": task.info.get("interface_features", 0)}
    return call_checked(available[name], args, "symmetrization.interface", name, fill)


def _default_interface(sym: Symmetry, available: dict) -> str:
    from ..symmetrize.interfaces import default_interface, get_interface_class

    try:
        return get_interface_class(default_interface(sym.group)).__name__
    except ValueError as err:
        raise ConfigError(f"symmetrization.interface.name: {err}") from None


@register_method("ps")
def _ps(base, sym, s, task) -> Built:
    from ..symmetrize import ProbabilisticSymmetrization

    iface = build_interface(sym, s, task)
    return Built(ProbabilisticSymmetrization(base, sym, iface, samples=s.samples,
                                             eval_samples=s.eval_samples, noise_scale=s.noise_scale))


@register_method("learned_canonicalization")
def _learned_canon(base, sym, s, task) -> Built:
    from ..symmetrize import ProbabilisticSymmetrization

    _no_samples(s, "learned_canonicalization")
    return Built(ProbabilisticSymmetrization.canonicalization(base, sym, build_interface(sym, s, task)))


def build_symmetry(recipe: Recipe, task: Task) -> Symmetry:
    group = recipe.symmetrization.group
    if group is None:
        return task.symmetry
    try:
        return Symmetry(group, input=task.symmetry.input, output=task.symmetry.output)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"symmetrization.group: {err}") from err


def build(recipe: Recipe, task: Task | None = None) -> tuple[Task, Symmetry, Built]:
    """Task, symmetry and the method's model (and augmentation / loss) for a recipe."""
    task = task if task is not None else build_task(recipe)
    sym = build_symmetry(recipe, task)
    base = build_model(recipe, task)
    method = recipe.symmetrization.method
    if method not in METHODS:
        raise ConfigError(f"symmetrization.method: unknown method {method!r}; known: {', '.join(METHODS)}")
    return task, sym, METHODS[method](base, sym, recipe.symmetrization, task)


# --- optimizer and schedule -----------------------------------------------------------------
def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """AdamW parameter groups: one per ``optim.param_groups`` entry (first regex match
    wins), then the rest at the base settings. Empty groups are dropped."""
    import re

    o = recipe.optim
    specs = []
    for i, g in enumerate(o.param_groups):
        try:
            regex = re.compile(g.match)
        except re.error as err:
            raise ConfigError(f"optim.param_groups[{i}].match: not a regex: {err}") from None
        lr = g.lr if g.lr is not None else o.lr * (g.lr_scale if g.lr_scale is not None else 1.0)
        wd = g.weight_decay if g.weight_decay is not None else o.weight_decay
        specs.append((regex, {"params": [], "lr": lr, "weight_decay": wd, "name": g.match}))
    rest = {"params": [], "lr": o.lr, "weight_decay": o.weight_decay, "name": "default"}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for regex, group in specs:
            if regex.search(pname):
                group["params"].append(p)
                break
        else:
            rest["params"].append(p)
    for i, (_, group) in enumerate(specs):
        if not group["params"]:
            raise ConfigError(f"optim.param_groups[{i}].match: {group['name']!r} matches no parameter")
    return [g for _, g in specs if g["params"]] + ([rest] if rest["params"] else [])


def lr_lambda(recipe: Recipe) -> Callable[[int], float]:
    """Multiplier of the learning rate at optimizer step ``t``: linear warm-up over
    ``warmup_steps``, then cosine / linear decay to ``min_lr_ratio`` at ``train.steps``,
    or constant."""
    import math

    o, total = recipe.optim, recipe.train.steps
    warm, floor = o.warmup_steps, o.min_lr_ratio

    def fn(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if o.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if o.schedule == "cosine" else 1 - progress
        return floor + (1 - floor) * decay
    return fn
