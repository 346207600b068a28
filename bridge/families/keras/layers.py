"""The Keras side of the Keras pack: the layers a source holds, their kinds and the roles of their weights, and
the transforms each kind takes to its ``torch.nn`` module (``TABLE``).

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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.core.packs import Copy, Incompatible

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


_SUFFIX = re.compile(r"(.+?)(?:_(\d+))?")


_ATTRIBUTES = "/.ATTRIBUTES/VARIABLE_VALUE"


# The root's variable lists of a Keras 3 ``model.export()`` SavedModel (``variables/0``); tf-keras'
# ``tf.saved_model.save`` keeps a root ``variables`` list too, beside the layers.
ROOT_LISTS = frozenset({"variables", "trainable_variables", "non_trainable_variables", "_all_variables"})


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
            if owner in ROOT_LISTS:  # Keras' export: a flat list of variables, named by their full names
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


def keras_layout(fmt: str, metadata: dict[str, Any]) -> str | None:
    layout = metadata.get("layout")
    if layout == "keras3":
        return "keras3"
    if layout in ("keras2-full", "keras2-weights"):
        return "keras2"
    if fmt in ("tf-checkpoint", "saved-model") and metadata.get("style", "object-based") == "object-based":
        return "tf2"
    return None


def looks_keras(fmt: str, metadata: dict[str, Any], entries: list[tuple[str, Shape, str | None]]) -> bool:
    """Whether a checkpoint's model tensors form Keras layers this pack knows."""
    layout = keras_layout(fmt, metadata)
    return layout is not None and any(layer.kind in TABLE for layer in keras_layers(entries, layout))
