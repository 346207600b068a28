"""Generic Keras layers <-> ``torch.nn`` modules, matched by structure.

Keras layer names (``dense_1``, ``conv2d``) do not name torch modules (``fc2``, ``conv``),
so this pack has no name rules of its own.  For one source + target pair, :func:`bind`
lists the Keras layers that hold weights and the torch modules that hold parameters,
pairs them by kind, in order, and generates exact-name rules with the transforms of
``TABLE``; the matcher then checks shapes and explains leftovers as for any pack.

Where the Keras layers come from (the order is each layer's position in the model):

* Keras 3 ``.weights.h5`` / ``.keras``: ``layers/<snake_case class>[_N]/vars/<i>``
  (RNN weights under ``/cell``).  The group name gives the class; the variable index
  gives the role (``vars/0`` of a Dense is its kernel).  Keras numbers a class's layers
  ``dense, dense_1, dense_2 ...`` in model order, so the order *within a kind* is known;
  the file does not keep the order across kinds, and none is needed: layers are
  paired with torch modules kind by kind.
* Keras 2 / tf-keras ``.h5``: the ``layer_names`` attribute (model order, which the
  reader keeps); roles from the weight names (``dense/kernel:0``).
* TF2 object checkpoints and SavedModel ``variables/``: the object path up to the
  variable (``model/layer_with_weights-3``, Keras 3 ``model/_operations/5``) in natural
  order (numbers compared as numbers); roles from the variable's full name.
* Keras 3 ``model.export()`` SavedModels: no layers in the object graph, only root lists of
  variables; ``variables/N`` is the model's variable order, and each variable's full name
  (``lstm/lstm_cell/kernel``, the reader's path) gives its layer and role.  Each variable is
  saved again under ``_all_variables/M``: the reader pairs the copies with their originals
  (metadata ``copies``), and they are expected leftovers only when byte-equal.  tf-keras'
  ``tf.saved_model.save`` keeps a root ``variables`` list beside the layers (its RNN cells'
  weights are keyed there): read the same way.

Kinds of Keras 2 and TF2 layers are inferred from their roles and shapes (a
``recurrent_kernel`` 4 gates wide is an LSTM).  A ``Bidirectional`` wrapper is two layers, its
``forward_layer`` then its ``backward_layer`` (Keras 3 and TF2 attribute names; Keras 2 weight
paths ``bidirectional/forward_lstm/...``), each of the wrapped kind.

A torch module offers one slot per Keras layer it takes: an ``nn.LSTM``/``nn.GRU`` with
``num_layers=N`` takes the next N Keras layers of its kind, in order (``*_l0`` ... ``*_l{N-1}``),
and a bidirectional one takes a Bidirectional layer's two directions per layer (``*_l{k}``,
``*_l{k}_reverse``); Bidirectional layers pair only with bidirectional modules.  A torch module's kind comes from its
class when the target is built (``--target file.py:factory``), else from its
parameter names and shapes (a reference checkpoint), with the assumptions noted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import Any

from bridge.core.factory import is_factory
from bridge.core.model import Checkpoint
from bridge.core.packs import Copy, Detection, Incompatible, Matching, Optional_, Output, Rule, RulePack, TensorFlowSide
from bridge.core.plan import Assumption, TargetModule, TargetSpec
from bridge.core.transforms import parse
from bridge.families.keras import hooks
from bridge.rules import writers

Shape = tuple[int, ...]
TransformSpec = str | Callable[[Shape], str]


def _depthwise(shape: Shape) -> str:
    kh, kw, cin, mult = shape
    # TF's depthwise output channel k*mult + q reads input channel k: torch's groups=in order.
    return f"permute(2,3,0,1)|reshape({cin * mult},1,{kh},{kw})"


def _einsum_kernel(shape: Shape) -> str:
    # Dense-like equations (``ab,bc->ac``, ``abc,cde->abde``): axis 0 is the input axis.
    if len(shape) == 2:
        return "transpose"
    return f"reshape({shape[0]},{_prod(shape[1:])})|transpose"


def _einsum_bias(shape: Shape) -> str:
    return "identity" if len(shape) == 1 else f"reshape({_prod(shape)})"


def _block(spec: Callable[[Shape], str], k: int) -> Callable[[Shape], str]:
    """``spec``, then block ``k`` of 3 along axis 0: Keras' query, key, value are torch's one ``in_proj_*``."""
    return lambda shape: f"{spec(shape)}|block({k},3)"


def _attention_output(shape: Shape) -> str:
    # [heads, head_dim, E] -> torch's out_proj.weight [E, heads * head_dim] (heads-major, as torch concatenates)
    return f"reshape({_prod(shape[:-1])},{shape[-1]})|transpose"


def _prod(shape: Iterable[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


_GRU = "gates(zrh->rzh)"  # Keras z, r, h -> torch r, z, n
_QKV = ("query", "key", "value")


@dataclass(frozen=True)
class KindRule:
    """How one Keras layer kind becomes one torch module kind.

    ``weights``: (Keras role, torch parameter, transform) rows; ``{l}`` in a parameter is the RNN
    layer it belongs to (``l0``; ``l1``, ``l0_reverse`` in a stacked or bidirectional RNN); a Keras role may feed
    several parameters (a GRU's two bias rows).  ``extra``: torch tensors with no Keras
    counterpart: the reason and what convert writes (``zeros``).  ``sums``: (Keras role, torch
    parameters) where the Keras value is the sum of several torch ones (an LSTM's one bias is
    ``bias_ih + bias_hh``): PyTorch -> Keras adds them (``sum(k,n)``), in place of the role's
    ``weights`` row and of the ``extra`` rows it names.
    """

    torch_kind: str
    torch_class: str
    weights: tuple[tuple[str, str, TransformSpec], ...]
    extra: tuple[tuple[str, str, str | None], ...] = ()
    sums: tuple[tuple[str, tuple[str, ...]], ...] = ()
    note: str | None = None


_CONV = {1: "permute(2,1,0)", 2: "permute(3,2,0,1)", 3: "permute(4,3,0,1,2)"}  # [k..., in, out] -> [out, in, k...]

TABLE: dict[str, KindRule] = {
    "dense": KindRule("linear", "Linear", (("kernel", "weight", "transpose"), ("bias", "bias", "identity"))),
    "einsum_dense": KindRule(
        "linear",
        "Linear",
        (("kernel", "weight", _einsum_kernel), ("bias", "bias", _einsum_bias)),
        note="EinsumDense taken as dense-like: kernel axis 0 is the input axis, the others the output",
    ),
    **{
        f"conv{n}d": KindRule(f"conv{n}d", f"Conv{n}d", (("kernel", "weight", p), ("bias", "bias", "identity")))
        for n, p in _CONV.items()
    },
    "depthwise_conv2d": KindRule(
        "depthwise_conv2d",
        "Conv2d(groups=in_channels)",
        (("kernel", "weight", _depthwise), ("bias", "bias", "identity")),
    ),
    "batch_normalization": KindRule(
        "batch_norm",
        "BatchNorm",
        (
            ("gamma", "weight", "identity"),
            ("beta", "bias", "identity"),
            ("moving_mean", "running_mean", "identity"),
            ("moving_variance", "running_var", "identity"),
        ),
        extra=(("num_batches_tracked", "BatchNorm step counter: newly initialised (zeros), harmless", "zeros"),),
        note="BatchNormalization epsilon: Keras' default is 1e-3, torch's 1e-5; the twin must use the Keras "
        "value (nn.BatchNorm2d(..., eps=1e-3)); momentum 0.99 (Keras) is 0.01 in torch's convention",
    ),
    "layer_normalization": KindRule(
        "layer_norm",
        "LayerNorm",
        (("gamma", "weight", "identity"), ("beta", "bias", "identity")),
        note="LayerNormalization epsilon: Keras' default is 1e-3, torch's 1e-5; the twin must use the Keras value",
    ),
    "embedding": KindRule("embedding", "Embedding", (("embeddings", "weight", "identity"),)),
    "lstm": KindRule(
        "lstm",
        "LSTM",
        (
            ("kernel", "weight_ih_{l}", "transpose"),
            ("recurrent_kernel", "weight_hh_{l}", "transpose"),
            ("bias", "bias_ih_{l}", "identity"),
        ),
        extra=(("bias_hh_{l}", "Keras' LSTM has one bias, torch adds two: the second is written as zeros", "zeros"),),
        sums=(("bias", ("bias_ih_{l}", "bias_hh_{l}")),),
        note="LSTM gates: Keras i, f, c, o is torch's i, f, g, o (no reorder)",
    ),
    "gru": KindRule(
        "gru",
        "GRU",
        (
            ("kernel", "weight_ih_{l}", "transpose|" + _GRU),
            ("recurrent_kernel", "weight_hh_{l}", "transpose|" + _GRU),
            ("bias", "bias_ih_{l}", "row(0)|" + _GRU),
            ("bias", "bias_hh_{l}", "row(1)|" + _GRU),
        ),
        note="GRU gates: Keras z, r, h is torch's r, z, n (gates(zrh->rzh)); reset_after=True only: torch's GRU "
        "applies the reset gate after the recurrent matmul",
    ),
    "multi_head_attention": KindRule(
        "multi_head_attention",
        "MultiheadAttention",
        (
            *((f"{p}_kernel", "in_proj_weight", _block(_einsum_kernel, k)) for k, p in enumerate(_QKV)),
            *((f"{p}_bias", "in_proj_bias", _block(_einsum_bias, k)) for k, p in enumerate(_QKV)),
            ("output_kernel", "out_proj.weight", _attention_output),
            ("output_bias", "out_proj.bias", "identity"),
        ),
        note="MultiHeadAttention: query, key and value kernels [E, heads, head_dim] are blocks 0, 1, 2 of torch's "
        "in_proj_weight [3E, E] (kdim = vdim = E, key_dim = value_dim = E / heads); the twin must use Keras' number "
        "of heads and batch_first=True, and be called as self-attention when the Keras layer is",
    ),
}

# Keras 3 H5IOStore keeps variables by index: each kind's variable order (Keras 3.15 build()).
# A layer built without some of them (use_bias=False, center=False) has fewer: counts decide.
KERAS3_ROLES: dict[str, dict[int, tuple[str, ...]]] = {
    "dense": {2: ("kernel", "bias"), 1: ("kernel",)},
    "einsum_dense": {2: ("kernel", "bias"), 1: ("kernel",)},
    **{f"conv{n}d": {2: ("kernel", "bias"), 1: ("kernel",)} for n in (1, 2, 3)},
    "depthwise_conv2d": {2: ("kernel", "bias"), 1: ("kernel",)},
    "batch_normalization": {4: ("gamma", "beta", "moving_mean", "moving_variance"), 2: ("moving_mean",
                                                                                         "moving_variance")},
    "layer_normalization": {2: ("gamma", "beta")},
    "embedding": {1: ("embeddings",)},
    "lstm": {3: ("kernel", "recurrent_kernel", "bias"), 2: ("kernel", "recurrent_kernel")},
    "gru": {3: ("kernel", "recurrent_kernel", "bias"), 2: ("kernel", "recurrent_kernel")},
    # Kept by sublayer (query_dense/vars/0 ...: indices "0/0", see _ATTENTION_SUBLAYERS), then by variable.
    "multi_head_attention": {
        8: tuple(f"{p}_{r}" for p in (*_QKV, "output") for r in ("kernel", "bias")),
        4: tuple(f"{p}_kernel" for p in (*_QKV, "output")),
    },
    # One direction (forward_layer / backward_layer) of a Bidirectional LSTM or GRU: its kind comes from shapes.
    "bidirectional": {3: ("kernel", "recurrent_kernel", "bias"), 2: ("kernel", "recurrent_kernel")},
}  # fmt: skip

# Keras-side tensors that are not weights of a layer the twin has.
COPIES = (Copy(r".*seed_generator.*", "random-number state of a Dropout/noise layer, not a weight"),)
INCOMPATIBLE = (
    Incompatible(r"gru", "GRU(reset_after=False) (one bias row) computes a different function than torch.nn.GRU"),
)


@dataclass
class Layer:
    """A Keras layer that holds weights: where they live, what it is, its weights by role."""

    key: str
    kind: str  # a TABLE key, or "" when not recognised
    label: str
    order: tuple[Any, ...]
    weights: dict[str, tuple[str, Shape]] = field(default_factory=dict)  # role -> (tensor name, shape)
    direction: str = ""  # "forward" / "backward": one direction of a Bidirectional wrapper


# --------------------------------------------------------------------------- Keras side

_SUFFIX = re.compile(r"(.+?)(?:_(\d+))?")
_ATTRIBUTES = "/.ATTRIBUTES/VARIABLE_VALUE"
# The root's variable lists of a Keras 3 ``model.export()`` SavedModel (``variables/0``); tf-keras'
# ``tf.saved_model.save`` keeps a root ``variables`` list too, beside the layers.
_ROOT_LISTS = frozenset({"variables", "trainable_variables", "non_trainable_variables", "_all_variables"})
_DIRECTIONS = ("", "forward", "backward")  # a plain layer; a Bidirectional's forward_layer, then backward_layer
# Keras 2 weight paths of a Bidirectional: ``bidirectional/forward_lstm/lstm_cell/kernel``.
_KERAS2_DIRECTION = re.compile(r"[^/]+/(forward|backward)_[^/]+/[^/]+/[^/]+")
# A MultiHeadAttention's four EinsumDense sublayers: Keras 3 files keep ``query_dense/vars/0``, TF2 object graphs
# ``_query_dense/_kernel``; their weights are the attention layer's, by sublayer.
_ATTENTION_SUBLAYERS = ("query", "key", "value", "output")
_ATTENTION_SUBLAYER = re.compile(r"(.+)/_?(query|key|value|output)_dense")


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def keras_layers(entries: Iterable[tuple[str, Shape, str | None]], layout: str) -> list[Layer]:
    """Group Keras-side tensors ``(name, shape, readable path)`` into layers, in model order."""
    layers: dict[str, Layer] = {}
    for position, (name, shape, path) in enumerate(entries):
        if layout == "keras3":
            m = re.fullmatch(r"(.+)/vars/(\d+)", name)
            if m is None:
                continue
            key, index = m.group(1).removesuffix("/cell"), m.group(2)
            sub = _ATTENTION_SUBLAYER.fullmatch(key)
            if sub and re.fullmatch(r"(.*/)?multi_head_attention(_\d+)?", sub.group(1)):
                key, index = sub.group(1), f"{_ATTENTION_SUBLAYERS.index(sub.group(2))}/{index}"
            wrapper, direction = _wrapped(key)
            stem = wrapper.rsplit("/", 1)[-1]
            sm = _SUFFIX.fullmatch(stem)
            cls, number = (sm.group(1), int(sm.group(2) or 0)) if sm else (stem, 0)
            label = f"{stem}/{direction}_layer" if direction else stem
            order: tuple[Any, ...] = (cls, number, _natural(wrapper), _DIRECTIONS.index(direction))
            layer = layers.setdefault(key, Layer(key, cls, label, order, direction=direction))
            layer.weights[index] = (name, shape)
            continue
        if layout == "keras2":
            parts = name.removeprefix("model_weights/").split("/")
            readable = (path or name).split(":")[0]
            dm = _KERAS2_DIRECTION.fullmatch(readable)
            direction = dm.group(1) if dm else ""
            key, role = parts[0] + (f"/{direction}_layer" if direction else ""), readable.rsplit("/", 1)[-1]
            order = (position,)
        else:  # TF2 object graph: the key without its attribute suffix
            if not name.endswith(_ATTRIBUTES):
                continue
            object_path = name[: -len(_ATTRIBUTES)]
            owner, _, local = object_path.rpartition("/")
            if owner in _ROOT_LISTS:  # Keras' export: a flat list of variables, named by their full names
                if not path or path == object_path:
                    continue  # no full name of its own: a second copy (see COPIES) or an unnamed variable
                key, role, direction = _from_full_name(path)
                order = (*_natural(object_path), _DIRECTIONS.index(direction))
                layer = layers.setdefault(key, Layer(key, "", key, order, direction=direction))
                layer.weights[role] = (name, shape)
                layer.order = min(layer.order, order)  # the layer's first variable in the list
                continue
            key = owner.removesuffix("/cell")
            role = (path or local).rsplit("/", 1)[-1].lstrip("_")
            sub = _ATTENTION_SUBLAYER.fullmatch(key)
            if sub:  # a MultiHeadAttention's sublayer: its weights are the attention layer's
                key, role = sub.group(1), f"{sub.group(2)}_{role}"
            wrapper, direction = _wrapped(key)
            order = (*_natural(wrapper), _DIRECTIONS.index(direction))
        layer = layers.setdefault(key, Layer(key, "", key, order, direction=direction))
        layer.weights[role] = (name, shape)
        if path and "/" in path:  # the Keras layer's name (and, in a Bidirectional, its direction's)
            layer.label = "/".join(path.split("/")[: 2 if direction else 1])
    out = sorted(layers.values(), key=lambda x: x.order)
    for layer in out:
        if layout == "keras3":
            _roles_by_index(layer)
        if layout != "keras3" or layer.direction:
            layer.kind = _infer_kind(layer)
    return out


def _from_full_name(full_name: str) -> tuple[str, str, str]:
    """``(layer, role, direction)`` of a variable's full name: ``dense_1/bias``, ``lstm/lstm_cell/kernel``,
    ``bidirectional/forward_lstm_1/lstm_cell/kernel`` (one direction of a Bidirectional)."""
    layer, _, role = full_name.rpartition("/")
    cell = re.fullmatch(r"(.+)/[^/]*cell", layer)  # an RNN's weights belong to its cell
    if cell is None:
        return layer, role, ""
    direction = re.fullmatch(r".+/(forward|backward)_[^/]+", cell.group(1))
    return cell.group(1), role, direction.group(1) if direction else ""


def _wrapped(key: str) -> tuple[str, str]:
    """``(wrapper key, direction)`` of one direction of a Bidirectional (Keras 3 and TF2 attribute names);
    ``(key, "")`` for any other layer."""
    m = re.fullmatch(r"(.+)/(forward|backward)_layer", key)
    return (m.group(1), m.group(2)) if m else (key, "")


def _roles_by_index(layer: Layer) -> None:
    table = KERAS3_ROLES.get(layer.kind)
    roles = table.get(len(layer.weights)) if table else None
    if roles is None:
        layer.kind = ""
        return
    by_index = [layer.weights[k] for k in sorted(layer.weights, key=_natural)]
    layer.weights = dict(zip(roles, by_index, strict=True))


def _infer_kind(layer: Layer) -> str:
    """A Keras 2 / TF2 layer's kind from its variables' roles and shapes."""
    w = {role: shape for role, (_, shape) in layer.weights.items()}
    if "depthwise_kernel" in w:
        layer.weights["kernel"] = layer.weights.pop("depthwise_kernel")
        return "depthwise_conv2d"
    if "embeddings" in w:
        return "embedding"
    if "query_kernel" in w:
        return "multi_head_attention"
    if "recurrent_kernel" in w and "kernel" in w:
        units = w["recurrent_kernel"][0]
        gates = w["kernel"][-1] // units if units else 0
        return {4: "lstm", 3: "gru"}.get(gates, "")
    if "moving_mean" in w:
        return "batch_normalization"
    if "gamma" in w or "beta" in w:
        return "layer_normalization"
    kernel = w.get("kernel")
    if kernel is None:
        return ""
    if len(kernel) == 2:
        return "dense"
    if len(kernel) == 4 and "bias" in w and w["bias"][0] == kernel[2] * kernel[3] != kernel[3]:
        return "depthwise_conv2d"  # Keras 3 names the depthwise kernel `kernel`; its bias is in*mult wide
    if len(kernel) == 4 and layer.label.startswith("depthwise"):
        return "depthwise_conv2d"
    return {3: "conv1d", 4: "conv2d", 5: "conv3d"}.get(len(kernel), "")


def _keras_layout(fmt: str, metadata: dict[str, Any]) -> str | None:
    layout = metadata.get("layout")
    if layout == "keras3":
        return "keras3"
    if layout in ("keras2-full", "keras2-weights"):
        return "keras2"
    if fmt in ("tf-checkpoint", "saved-model") and metadata.get("style", "object-based") == "object-based":
        return "tf2"
    return None


def claims_target(target: str) -> bool:
    """A PyTorch source goes to Keras when the target is a Keras model built by the user's code (``file.py:factory``)
    or a Keras 3 weights file (or a folder holding one, as convert writes)."""
    from pathlib import Path

    path = Path(target)
    return (
        is_factory(target)
        or target.endswith((".weights.h5", ".keras"))
        or (path.is_dir() and any(path.glob("*.weights.h5")))
    )


def looks_keras(fmt: str, metadata: dict[str, Any], entries: list[tuple[str, Shape, str | None]]) -> bool:
    """Whether a checkpoint's model tensors form Keras layers this pack knows."""
    layout = _keras_layout(fmt, metadata)
    return layout is not None and any(layer.kind in TABLE for layer in keras_layers(entries, layout))


# --------------------------------------------------------------------------- torch side


def infer_modules(tensors: dict[str, Shape], keras_kinds: set[str]) -> tuple[list[TargetModule], list[str]]:
    """Modules of a PyTorch state dict known by names and shapes only (a reference checkpoint)."""
    groups: dict[str, dict[str, Shape]] = {}
    for name, shape in tensors.items():
        owner, _, param = name.rpartition(".")
        groups.setdefault(owner, {})[param] = shape
    notes: list[str] = []
    modules = []
    # An nn.MultiheadAttention's out_proj is part of it, not a Linear of its own.
    attention_parts = {f"{o}.out_proj" if o else "out_proj" for o, p in groups.items() if "in_proj_weight" in p}
    for owner, params in groups.items():
        if owner in attention_parts:
            continue
        kind = _torch_kind(params, keras_kinds)
        facts = {}
        if kind in ("lstm", "gru"):  # torch.nn.LSTM/GRU name their layers weight_ih_l{k}[_reverse]
            facts = {
                "num_layers": sum(re.fullmatch(r"weight_ih_l\d+", p) is not None for p in params),
                "bidirectional": "weight_ih_l0_reverse" in params,
            }
        modules.append(TargetModule(owner, kind, "inferred from names and shapes", facts))
        if kind == "embedding" and "dense" in keras_kinds:
            notes.append(
                Assumption(
                    f"`{owner}` has a single 2-D weight: taken as an Embedding (a Linear without bias "
                    "looks the same; a built model, --target file.py:factory, knows)"
                )
            )
    return modules, notes


def _torch_kind(params: dict[str, Shape], keras_kinds: set[str]) -> str:
    if "in_proj_weight" in params:
        return "multi_head_attention"
    if "weight_ih_l0" in params and "weight_hh_l0" in params:
        hidden = params["weight_hh_l0"][1]
        return {4: "lstm", 3: "gru"}.get(params["weight_ih_l0"][0] // hidden if hidden else 0, "other")
    weight = params.get("weight")
    if "running_mean" in params:
        return "batch_norm"
    if weight is None:
        return "other"
    if len(weight) == 1:
        return "layer_norm"
    if len(weight) == 2:
        return "linear" if "bias" in params else "embedding"
    if len(weight) == 4 and weight[1] == 1 and "depthwise_conv2d" in keras_kinds:
        return "depthwise_conv2d"
    return {3: "conv1d", 4: "conv2d", 5: "conv3d"}.get(len(weight), "other")


# --------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Slot:
    """What one Keras layer fills in a torch module: the whole module, or one layer (and direction) of a
    stacked or bidirectional RNN, named by the suffix of its parameters (``l1``, ``l0_reverse``)."""

    module: TargetModule
    layer: str = "l0"

    @property
    def direction(self) -> str:
        if not self.module.facts.get("bidirectional"):
            return ""
        return "backward" if self.layer.endswith("_reverse") else "forward"

    def __str__(self) -> str:
        m = self.module
        stacked = m.facts.get("num_layers", 1) != 1 or m.facts.get("bidirectional")
        return f"`{m.name}` ({m.cls})" + (f" layer {self.layer[1:].replace('_', ' ')}" if stacked else "")


def _slots(module: TargetModule) -> list[Slot]:
    """A torch RNN with ``num_layers=N`` takes the next N Keras layers of its kind, in order; a bidirectional
    one takes each layer's forward and backward direction (``*_l{k}``, ``*_l{k}_reverse``)."""
    if module.kind not in ("lstm", "gru"):
        return [Slot(module)]
    directions = ("", "_reverse") if module.facts.get("bidirectional") else ("",)
    return [Slot(module, f"l{k}{d}") for k in range(int(module.facts.get("num_layers", 1))) for d in directions]


def _pairing_kind(torch_kind: str, direction: str) -> str:
    return f"{torch_kind} (bidirectional)" if direction else torch_kind


def _expected_shapes(layer: Layer) -> tuple[Shape | None, ...]:
    rule = TABLE[layer.kind]
    out = []
    for role, _, spec in rule.weights:
        if role in layer.weights:
            shape = layer.weights[role][1]
            out.append(parse(spec(shape) if callable(spec) else spec).shape(shape))
    return tuple(out)


def _module_shapes(slot: Slot, tensors: dict[str, Shape], layer_kind: str) -> tuple[Shape | None, ...]:
    return tuple(tensors.get(_torch_name(slot, param)) for _, param, _ in TABLE[layer_kind].weights)


def _pair(
    layers: list[Layer], slots: list[Slot], tensors: dict[str, Shape], notes: list[str]
) -> list[tuple[Layer | None, Slot | None]]:
    """Layers with module slots of the same kind (a Bidirectional's directions with a bidirectional RNN's),
    in order; where counts differ, aligned by shapes."""
    pairs: list[tuple[Layer | None, Slot | None]] = []
    layer_kinds = [_pairing_kind(TABLE[x.kind].torch_kind, x.direction) for x in layers]
    slot_kinds = [_pairing_kind(t.module.kind, t.direction) for t in slots]
    for kind in dict.fromkeys(layer_kinds + slot_kinds):
        ks = [x for x, k in zip(layers, layer_kinds, strict=True) if k == kind]
        ts = [t for t, k in zip(slots, slot_kinds, strict=True) if k == kind]
        if len(ks) == len(ts):
            pairs += list(zip(ks, ts, strict=True))
            continue
        if ks and ts:
            left = [(x.direction, _expected_shapes(x)) for x in ks]
            right = [(t.direction, _module_shapes(t, tensors, ks[0].kind)) for t in ts]
            what = "torch module(s)" if len(ts) == len({t.module.name for t in ts}) else "torch module layer(s)"
            notes.append(
                f"{len(ks)} Keras layer(s) vs {len(ts)} {what} of kind {kind}: paired where "
                "the shapes agree, in order; the rest is left over"
            )
            used_k: set[int] = set()
            used_t: set[int] = set()
            for block in SequenceMatcher(None, left, right, autojunk=False).get_matching_blocks():
                for i in range(block.size):
                    pairs.append((ks[block.a + i], ts[block.b + i]))
                    used_k.add(block.a + i)
                    used_t.add(block.b + i)
            pairs += [(x, None) for i, x in enumerate(ks) if i not in used_k]
            pairs += [(None, m) for i, m in enumerate(ts) if i not in used_t]
        else:
            pairs += [(x, None) for x in ks] + [(None, m) for m in ts]
    return pairs


def _torch_name(slot: Slot, param: str) -> str:
    param = param.format(l=slot.layer)
    return f"{slot.module.name}.{param}" if slot.module.name else param


def _facts_notes(layer: Layer, module: TargetModule) -> list[str]:
    """What the module's settings change, said once per module."""
    facts = module.facts
    notes = []
    eps = facts.get("eps")
    if layer.kind in ("batch_normalization", "layer_normalization") and isinstance(eps, float) and eps != 1e-3:
        notes.append(
            f"`{module.name}` ({module.cls}) has eps={eps:g}; a Keras layer left at its default uses "
            "1e-3: outputs differ unless the Keras layer set the same epsilon"
        )
    n, bidirectional = facts.get("num_layers", 1), facts.get("bidirectional")
    if n != 1 or bidirectional:
        each = "Bidirectional " if bidirectional else ""
        notes.append(
            f"`{module.name}` ({module.cls}) has num_layers={n}"
            + (", bidirectional" if bidirectional else "")
            + f": it takes the next {n} Keras {each}{layer.kind} layer(s), in order (each but the "
            "last with return_sequences=True)"
            + (": forward_layer -> *_l{k}, backward_layer -> *_l{k}_reverse" if bidirectional else "")
        )
    if layer.kind in ("lstm", "gru", "multi_head_attention") and facts.get("batch_first") is False:
        what = "MultiHeadAttention is" if layer.kind == "multi_head_attention" else "RNNs are"
        notes.append(f"`{module.name}` ({module.cls}) has batch_first=False; Keras {what} batch-first")
    query = layer.weights.get("query_kernel")
    heads = facts.get("num_heads")
    if layer.kind == "multi_head_attention" and query and len(query[1]) == 3 and heads != query[1][1]:
        said = f"num_heads={heads}" if heads is not None else "a number of heads the weights do not tell"
        notes.append(
            f"`{module.name}` ({module.cls}) has {said}; Keras layer {layer.label} has {query[1][1]} "
            "heads: the values convert, but outputs differ unless the twin uses the same number"
        )
    return notes


def bind(ckpt: Checkpoint, spec: TargetSpec) -> tuple[RulePack, list[str]]:
    """Rules for one Keras source + PyTorch target pair (or PyTorch source + Keras target).

    Args:
        ckpt: the source :class:`~bridge.core.model.Checkpoint`.
        spec: the target.

    Returns:
        The pack with generated exact-name rules, optional targets and copies, and notes
        that say which Keras layer became which torch module.
    """
    model = [r for r in ckpt.values() if r.kind == "model"]
    if ckpt.framework == "pytorch":  # PyTorch -> Keras: the Keras names are the target's
        keras_entries: list[tuple[str, Shape, str | None]] = [(t.name, t.shape, None) for t in spec.tensors.values()]
        layout = spec.metadata.get("layout", "keras3")
        torch_tensors = {r.name: r.shape for r in model}
        modules: list[TargetModule] | None = None
    else:
        keras_entries = [(r.name, r.shape, r.path) for r in model]
        layout = _keras_layout(ckpt.format, ckpt.metadata) or "keras3"
        torch_tensors = {n: t.shape for n, t in spec.tensors.items()}
        modules = spec.modules
    layers = keras_layers(keras_entries, layout)
    known = [x for x in layers if x.kind in TABLE]
    notes: list[str] = []
    if modules is None:
        modules, inferred = infer_modules(torch_tensors, {x.kind for x in known})
        notes += inferred
    rules: list[Rule] = []
    optional: list[Optional_] = []
    copies: list[Copy] = list(COPIES)
    kinds_seen: set[str] = set()
    slots = [slot for m in modules if m.kind != "other" for slot in _slots(m)]
    for layer, slot in _pair(known, slots, torch_tensors, notes):
        if layer is None and slot is not None:
            wrapped = "Bidirectional " if slot.direction else ""
            notes.append(f"torch module {slot} has no Keras {wrapped}{slot.module.kind} layer to fill it")
            continue
        if layer is None:
            continue
        if slot is None:
            kind, wrapped = TABLE[layer.kind].torch_kind, " in a Bidirectional" if layer.direction else ""
            bidirectional = f" with bidirectional={bool(layer.direction)}" if kind in ("lstm", "gru") else ""
            notes.append(
                f"Keras layer {layer.label} ({layer.kind}{wrapped}) has no torch {kind} module"
                f"{bidirectional} left to fill"
            )
            continue
        rule = TABLE[layer.kind]
        notes.append(f"layer {layer.label} ({layer.kind}) -> {slot}")
        if slot.layer == "l0":
            notes += _facts_notes(layer, slot.module)
        if rule.note and layer.kind not in kinds_seen:
            notes.append(rule.note)
        sums = dict(rule.sums) if ckpt.framework == "pytorch" else {}  # Keras -> PyTorch: the first term, zeros
        for role, params in sums.items():
            if role not in layer.weights:
                continue
            if layer.kind not in kinds_seen:
                notes.append(
                    f"{layer.kind} {role}: Keras' one {role} is torch's {' + '.join(params)}, written as "
                    "their sum; converted back to PyTorch it comes back as (the sum, zeros)"
                )
            rules += [
                Rule(re.escape(layer.weights[role][0]), _torch_name(slot, param), f"term({k},{len(params)})")
                for k, param in enumerate(params)
            ]
        kinds_seen.add(layer.kind)
        for role, param, spec_ in rule.weights:
            if role not in layer.weights or role in sums:
                continue
            name, shape = layer.weights[role]
            if layer.kind == "gru" and role == "bias" and len(shape) != 2:
                continue  # reset_after=False: left over, explained by INCOMPATIBLE
            transform = spec_(shape) if callable(spec_) else spec_
            rules.append(Rule(re.escape(name), _torch_name(slot, param), transform))
        for param, reason, fill in rule.extra:
            if any(param in params for params in sums.values()):
                continue
            name = _torch_name(slot, param)
            optional.append(Optional_(re.escape(name), reason, fill))
            if ckpt.framework == "pytorch" and name in ckpt:
                copies.append(Copy(re.escape(name), f"{reason.split(':')[0]}: Keras has none, dropped"))
    for layer in layers:
        if layer.kind in TABLE:
            continue
        bookkeeping = next((c for c in COPIES if re.fullmatch(c.source, layer.key)), None)
        if bookkeeping is None:
            notes.append(
                f"Keras layer {layer.label}: weights {sorted(layer.weights)} are not a layer kind this pack knows"
            )
        else:  # named by its path only (an exported SavedModel's `variables/11`): the rule needs its key
            reason = f"{layer.label}: {bookkeeping.reason}"
            copies += [Copy(re.escape(name), reason) for name, _ in layer.weights.values()]
    copies += _second_copies(ckpt)
    incompatible = tuple(
        Incompatible(re.escape(name), INCOMPATIBLE[0].reason)
        for layer in known
        if layer.kind == "gru"
        for role, (name, shape) in layer.weights.items()
        if role == "bias" and len(shape) != 2
    )
    matching = Matching(rules=tuple(rules), optional=tuple(optional), incompatible=incompatible, copies=tuple(copies))
    bound = replace(PACK, matching=matching)
    return bound, notes


def _second_copies(ckpt: Checkpoint) -> list[Copy]:
    """Variables the source saved twice (Keras' ``model.export()`` lists each under ``variables/N`` and again
    under ``_all_variables/M``; the reader pairs them by full name and index checksum): expected leftovers,
    which the matcher compares byte for byte with the tensor they copy.  One reason for all, so that reports
    fold them (which copy is which: ``bridge inspect``, or the ``copies`` of the checkpoint's metadata)."""
    if ckpt.framework == "pytorch":
        return []
    out = []
    for copy, original in dict(ckpt.metadata.get("copies") or {}).items():
        if copy.split("/", 1)[0] in _ROOT_LISTS:
            reason = "a second reference to a model variable (same full name), saved again by Keras' export"
        else:
            reason = "a second copy of a model variable (same full name), saved twice"
        out.append(Copy(re.escape(copy), reason, owner=original.replace("\\", r"\\")))  # a Match.expand template
    return out


PACK = RulePack(
    name="keras",
    description="Keras layers (Dense, EinsumDense, Conv1D/2D/3D, DepthwiseConv2D, BatchNormalization, "
    "LayerNormalization, Embedding, LSTM, GRU, stacked and Bidirectional, MultiHeadAttention) <-> torch.nn modules, "
    "matched by structure",
    detection=Detection(
        detect=lambda ckpt: looks_keras(
            ckpt.format, ckpt.metadata, [(r.name, r.shape, r.path) for r in ckpt.values() if r.kind == "model"]
        ),
        claims_target=claims_target,
    ),
    tf=TensorFlowSide(
        output=Output(
            "keras",
            writers.write_keras3_weights,
            "model.weights.h5",
            note="load it with model.load_weights(OUT/model.weights.h5) on the Keras model of --target",
        ),
    ),
    matching=Matching(
        rules=(),
        copies=COPIES,
        bind=bind,
    ),
    forward_check=hooks.forward_check,
)
