"""TensorFlow/Keras side of `bridge unused`.

"Read" = the variable's resource handle is captured by the concrete function
traced from forward + loss (``tf.function(...).get_concrete_function()``): a
variable the trace never captures never enters an op.  "Reaches the loss" =
``tf.GradientTape`` gives it a gradient (exactly the variables Keras'
"Gradients do not exist for variables ..." warning leaves out); the graph walk
from the loss back to captured handles is kept as a cross-check.

:func:`restore_setup` answers the other question of `bridge unused --checkpoint`:
which checkpoint key each variable would be restored from, by TF's own object-graph walk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bridge.core.errors import MissingDependency, UnsupportedFeature, UsageError
from bridge.core.unused.report import ParameterUsage, Row, UnusedReport, make_items
from bridge.core.unused.restore import ModelVariable, OtherCall, RestoreSetup
from tf_side.object_graph import OBJECT_GRAPH_KEY, VARIABLE_VALUE, parse_object_graph


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError as e:
        raise MissingDependency(
            "TensorFlow is needed for `bridge unused` on a Keras model or tf.Module",
            hint="pip install 'ckpt-bridge[tf]'",
        ) from e
    return tf


def _tf_variable(v: Any) -> Any:
    """The ``tf.Variable`` behind a Keras 3 variable (``.value``), or ``v`` itself."""
    tf = _tf()
    if isinstance(v, tf.Variable):
        return v
    inner = getattr(v, "value", None)
    return inner if isinstance(inner, tf.Variable) else v


def variable_name(v: Any, model_name: str | None = None) -> str:
    """``path`` (Keras 3) or ``name`` without ``:0`` and without the model's own name as first component."""
    name = str(getattr(v, "path", None) or v.name)
    if name.endswith(":0"):
        name = name[:-2]
    if model_name and name.startswith(model_name + "/") and name.count("/") > 1:
        name = name[len(model_name) + 1 :]
    return name


def _call(model: Any, batch: Any, training: bool) -> Any:
    tf = _tf()
    is_keras = any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(model).__mro__)
    if is_keras:
        return model(batch, training=training)
    if isinstance(model, tf.Module) and not callable(model):
        raise UsageError("tf.Module is not callable", detail=type(model).__name__, hint="Define __call__")
    return model(batch)


def _loss(output: Any, batch: Any, loss_fn: Callable[..., Any] | None) -> Any:
    tf = _tf()
    if loss_fn is not None:
        loss = tf.convert_to_tensor(loss_fn(output, batch))
    else:
        parts = [
            tf.reduce_sum(tf.cast(t, tf.float32))
            for t in tf.nest.flatten(output)
            if hasattr(t, "dtype") and t.dtype.is_floating
        ]
        if not parts:
            raise UsageError("No floating output to differentiate", hint="Return a loss_fn from the factory")
        loss = tf.add_n(parts)
    return tf.reduce_sum(loss)


def _spec_of(batch: Any) -> Any:
    tf = _tf()

    def spec(t: Any) -> Any:
        if isinstance(t, (tf.Tensor, tf.Variable)) or hasattr(t, "__array__"):
            t = tf.convert_to_tensor(t)
            return tf.TensorSpec(t.shape, t.dtype)
        return t

    return tf.nest.map_structure(spec, batch)


def _graph_reaching(concrete: Any) -> set[int]:
    """ids of external captured handles from which a path of op inputs leads to the outputs."""
    internal_to_external = {id(internal): external for external, internal in concrete.graph.captures}
    reached: set[int] = set()
    seen_ops: set[str] = set()
    stack = [t.op for t in concrete.outputs]
    while stack:
        op = stack.pop()
        if op.name in seen_ops:
            continue
        seen_ops.add(op.name)
        for t in op.inputs:
            ext = internal_to_external.get(id(t))
            if ext is not None:
                reached.add(id(ext))
            stack.append(t.op)
    return reached


