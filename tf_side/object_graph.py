"""Decode a TF2 checkpoint's ``_CHECKPOINTABLE_OBJECT_GRAPH`` and tag every checkpoint key.

An object-based checkpoint (``tf.train.Checkpoint``, Keras ``save_weights`` in TF format,
SavedModel variables) stores its tensors under keys derived from object paths
(``model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``) plus one scalar string,
the serialized ``TrackableObjectGraph``::

    TrackableObjectGraph { repeated TrackableObject nodes = 1; }      // node 0 is the root
    TrackableObject {
      repeated ObjectReference children = 1;       // {int32 node_id = 1; string local_name = 2}
      repeated SerializedTensor attributes = 2;    // {name = 1; full_name = 2; checkpoint_key = 3}
      repeated SlotVariableReference slot_variables = 3;
          // {int32 original_variable_node_id = 1; string slot_name = 2; int32 slot_variable_node_id = 3}
    }

The graph, not the key text, says what each tensor is: slot variables of TF1-style and
legacy Keras optimizers are listed in ``slot_variables``; Keras 2 (``optimizer_experimental``)
and Keras 3 optimizers keep their slots in per-slot lists (``_momentums/0``,
``_velocities/0`` ...) parallel to the list of variables they optimize.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

from bridge.core.model import TensorKind
from bridge.core.naming import bookkeeping_kind
from tf_side.proto import DecodeError, expect_bytes, expect_int, expect_str, iter_fields, to_int32

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VARIABLE_VALUE = "VARIABLE_VALUE"

# Last local names (leading underscores stripped) of step counters in object graphs:
# tf.train.Checkpoint's save_counter, Keras optimizers' iterations / legacy iter.
_COUNTER_NAMES = frozenset({"save_counter", "iter", "iterations", "global_step"})
# Optimizer children that are not per-variable slot lists.
_NOT_SLOT_LISTS = frozenset({"_variables", "_trainable_variables", "variables", "_index_dict"})
_INDEX = re.compile(r"\d+")


@dataclass
class Attribute:
    name: str
    full_name: str
    checkpoint_key: str


@dataclass
class Node:
    """One ``TrackableObject``: its outgoing edges, saved tensors and slot references."""

    children: list[tuple[int, str]] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    # (original_variable_node_id, slot_name, slot_variable_node_id)
    slot_variables: list[tuple[int, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class GraphEntry:
    """What the object graph says about one checkpoint key.

    Attributes:
        checkpoint_key: the key in the bundle.
        object_path: local names from the root to the owning object (model paths preferred
            over paths through the optimizer).
        attribute: the attribute name (``VARIABLE_VALUE`` for variables).
        full_name: the variable's TF1-style name, when the writer recorded one.
        kind: ``model``, ``optimizer`` or ``counter``.
        slot_of: for a slot, the checkpoint key of the variable it belongs to.
        slot_name: for a slot, its name (``m``, ``v``, ``momentum``, ``velocity``).
    """

    checkpoint_key: str
    object_path: tuple[str, ...]
    attribute: str
    full_name: str
    kind: TensorKind
    slot_of: str | None = None
    slot_name: str | None = None
    # Eager TF2 variables created without a name all have the full name "Variable"; a variable saved
    # twice (see :func:`merge_copies`) is unique in that its other holders are copies of it.
    unique_full_name: bool = True
    # Other object paths to the same variable (one object shared by two owners: a tie), stored once.
    aliases: tuple[tuple[str, ...], ...] = ()

    @property
    def readable_path(self) -> str:
        """The object path joined by ``/`` (unescaped local names), plus a non-variable attribute."""
        if not self.object_path:
            return self.checkpoint_key
        parts = list(self.object_path)
        if self.attribute != VARIABLE_VALUE:
            parts.append(self.attribute)
        return "/".join(parts)

    @property
    def alias_paths(self) -> list[str]:
        """The readable paths of :attr:`aliases` (``model/dec/out`` for a variable also at ``model/enc/emb``)."""
        return ["/".join(alias) for alias in self.aliases]

    @property
    def path(self) -> str:
        """A readable name: ``full_name`` (``dense/kernel``) when present and unique, else the object path."""
        return self.full_name if self.full_name and self.unique_full_name else self.readable_path


def parse_object_graph(data: bytes) -> list[Node]:
    """Decode a serialized ``TrackableObjectGraph``.

    Raises:
        DecodeError: the bytes are not a well-formed graph.
    """
    nodes = []
    for number, wire, value in iter_fields(data):
        if number == 1:
            nodes.append(_parse_node(expect_bytes(value, wire, number)))
    if not nodes:
        raise DecodeError("the object graph has no nodes")
    for node in nodes:
        for child, _ in node.children:
            if not 0 <= child < len(nodes):
                raise DecodeError(f"a child reference points at node {child} of {len(nodes)}")
        for original, _, slot in node.slot_variables:
            if not (0 <= original < len(nodes) and 0 <= slot < len(nodes)):
                raise DecodeError(f"a slot reference points outside the {len(nodes)} nodes")
    return nodes


def _parse_node(data: bytes) -> Node:
    node = Node()
    for number, wire, value in iter_fields(data):
        if number == 1:
            ref = _fields(expect_bytes(value, wire, number))
            node.children.append((to_int32(_int(ref, 1)), _str(ref, 2)))
        elif number == 2:
            att = _fields(expect_bytes(value, wire, number))
            node.attributes.append(Attribute(_str(att, 1), _str(att, 2), _str(att, 3)))
        elif number == 3:
            slot = _fields(expect_bytes(value, wire, number))
            node.slot_variables.append((to_int32(_int(slot, 1)), _str(slot, 2), to_int32(_int(slot, 3))))
        # 4 registered_saver, 5 has_checkpoint_values: not needed to name tensors.
    return node


def _fields(data: bytes) -> dict[int, tuple[int, int | bytes]]:
    # Last occurrence wins for scalar fields, as in protobuf.
    return {number: (wire, value) for number, wire, value in iter_fields(data)}


def _int(fields: dict[int, tuple[int, int | bytes]], number: int) -> int:
    if number not in fields:
        return 0
    wire, value = fields[number]
    return expect_int(value, wire, number)


def _str(fields: dict[int, tuple[int, int | bytes]], number: int) -> str:
    if number not in fields:
        return ""
    wire, value = fields[number]
    return expect_str(value, wire, number)


def _bfs(nodes: list[Node], blocked: set[int]) -> dict[int, tuple[str, ...]]:
    """Shortest path of local names from the root to each node, not passing through ``blocked``.

    Breadth first, children in stored order: the order TF uses to assign checkpoint keys.
    """
    paths: dict[int, tuple[str, ...]] = {0: ()}
    queue = deque([0])
    while queue:
        current = queue.popleft()
        for child, name in nodes[current].children:
            if child in paths or child in blocked:
                continue
            paths[child] = (*paths[current], name)
            queue.append(child)
    return paths


def _singular(list_name: str) -> str:
    name = list_name.lstrip("_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def describe(nodes: list[Node]) -> dict[str, GraphEntry]:
    """Tag every checkpoint key of the graph: model weight, optimizer state or counter."""
    optimizers = {i for i, node in enumerate(nodes) if node.slot_variables}
    for node in nodes:
        optimizers.update(child for child, name in node.children if "optimizer" in name.lower())
    optimizers.discard(0)
    model_paths = _bfs(nodes, blocked=optimizers)
    all_paths = _bfs(nodes, blocked=set())

    def variable_key(node_id: int) -> str | None:
        for att in nodes[node_id].attributes:
            if att.name == VARIABLE_VALUE:
                return att.checkpoint_key
        return None

    # slot node -> (original variable node or None, slot name)
    slots: dict[int, tuple[int | None, str]] = {}
    # Slots listed in `slot_variables` are often no one's child: their object path is
    # built like their key, "<variable path>/.OPTIMIZER_SLOT/<optimizer path>/<slot name>".
    slot_paths: dict[int, tuple[str, ...]] = {}
    for holder, node in enumerate(nodes):
        for original, listed_name, slot in node.slot_variables:
            slots[slot] = (original, listed_name)
            variable_path = model_paths.get(original, all_paths.get(original))
            if slot not in all_paths and variable_path is not None and holder in all_paths:
                slot_paths[slot] = (*variable_path, ".OPTIMIZER_SLOT", *all_paths[holder], listed_name)
    full_names = {
        i: att.full_name
        for i in model_paths
        for att in nodes[i].attributes
        if att.name == VARIABLE_VALUE and att.full_name
    }
    for opt in sorted(optimizers):
        children = dict((name, child) for child, name in nodes[opt].children)
        trainable: dict[str, int] = {}
        if "_trainable_variables" in children:
            trainable = {name: c for c, name in nodes[children["_trainable_variables"]].children}
        for list_name, list_node in children.items():
            if list_name in _NOT_SLOT_LISTS or not nodes[list_node].children:
                continue
            elements = nodes[list_node].children
            if not all(_INDEX.fullmatch(index) for _, index in elements):
                continue
            for element, index in elements:
                if element in slots or element in model_paths or variable_key(element) is None:
                    continue
                # Keras 3 lists the optimized variables in `_trainable_variables`, index for
                # index with each slot list; Keras 2 does not, but names each slot
                # "<Optimizer>/<slot>/<variable full_name>".
                matched = trainable.get(index)
                if matched is None:
                    matched = _match_by_full_name(_full_name(nodes[element]), full_names)
                slots[element] = (matched, _singular(list_name))

    aliases = _shared_variables(nodes, model_paths)
    reachable = {**slot_paths, **all_paths}
    name_counts = Counter(att.full_name for node_id in reachable for att in nodes[node_id].attributes)
    entries: dict[str, GraphEntry] = {}
    for node_id, path in reachable.items():
        object_path = model_paths.get(node_id, path)
        for att in nodes[node_id].attributes:
            if not att.checkpoint_key:
                continue
            slot_of: str | None = None
            slot_name: str | None = None
            kind: TensorKind
            last = object_path[-1].lstrip("_") if object_path else ""
            if node_id in slots:
                slot_original, slot_name = slots[node_id]
                slot_of = variable_key(slot_original) if slot_original is not None else None
                kind = "optimizer"
            elif last in _COUNTER_NAMES:
                kind = "counter"
            elif (found := bookkeeping_kind((*object_path, *att.full_name.split("/")))) is not None:
                kind = found  # a compiled metric's total/count, a Dropout's seed: never a weight
            elif node_id not in model_paths or node_id in optimizers:
                kind = "optimizer"
            else:
                kind = "model"
            entries[att.checkpoint_key] = GraphEntry(
                checkpoint_key=att.checkpoint_key,
                object_path=object_path,
                attribute=att.name,
                full_name=att.full_name,
                kind=kind,
                slot_of=slot_of,
                slot_name=slot_name,
                unique_full_name=name_counts[att.full_name] == 1,
                aliases=aliases.get(node_id, ()) if att.name == VARIABLE_VALUE else (),
            )
    return entries


Path = tuple[str, ...]


def _shared_variables(nodes: list[Node], model_paths: dict[int, Path]) -> dict[int, tuple[Path, ...]]:
    """Variables that more than one model object holds (object identity: a tie), with their other paths.

    Only distinct owners count: Keras tracks a layer under several names (``layer-0`` and
    ``layer_with_weights-0``), but each variable still has the one layer as its owner.
    Optimizer lists (which hold every trained variable) are not model objects, and neither
    are index lists (``variables/0``, ``trainable_variables/0`` of a SavedModel): they gather
    variables that named attributes own.
    """
    owners: dict[int, dict[int, str]] = {}
    for parent in model_paths:
        if nodes[parent].children and all(name.isdigit() for _, name in nodes[parent].children):
            continue  # an index list, not an owner
        for child, name in nodes[parent].children:
            if any(att.name == VARIABLE_VALUE for att in nodes[child].attributes):
                owners.setdefault(child, {}).setdefault(parent, name)
    shared: dict[int, tuple[Path, ...]] = {}
    for variable, by_owner in owners.items():
        primary = model_paths.get(variable)
        others = tuple(p for p in ((*model_paths[o], n) for o, n in by_owner.items()) if p != primary)
        if len(by_owner) > 1 and others:
            shared[variable] = tuple(sorted(others))
    return shared


def _full_name(node: Node) -> str:
    return next((att.full_name for att in node.attributes if att.name == VARIABLE_VALUE), "")


def _match_by_full_name(slot_full_name: str, full_names: dict[int, str]) -> int | None:
    """The model variable whose full name ends the slot's (``Adam/m/dense/kernel``), longest first."""
    best: tuple[int, int] | None = None
    for node_id, name in full_names.items():
        if slot_full_name.endswith("/" + name) and (best is None or len(name) > best[1]):
            best = (node_id, len(name))
    return best[0] if best else None


