"""`bridge unused` on a legacy TF1 training graph (``.meta``), read without TensorFlow.

A ``.meta`` file is a serialized ``MetaGraphDef``; we decode the few fields we need
with :mod:`tf_side.proto`, as the bundle reader does::

    MetaGraphDef { GraphDef graph_def = 2; map<string, CollectionDef> collection_def = 4; }
    GraphDef     { repeated NodeDef node = 1; }
    NodeDef      { string name = 1; string op = 2; repeated string input = 3; map<string, AttrValue> attr = 5; }
    CollectionDef{ NodeList node_list = 1 {repeated string value = 1};
                   BytesList bytes_list = 2 {repeated bytes value = 1}; }
    VariableDef  { string variable_name = 1; string snapshot_name = 3; bool is_resource = 5; }

Not importing the graph into TensorFlow is deliberate: graphs written by older TF
(google-research BERT's ``run_pretraining.py`` under TF 1.11) hold ops the installed
TF no longer registers (``MapAndBatchDatasetV2``), and ``import_meta_graph`` refuses them.

"Reaches the loss" = the variable's node (``VariableV2`` or ``VarHandleOp``) is in the
backward closure of the loss over *data* inputs; reads go through ``var/read``
(``Identity``) or ``ReadVariableOp``, both of which take the variable node as input.
Control inputs (``^name``) are not followed: they order execution but carry no value,
so no gradient flows along them, and following them would pull in initializers and
update ops.  Ops that TF registers as non-differentiable (``StopGradient``, ``Shape``...)
cut the walk, so ``tf.gradients`` agrees with the result.  Functional control flow
(``While``, ``If``, ``PartitionedCall``: bodies live in the function library) counts as
using all of its inputs, which can only hide an unused variable, never invent one.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, TensorNotFound, UsageError
from bridge.core.unused.report import Row, UnusedReport, make_items
from tf_side.proto import DecodeError, expect_bytes, expect_int, expect_str, iter_fields, to_int64

FRAMEWORK = "tf1-graph"
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Ops that pass a variable's value on unchanged: follow them when looking for a real read.
_PASS_THROUGH = frozenset(
    {"Identity", "RefIdentity", "ReadVariableOp", "Snapshot", "Enter", "RefEnter", "Switch", "RefSwitch",
     "Merge", "RefMerge", "Exit", "RefExit", "NextIteration", "RefNextIteration"}
)  # fmt: skip
# Consumers that are not a use of the value: saving, initialising, optimizer updates, shapes.
_NOT_A_READ = frozenset(
    {"SaveV2", "Save", "SaveSlices", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
     "AssignAddVariableOp", "AssignSubVariableOp", "IsVariableInitialized", "VarIsInitializedOp",
     "DestroyResourceOp", "Shape", "ShapeN", "Size", "Rank", "VariableShape"}
)  # fmt: skip
_UPDATE_OP = re.compile(r"(Resource)?(Sparse)?(Apply|Scatter)[A-Z]\w*")
# Registered as non-differentiable in TF (ops.NotDifferentiable / StopGradient): no gradient crosses them.
_NO_GRADIENT = frozenset(
    {"StopGradient", "PreventGradient", "Shape", "ShapeN", "Size", "Rank", "VariableShape", "ZerosLike",
     "OnesLike", "ArgMax", "ArgMin", "IsVariableInitialized", "VarIsInitializedOp"}
)  # fmt: skip
# Ops that are never the loss, not offered as candidates (L2Loss: global-norm clipping makes one per variable).
_NOT_A_LOSS = frozenset(
    {"Const", "NoOp", "Placeholder", "ScalarSummary", "MergeSummary", "SaveV2", "RestoreV2", "L2Loss"}
)


@dataclass
class GraphNode:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)  # data inputs: node names (output index dropped)
    shape: tuple[int, ...] | None = None  # the ``shape`` attr (variables)


@dataclass
class MetaGraph:
    """The nodes of a ``MetaGraphDef`` and the collections a training graph keeps."""

    path: Path
    nodes: dict[str, GraphNode]
    trainable: list[str]  # variable node names, in collection order
    losses: list[str]  # tensor names of the ``losses`` collection

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for name in node.inputs:
                out.setdefault(name, []).append(node.name)
        return out


def read_meta_graph(path: str | Path) -> MetaGraph:
    """Decode the graph and the ``trainable_variables`` / ``losses`` collections of a ``.meta`` file.

    Raises:
        CheckpointNotFound: no file at ``path``.
        CorruptCheckpoint: the bytes are not a binary ``MetaGraphDef``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound("MetaGraph file not found", path=path, hint="Give the .meta file Saver wrote")
    try:
        graph_def, collections = b"", dict[str, bytes]()
        for number, wire, value in iter_fields(path.read_bytes()):
            if number == 2:
                graph_def = expect_bytes(value, wire, number)
            elif number == 4:  # map entry {string key = 1; CollectionDef value = 2}
                key, collection = _map_entry(expect_bytes(value, wire, number))
                collections[key] = collection
        nodes = {n.name: n for n in _nodes(graph_def)}
        trainable = [_variable_node(v) for v in _collection(collections.get("trainable_variables", b""), 2)]
        losses = [_text(v) for v in _collection(collections.get("losses", b""), 1)]
    except (DecodeError, UnicodeDecodeError) as e:
        raise CorruptCheckpoint(
            "Not a binary MetaGraphDef",
            path=path,
            detail=str(e),
            hint="Give the .meta file tf.compat.v1.train.Saver wrote (export_meta_graph(..., as_text=False))",
        ) from e
    if not nodes:
        raise CorruptCheckpoint(
            "Empty MetaGraphDef",
            path=path,
            detail="the graph has no nodes",
            hint="Give the .meta file tf.compat.v1.train.Saver wrote",
        )
    return MetaGraph(path, nodes, [t for t in trainable if t in nodes], losses)


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise DecodeError("expected a string field")
    return value.decode("utf-8")


