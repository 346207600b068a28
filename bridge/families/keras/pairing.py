"""The torch side of the Keras pack and the pairing of Keras layers with ``torch.nn`` modules.

A torch module offers one slot per Keras layer it takes: an ``nn.LSTM``/``nn.GRU`` with
``num_layers=N`` takes the next N Keras layers of its kind, in order (``*_l0`` ... ``*_l{N-1}``),
and a bidirectional one takes a Bidirectional layer's two directions per layer (``*_l{k}``,
``*_l{k}_reverse``); Bidirectional layers pair only with bidirectional modules.  A torch module's kind comes from its
class when the target is built (``--target file.py:factory``), else from its
parameter names and shapes (a reference checkpoint), with the assumptions noted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from bridge.core.plan import Assumption, TargetModule
from bridge.core.transforms import parse
from bridge.families.keras.layers import TABLE, Layer, Shape


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


def module_slots(module: TargetModule) -> list[Slot]:
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
    return tuple(tensors.get(torch_name(slot, param)) for _, param, _ in TABLE[layer_kind].weights)


def pair(
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


def torch_name(slot: Slot, param: str) -> str:
    param = param.format(l=slot.layer)
    return f"{slot.module.name}.{param}" if slot.module.name else param


def facts_notes(layer: Layer, module: TargetModule) -> list[str]:
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