def find_unused_tf(
    model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, *, steps: int = 1, seed: int | None = 0
) -> UnusedReport:
    """Classify every variable of a Keras model or ``tf.Module`` run on ``batch``."""
    tf = _tf()
    if not hasattr(model, "trainable_variables"):
        raise UsageError(
            "Not a TensorFlow model", detail=type(model).__name__, hint="Return a Keras model or a tf.Module"
        )
    if seed is not None:
        tf.random.set_seed(seed)
    model_name = getattr(model, "name", None)
    trainable = list(model.trainable_variables)
    frozen = frozen_variables(model)
    if isinstance(batch, Mapping):
        batch = dict(batch)

    def forward_loss(inputs: Any) -> Any:
        return _loss(_call(model, inputs, True), inputs, loss_fn)

    captured: set[int] = set()
    reaching: set[int] = set()
    notes: list[str] = []
    try:
        concrete = tf.function(forward_loss).get_concrete_function(_spec_of(batch))
        captured = {id(c) for c in concrete.captured_inputs}
        reaching = _graph_reaching(concrete)
        traced = True
    except Exception as e:  # tracing is a refinement: without it, read-ness falls back to the eager tape
        traced = False
        notes.append(
            f"could not trace a concrete function ({type(e).__name__}: {str(e)[:200]}); "
            "never_read vs no_gradient told apart by the eager tape's watched variables"
        )

    grad_steps = [0] * len(trainable)
    watched: set[int] = set()
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = forward_loss(batch)
        watched |= {id(_tf_variable(v)) for v in tape.watched_variables()}
        grads = tape.gradient(loss, trainable)
        for i, g in enumerate(grads):
            if g is not None:
                grad_steps[i] += 1

    def is_read(v: Any) -> bool:
        return id(_tf_variable(v).handle) in captured if traced else id(_tf_variable(v)) in watched

    for i, v in enumerate(trainable):
        if grad_steps[i] == 0 and traced and is_read(v) and id(_tf_variable(v).handle) in reaching:
            notes.append(
                f"{variable_name(v, model_name)}: connected to the loss in the graph, "
                "but only through ops without a gradient"
            )
    return build_report(model, trainable, frozen, grad_steps, steps, is_read, notes)


def frozen_variables(model: Any) -> list[Any]:
    """Variables trainable by nature but not trainable now (``layer.trainable = False``)."""
    trainable_ids = {id(_tf_variable(v)) for v in model.trainable_variables}
    everything = list(model.variables) if hasattr(model, "variables") else list(model.trainable_variables)
    frozen_layers = [layer for layer in _sublayers(model) if not getattr(layer, "trainable", True)]
    frozen_ids = {id(_tf_variable(w)) for layer in frozen_layers for w in layer.weights}
    return [
        v
        for v in everything
        if id(_tf_variable(v)) not in trainable_ids
        and (bool(getattr(v, "trainable", False)) or id(_tf_variable(v)) in frozen_ids)
    ]


def build_report(
    model: Any,
    trainable: list[Any],
    frozen: list[Any],
    grad_steps: list[int],
    steps: int,
    is_read: Callable[[Any], bool],
    notes: list[str],
    usages: list[ParameterUsage] | None = None,
    ranks: int | None = None,
) -> UnusedReport:
    """Classify trainable variable ``i`` by the number of ``steps`` its gradient existed in and whether it was
    read (``is_read``); ``frozen`` are listed as such.  Names and scopes by layer path.  ``usages`` (one per
    trainable variable, where each step was recorded) decide ``sometimes`` / ``rank_dependent`` instead of the
    count; ``ranks``: the replicas recorded apart."""
    model_name = getattr(model, "name", None)
    rows: list[Row] = []
    for i, v in enumerate(trainable):
        usage = usages[i].usage if usages is not None else None
        if usage == "always" or (usage is None and grad_steps[i] == steps):
            continue
        if usage in ("sometimes", "rank_dependent"):
            kind = str(usage)
        elif usage is None and grad_steps[i] > 0:
            kind = "sometimes"
        else:
            kind = "no_gradient" if is_read(v) else "never_read"
        partial = kind in ("sometimes", "rank_dependent")
        rows.append(_row(v, kind, model_name, grad_steps[i] if partial else None))
    rows.extend(_row(v, "frozen", model_name, None) for v in frozen)
    return UnusedReport(
        framework="tensorflow",
        items=make_items("tensorflow", rows, steps),
        total_params=len(trainable) + len(frozen),
        total_numel=sum(_numel(v) for v in trainable + frozen),
        steps=steps,
        notes=notes,
        parameters=usages,
        ranks=ranks,
    )