def _nodes(graph_def: bytes) -> Iterable[GraphNode]:
    for number, wire, value in iter_fields(graph_def):
        if number != 1:
            continue  # 2 function library, 4 versions
        node = GraphNode("", "")
        for n, w, v in iter_fields(expect_bytes(value, wire, number)):
            if n == 1:
                node.name = expect_str(v, w, n)
            elif n == 2:
                node.op = expect_str(v, w, n)
            elif n == 3:
                text = expect_str(v, w, n)
                if not text.startswith("^"):  # "^name" is a control input: no value, no gradient
                    node.inputs.append(_node_of(text))
            elif n == 5:
                key, attr = _map_entry(expect_bytes(v, w, n))
                if key == "shape":
                    node.shape = _shape_attr(attr)
        yield node


def _map_entry(data: bytes) -> tuple[str, bytes]:
    entry = {n: (w, v) for n, w, v in iter_fields(data)}
    key = expect_str(entry[1][1], entry[1][0], 1) if 1 in entry else ""
    return key, expect_bytes(entry[2][1], entry[2][0], 2) if 2 in entry else b""


def _shape_attr(attr: bytes) -> tuple[int, ...] | None:
    """``AttrValue.shape`` (field 7): ``TensorShapeProto { repeated Dim dim = 2 {int64 size = 1}; }``."""
    for n, w, v in iter_fields(attr):
        if n == 7:
            dims = []
            for dn, dw, dv in iter_fields(expect_bytes(v, w, n)):
                if dn == 3 and expect_int(dv, dw, dn):
                    return None  # unknown rank
                if dn == 2:
                    size = {fn: fv for fn, fw, fv in iter_fields(expect_bytes(dv, dw, dn))}.get(1, 0)
                    dims.append(to_int64(size) if isinstance(size, int) else -1)
            return tuple(dims)
    return None


def _collection(data: bytes, kind: int) -> list[bytes]:
    """The values of a ``CollectionDef``'s ``node_list`` (1) or ``bytes_list`` (2)."""
    out = []
    for n, w, v in iter_fields(data):
        if n == kind:
            out += [expect_bytes(x, xw, xn) for xn, xw, x in iter_fields(expect_bytes(v, w, n)) if xn == 1]
    return out


def _variable_node(variable_def: bytes) -> str:
    for n, w, v in iter_fields(variable_def):
        if n == 1:
            return _node_of(expect_str(v, w, n))
    raise DecodeError("a VariableDef without variable_name")


def _node_of(tensor: str) -> str:
    """``name:1`` -> ``name``; ``name`` -> ``name``."""
    head, sep, tail = tensor.rpartition(":")
    return head if sep and tail.isdigit() else tensor


def backward_closure(graph: MetaGraph, starts: Iterable[str], *, cut: frozenset[str] = frozenset()) -> set[str]:
    """Every node a path of data inputs leads from to one of ``starts``; ``cut`` ops are entered, not crossed."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        name = stack.pop()
        if name in seen or name not in graph.nodes:
            continue
        seen.add(name)
        node = graph.nodes[name]
        if node.op not in cut:
            stack.extend(node.inputs)
    return seen


def is_read(graph: MetaGraph, variable: str, consumers: dict[str, list[str]]) -> bool:
    """Does any op use the variable's value (not counting save, init, optimizer updates, shape queries)?"""
    seen: set[str] = set()
    stack = list(consumers.get(variable, ()))
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        op = graph.nodes[name].op
        if op in _PASS_THROUGH:
            stack.extend(consumers.get(name, ()))
        elif op not in _NOT_A_READ and not _UPDATE_OP.fullmatch(op):
            return True
    return False


