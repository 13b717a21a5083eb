"""Nested inputs and outputs as trees of tensors: the one walker every module shares.

Models take tensors, tuples, lists, dicts and PyTorch Geometric ``Data`` / ``Batch``
objects, nested in any way. This module flattens them with `optree
<https://github.com/metaopt/optree>`_ in a namespace of its own (``"symtrain"``):

- :func:`leaves`: the leaves of a tree, in order (dicts in insertion order);
- :func:`tree_map`: ``fn`` applied leafwise to one tree or several of the same structure;
- :func:`detach`: every tensor detached;
- :func:`walk`: ``(path, leaf)`` pairs with readable paths such as ``[0]['pos']`` or ``.x``;
- :func:`reference_tensor`: the tensor to read a device and a dtype from.

``None`` is an empty subtree (it has no leaves and maps to itself). PyG ``Data`` (and its
``Batch`` classes) are nodes whose children are their tensor attributes, by name; other
attributes (a batch's slices, ``num_graphs``) ride along, so a ``Batch`` keeps its batch
vector and ``ptr`` through :func:`tree_map`. PyG is registered when a PyG object is first
met: importing symtrain does not import ``torch_geometric``. This module is the only one
outside the PyG-aware actions that recognises a PyG object (:func:`is_single_graph`).
"""

from __future__ import annotations

import copy
import sys
from typing import Any, Callable, Iterator

import optree
from torch import Tensor

NAMESPACE = "symtrain"

# ``dict_insertion_ordered`` is a context manager over a per-namespace setting; entered
# once here and held open (a collected one would restore the old mode), it makes dicts
# flatten in insertion order in the symtrain namespace for the whole process, as the
# hand-written walkers did. No other namespace (torch's, the global one) is affected.
_INSERTION_ORDER = optree.dict_insertion_ordered(True, namespace=NAMESPACE)
_INSERTION_ORDER.__enter__()

_SEEN: set[type] = set()  # leaf types already checked for a PyG registration


class _GraphSpec:
    """What a flattened PyG object keeps besides its tensors: its other attributes (in
    ``template``) and the names of its tensor attributes. Two specs match when the types
    and names do, so several graphs of one layout can be mapped together."""

    __slots__ = ("keys", "template")

    def __init__(self, keys: tuple[str, ...], template: Any):
        self.keys, self.template = keys, template

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _GraphSpec) and self.keys == other.keys
                and type(self.template) is type(other.template))

    def __hash__(self) -> int:
        return hash((type(self.template).__name__, self.keys))

    def __repr__(self) -> str:
        return f"{type(self.template).__name__}({', '.join(self.keys)})"


def _flatten_graph(data: Any):
    keys = tuple(k for k, v in data.to_dict().items() if isinstance(v, Tensor))
    return [data[k] for k in keys], _GraphSpec(keys, data), keys


def _unflatten_graph(spec: _GraphSpec, children) -> Any:
    out = copy.copy(spec.template)  # a new object and store; the slices of a Batch are shared
    for key, value in zip(spec.keys, children, strict=True):
        out[key] = value
    return out


def _is_graph_type(cls: type) -> bool:
    """Whether ``cls`` is a PyG ``Data`` class (``Batch`` classes included). PyG is only
    looked at once it is imported: an object of its classes exists only then."""
    if "torch_geometric" not in sys.modules:
        return False
    from torch_geometric.data import Data

    return issubclass(cls, Data)


def _register_new(leaf_list: list) -> bool:
    """Register the PyG classes among ``leaf_list``'s types not seen before; whether any was."""
    new = False
    for leaf in leaf_list:
        cls = type(leaf)
        if cls is Tensor or cls in _SEEN:
            continue
        _SEEN.add(cls)
        if _is_graph_type(cls):
            optree.register_pytree_node(cls, _flatten_graph, _unflatten_graph,
                                        path_entry_type=optree.GetAttrEntry, namespace=NAMESPACE)
            new = True
    return new


def flatten(x: Any) -> tuple[list, optree.PyTreeSpec]:
    """``(leaves, spec)`` of ``x``; ``spec.unflatten(leaves)`` rebuilds it."""
    flat, spec = optree.tree_flatten(x, namespace=NAMESPACE)
    while _register_new(flat):  # a PyG object met for the first time: now a node
        flat, spec = optree.tree_flatten(x, namespace=NAMESPACE)
    return flat, spec


def leaves(x: Any) -> list:
    """Every leaf of ``x`` in order (tensors and any other non-container values)."""
    return flatten(x)[0]


def tree_map(fn: Callable[..., Any], x: Any, *rest: Any) -> Any:
    """``x`` with each leaf replaced by ``fn(leaf, *same leaf of each of rest)``; ``rest``
    must have the structure of ``x``. PyG objects come back as new objects of their
    class (the caller's are never modified)."""
    flat, spec = flatten(x)
    others = []
    for r in rest:
        flatten(r)  # registers the PyG classes of r
        others.append(spec.flatten_up_to(r))
    return spec.unflatten([fn(*values) for values in zip(flat, *others, strict=True)])


def detach(x: Any) -> Any:
    """``x`` with every tensor detached."""
    return tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, x)


def walk(x: Any) -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of ``x``; paths read like Python: ``""`` for ``x``
    itself, ``[0]['pos']`` for an item, ``.x`` for an attribute of a PyG graph."""
    flatten(x)
    accessors, flat, _ = optree.tree_flatten_with_accessor(x, namespace=NAMESPACE)
    for accessor, leaf in zip(accessors, flat, strict=True):
        yield accessor.codify(""), leaf


def reference_tensor(x: Any) -> Tensor:
    """The first floating tensor of ``x`` (else its first tensor), to read a device and a
    dtype from. Raises ``TypeError`` when ``x`` holds no tensor."""
    flat = leaves(x)
    tensors = [t for t in flat if isinstance(t, Tensor)]
    if not tensors:
        if len(flat) == 1 and flat[0] is x:
            raise TypeError(f"cannot find a tensor in input of type {type(x).__name__}")
        raise TypeError("the input holds no tensors")
    return next((t for t in tensors if t.is_floating_point()), tensors[0])


def is_single_graph(x: Any) -> bool:
    """Whether ``x`` is one PyG graph (a ``Data`` that is not a ``Batch``)."""
    if not _is_graph_type(type(x)):
        return False
    from torch_geometric.data import Batch

    return not isinstance(x, Batch)