def _sublayers(model: Any) -> list[Any]:
    """Keras layers inside ``model`` (Keras 3 and tf-keras), or nothing for a plain ``tf.Module``."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return []
    try:
        return list(flatten(include_self=False, recursive=True))
    except TypeError:
        return []


def _numel(v: Any) -> int:
    n = 1
    for d in v.shape:
        n *= int(d)
    return n


def _row(v: Any, kind: str, model_name: str | None, steps_used: int | None) -> Row:
    name = variable_name(v, model_name)
    scope = name.rsplit("/", 1)[0] if "/" in name else "(root)"
    return Row(name, scope, kind, _numel(v), tuple(int(d) for d in v.shape), steps_used)


# --- checkpoint vs model: the object-graph walk tf.train.Checkpoint.read does -----------------------------------


def restore_setup(model: Any, ckpt: Any, batch: Any = None) -> RestoreSetup:
    """Each variable of ``model`` with the checkpoint key a restore would read it from, and that restore call.

    TF restores by walking the checkpoint's object graph and the Python objects together,
    breadth first from the root, matching children by local name and binding each checkpoint
    node once (``restore.py: _queue_children_for_restoration``).  We do the same walk from
    each place the model may sit (the checkpoint root, as tf-keras ``save_weights`` writes it,
    or a root child: ``tf.train.Checkpoint(model=...)``) and keep the one that restores most;
    the report names the call that reads from there, and what ``model.load_weights(path)``
    (the call people try first) would do instead when that differs.
    A variable the walk never reaches gets the key it would need (its own shortest path).
    A Keras 3 weights file (``.weights.h5``, ``.keras``) is keyed by Keras' own layout instead.
    """
    tf = _tf()
    record = ckpt.get(OBJECT_GRAPH_KEY)
    if record is None and ckpt.metadata.get("layout") == "keras3":
        return RestoreSetup(_keras3_variables(model, batch), "", f"model.load_weights({str(ckpt.path)!r})")
    if record is None:
        raise UnsupportedFeature(
            "Not an object-based checkpoint",
            path=ckpt.path,
            detail=f"a {ckpt.format} file has no TF2 object graph to restore a Keras model / tf.Module from",
            hint="Save with tf.train.Checkpoint(model=model, optimizer=...).write(path); for TF1 name-based "
            "checkpoints see `bridge check`",
        )
    nodes = parse_object_graph(bytes(record.numpy().reshape(-1)[0]))
    if batch is not None and not list(getattr(model, "variables", [])):
        _call(model, batch, False)  # an unbuilt Keras model has no variables yet
    own = {id(_tf_variable(v)): v for v in model.variables}
    roots = [("", 0)] + [(name, child) for child, name in nodes[0].children]
    bound = {root: _bind(tf, model, nodes, node) for root, node in roots}
    root = max(bound, key=lambda r: (len(bound[r].keys() & own.keys()), r == "model"))
    model_name = getattr(model, "name", None)
    prefix = (_escape(root),) if root else ()
    from bridge.core.dtypes import KNOWN

    out = []
    for path, v in _variable_paths(tf, model, own):
        key = bound[root].get(id(_tf_variable(v))) or "/".join((*prefix, *map(_escape, path), _VALUE_SUFFIX))
        dtype = str(getattr(v.dtype, "name", v.dtype))  # a tf.DType, or Keras 3's dtype string
        known = dtype if dtype in KNOWN else None  # restore_v2 refuses another dtype: compared
        out.append(ModelVariable(key, variable_name(v, model_name), tuple(int(d) for d in v.shape), known))
    where = str(ckpt.metadata.get("prefix") or ckpt.path)
    at_root = len(bound[""].keys() & own.keys())
    other = _load_weights_call(model, root, where, at_root)
    return RestoreSetup(out, root, _read_call(model, root, where), other=other)


def _keras_flavour(model: Any) -> str | None:
    """``tf_keras`` (Keras 2: ``load_weights`` reads TF checkpoints), ``keras`` (Keras 3: it does not), or None."""
    mods = {c.__module__.split(".")[0] for c in type(model).__mro__}
    if "tf_keras" in mods or any(m.startswith("tensorflow.python.keras") for m in mods):
        return "tf_keras"
    return "keras" if "keras" in mods else None


def _read_call(model: Any, root: str, where: str) -> str:
    """The call that restores the model from where it sits in the checkpoint."""
    if not root:
        if _keras_flavour(model) == "tf_keras":
            return f"model.load_weights({where!r})"
        return f"tf.train.Checkpoint(model).read({where!r})"
    kwarg = f"{root}=model" if root.isidentifier() else f"**{{{root!r}: model}}"
    return f"tf.train.Checkpoint({kwarg}).read({where!r})"


def _load_weights_call(model: Any, root: str, where: str, at_root: int) -> OtherCall | None:
    """What ``model.load_weights(path)`` does when it is not the call that restores."""
    call = f"model.load_weights({where!r})"
    flavour = _keras_flavour(model)
    if flavour == "keras":
        return OtherCall(
            call,
            0,
            "Keras 3's load_weights reads only .weights.h5, .keras and .h5 files "
            "(ValueError: File format not supported); use the call above",
        )
    if flavour == "tf_keras" and root:
        why = f"it restores from the checkpoint's root, and this checkpoint keeps the model under `{root}`" + (
            " (tf-keras raises: Nothing except the root object matched)" if at_root == 0 else ""
        )
        return OtherCall(call, at_root, why + "; use the call above")
    return None


def _keras3_variables(model: Any, batch: Any) -> list[ModelVariable]:
    """What Keras 3's ``load_weights`` reads for each variable of ``model``: the paths of its own ``save_weights``.

    Keras 3 weights files (``.weights.h5``, inside ``.keras``) are keyed by the model's object
    structure (``layers/dense/vars/0``); saving the model itself gives the keys it would read,
    from Keras' own ``saving_lib`` rather than a re-implementation of it.
    """
    import tempfile
    from pathlib import Path

    import keras

    from tf_side.keras3_weights import read_keras3_weights

    if not isinstance(model, keras.Model):
        raise UnsupportedFeature(
            "A Keras 3 weights file restores into a Keras 3 model only",
            detail=f"the factory returned {type(model).__module__}.{type(model).__qualname__}",
            hint="Return the keras.Model the file was saved from",
        )
    if batch is not None and not list(getattr(model, "variables", [])):
        _call(model, batch, False)  # an unbuilt Keras model has no variables yet
    with tempfile.TemporaryDirectory() as tmp:
        own_path = Path(tmp) / "model.weights.h5"
        model.save_weights(own_path)
        with read_keras3_weights(own_path) as own:
            return [ModelVariable(r.name, r.name, r.shape) for r in own.values() if r.kind == "model"]


_VALUE_SUFFIX = ".ATTRIBUTES/VARIABLE_VALUE"


def _escape(local_name: str) -> str:
    """TF's escaping of a local name inside a checkpoint key (``trackable_utils.escape_local_name``)."""
    return local_name.replace(".", "..").replace("/", ".S")