def merge_copies(
    entries: dict[str, GraphEntry], fingerprint: Callable[[str], Hashable | None]
) -> tuple[dict[str, GraphEntry], dict[str, str]]:
    """Model variables saved twice: one full name held by several objects that store the same value.

    Keras 3's ``model.export()`` lists every variable twice, as distinct objects with the same full
    name (``variables/0`` and ``_all_variables/8``, both ``conv2d/kernel``).  When every holder of a
    full name is a model variable and all have one ``fingerprint`` (the bundle's dtype, shape, size
    and CRC32C: the same saved bytes), the first in graph order (the model's variable order) keeps
    the full name as its readable path and the others are its copies.  Holders that store different
    values (unnamed eager variables, all ``Variable``) are left as they are.

    Returns:
        The entries, originals updated, and ``{copy key: original key}``.
    """
    holders: dict[str, list[GraphEntry]] = {}
    for e in entries.values():
        if e.attribute == VARIABLE_VALUE and e.full_name and not e.unique_full_name:
            holders.setdefault(e.full_name, []).append(e)
    out = dict(entries)
    copies: dict[str, str] = {}
    for first, *rest in holders.values():
        prints = {fingerprint(e.checkpoint_key) for e in (first, *rest)}
        if not rest or len(prints) != 1 or None in prints or any(e.kind != "model" for e in (first, *rest)):
            continue
        out[first.checkpoint_key] = replace(first, unique_full_name=True)
        copies.update((e.checkpoint_key, first.checkpoint_key) for e in rest)
    return out, copies


def read_object_graph(data: bytes) -> dict[str, GraphEntry]:
    """Parse a serialized graph and describe its keys (see :func:`describe`)."""
    return describe(parse_object_graph(data))
