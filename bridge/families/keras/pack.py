"""Generic Keras layers <-> ``torch.nn`` modules, matched by structure.

Keras layer names (``dense_1``, ``conv2d``) do not name torch modules (``fc2``, ``conv``),
so this pack has no name rules of its own.  For one source + target pair, :func:`bind`
lists the Keras layers that hold weights and the torch modules that hold parameters,
pairs them by kind, in order, and generates exact-name rules with the transforms of
``TABLE``; the matcher then checks shapes and explains leftovers as for any pack.

The Keras layers: :mod:`.layers`; the torch modules and the pairing: :mod:`.pairing`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bridge.core.factory import is_factory
from bridge.core.keras_hub_preset import sniff_keras_hub_preset
from bridge.core.model import Checkpoint
from bridge.core.packs import Copy, Detection, Incompatible, Matching, Optional_, Output, Rule, RulePack, TensorFlowSide
from bridge.core.plan import TargetModule, TargetSpec
from bridge.families.keras import hooks
from bridge.families.keras.layers import (
    COPIES,
    INCOMPATIBLE,
    ROOT_LISTS,
    TABLE,
    Shape,
    keras_layers,
    keras_layout,
    looks_keras,
)
from bridge.families.keras.pairing import facts_notes, infer_modules, module_slots, pair, torch_name
from bridge.rules import writers


def claims_target(target: str) -> bool:
    """A PyTorch source goes to Keras when the target is a Keras model built by the user's code (``file.py:factory``)
    or a Keras 3 weights file (or a folder holding one, as convert writes; a KerasHub preset is the keras-hub
    pack's)."""
    from pathlib import Path

    path = Path(target)
    return (
        is_factory(target)
        or target.endswith((".weights.h5", ".keras"))
        or (path.is_dir() and any(path.glob("*.weights.h5")) and not sniff_keras_hub_preset(path))
    )


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
        layout = keras_layout(ckpt.format, ckpt.metadata) or "keras3"
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
    slots = [slot for m in modules if m.kind != "other" for slot in module_slots(m)]
    for layer, slot in pair(known, slots, torch_tensors, notes):
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
            notes += facts_notes(layer, slot.module)
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
                Rule(re.escape(layer.weights[role][0]), torch_name(slot, param), f"term({k},{len(params)})")
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
            rules.append(Rule(re.escape(name), torch_name(slot, param), transform))
        for param, reason, fill in rule.extra:
            if any(param in params for params in sums.values()):
                continue
            name = torch_name(slot, param)
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
        if copy.split("/", 1)[0] in ROOT_LISTS:
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
    matching=Matching(rules=(), copies=COPIES, bind=bind),
    forward_check=hooks.forward_check,
)