def _bind(tf: Any, model: Any, nodes: list[Any], start: int) -> dict[int, str]:
    """id(tf.Variable) -> checkpoint key, binding Python objects to checkpoint nodes as TF's restore does."""
    found: dict[int, str] = {}
    bound = {start}
    queue = deque([(model, start)])
    while queue:
        obj, node_id = queue.popleft()
        key = next((a.checkpoint_key for a in nodes[node_id].attributes if a.name == VARIABLE_VALUE), None)
        if key and isinstance(_tf_variable(obj), tf.Variable):
            found[id(_tf_variable(obj))] = key
        children = tf.train.TrackableView.children(obj)
        for child, name in nodes[node_id].children:
            if child not in bound and name in children:
                bound.add(child)
                queue.append((children[name], child))
    return found


def _variable_paths(tf: Any, model: Any, own: dict[int, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """(shortest local-name path, variable) for each of ``own``, breadth first like TF's key assignment."""
    out: dict[int, tuple[tuple[str, ...], Any]] = {}
    seen = {id(model)}
    queue: deque[tuple[Any, tuple[str, ...]]] = deque([(model, ())])
    while queue:
        obj, path = queue.popleft()
        vid = id(_tf_variable(obj))
        if vid in own and vid not in out:
            out[vid] = (path, own[vid])
        for name, child in tf.train.TrackableView.children(obj).items():
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, (*path, name)))
    # Variables TF would not save (not reachable as trackables) still deserve a row: keyed by name.
    return list(out.values()) + [((variable_name(v),), v) for vid, v in own.items() if vid not in out]