def resolve_tensors(graph: MetaGraph, tensors: Sequence[str]) -> list[str]:
    """Tensor (``loss:0``) or op (``loss``) names -> node names; a name the graph lacks is an error."""
    if not tensors:
        raise UsageError(
            "No loss or output tensor given",
            path=graph.path,
            detail="the graph alone does not say what is trained",
            hint="Name it with --loss (repeatable), e.g. " + _candidates_text(graph),
        )
    out = []
    for tensor in tensors:
        name = _node_of(tensor)
        node = graph.nodes.get(name)
        if node is None:
            close = difflib.get_close_matches(name, list(graph.nodes), n=3, cutoff=0.6)
            raise TensorNotFound(
                "No such tensor in the graph",
                path=graph.path,
                tensor=tensor,
                hint=(
                    f"Did you mean {', '.join(c + ':0' for c in close)}?"
                    if close
                    else "Candidates: " + _candidates_text(graph)
                ),
            )
        if node.op == "NoOp" or node.op.startswith("Assign") or _UPDATE_OP.fullmatch(node.op):
            raise UsageError(
                "Not a loss",
                path=graph.path,
                tensor=tensor,
                detail=f"a {node.op} op updates variables (a train op?); gradients flow from the loss it minimizes",
                hint="Give the loss tensor instead, e.g. " + _candidates_text(graph),
            )
        out.append(name)
    return out


def candidates(graph: MetaGraph, limit: int = 8) -> list[str]:
    """Likely loss tensors: the ``losses`` collection, then ops named like a loss, then the graph's sinks."""
    found = list(dict.fromkeys(graph.losses))
    lossy = [
        n.name
        for n in graph.nodes.values()
        if "loss" in n.name.rsplit("/", 1)[-1].lower()
        and n.op not in _NOT_A_LOSS
        and not n.name.startswith("gradients")
    ]
    found += [f"{n}:0" for n in sorted(lossy, key=lambda n: (n.count("/"), len(n)))]
    if not found:
        consumed = set(graph.consumers())
        sinks = [
            n.name
            for n in graph.nodes.values()
            if n.name not in consumed
            and n.op not in _NOT_A_LOSS
            and n.op not in _NOT_A_READ
            and not _UPDATE_OP.fullmatch(n.op)
        ]
        found += [f"{n}:0" for n in sinks[-limit:]]
    return list(dict.fromkeys(found))[:limit]


def _candidates_text(graph: MetaGraph) -> str:
    names = candidates(graph)
    return ", ".join(f"--loss {n}" for n in names) if names else "--loss NAME:0 (see the graph in TensorBoard)"


def find_unused_meta_graph(path: str | Path, tensors: Sequence[str]) -> UnusedReport:
    """Trainable variables of a TF1 graph outside the backward closure of ``tensors`` (the loss/outputs).

    Args:
        path: a ``.meta`` file (``MetaGraphDef``) written by ``tf.compat.v1.train.Saver``.
        tensors: loss or output tensor names (``loss:0``); gradients flow from them.

    Returns:
        An :class:`~bridge.core.unused.report.UnusedReport` (framework ``tf1-graph``): ``never_read`` when no op
        uses the variable's value, ``no_gradient`` when ops read it but none of their results reaches the loss.

    Raises:
        UsageError: no tensor given (the message lists candidates), or a train op given.
        TensorNotFound: a tensor the graph lacks (with close names).
    """
    graph = read_meta_graph(path)
    starts = resolve_tensors(graph, tensors)
    reached = backward_closure(graph, starts, cut=_NO_GRADIENT)
    connected = backward_closure(graph, starts)
    consumers = graph.consumers()
    rows: list[Row] = []
    notes: list[str] = []
    for name in graph.trainable:
        if name in reached:
            continue
        if name in connected:
            notes.append(f"{name}: connected to the loss only through ops without a gradient (e.g. StopGradient)")
        shape = graph.nodes[name].shape or ()
        kind = "no_gradient" if is_read(graph, name, consumers) else "never_read"
        scope = name.rsplit("/", 1)[0] if "/" in name else "(root)"
        rows.append(Row(name, scope, kind, _numel(shape), shape))
    shapes = [graph.nodes[n].shape or () for n in graph.trainable]
    return UnusedReport(
        framework=FRAMEWORK,
        items=make_items(FRAMEWORK, rows, 1),
        total_params=len(graph.trainable),
        total_numel=sum(_numel(s) for s in shapes),
        notes=notes,
        losses=list(tensors),
    )


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if all(d >= 0 for d in shape) else 0
