"""KerasHub presets -> transformers 5: one pack over the per-family modules of :mod:`.families`.

A preset's variable paths carry no family scope a regex could claim, and its attention kernels change shape by the
head count, so the pack claims a preset by its backbone class (``detect``) and :func:`bind` turns the family's table
into exact-name rules for this source, each reshape spelled with the stored shapes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from bridge.core.keras_hub_preset import TASK_PREFIX, preset_facts, sniff_keras_hub_preset
from bridge.core.packs import (
    Buffer,
    ConfigHooks,
    Detection,
    Docs,
    Fill,
    Head,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
)
from bridge.core.transforms import parse
from bridge.families.keras_hub.families import FAMILIES, family_for, family_of
from bridge.families.keras_hub.hooks import forward_check
from bridge.families.keras_hub.table import Entry, Family, blocks_of, groups_of
from bridge.families.keras_hub.tokenizer import tokenizer_files, vocabulary_facts
from bridge.families.keras_hub.writing import (
    WRITTEN_TYPES,
    preset_class,
    preset_files,
    preset_layout,
    preset_notes,
)
from bridge.rules.writers import write_keras_hub_preset

if TYPE_CHECKING:
    from pathlib import Path

    from bridge.core.model import Checkpoint
    from bridge.core.plan import TargetSpec

_FORMAT = "keras-hub-preset"


def _family(metadata: dict[str, Any]) -> Family | None:
    config = metadata.get("backbone_config")
    return family_of(str(metadata.get("backbone_class", "")), config if isinstance(config, dict) else {})


def _transform(kind: str, shape: tuple[int, ...], keras: dict[str, Any], row: int | None = None) -> str:
    """The transform spec of ``kind`` for a value of ``shape`` (the reshapes spelled with its sizes), of its row
    ``row`` of axis 0 first where one is given (``row(k)``); a kind ending ``@...`` adds ``block(k,n,axis)`` (equal
    blocks) or ``join(k,axis,sizes...)`` (unequal ones)."""
    kind, _, part = kind.partition("@")
    kind, _, within = kind.partition("%")
    steps, value = ([], shape) if row is None else ([f"row({row})"], shape[1:])
    if within:  # the Keras value holds n equal blocks along its last axis: this target is block k
        k, n = (int(x) for x in within.split("/"))
        steps.append(f"chunk({k},{n},{len(value) - 1})")
        value = (*value[:-1], value[-1] // n)
    spec = "|".join([*steps, _reshaped(kind, value)])
    if not part:
        return spec
    out = parse(spec).shape(shape) or ()
    k, weights, axis, equal = blocks_of(part, keras, len(out))
    if equal:
        groups = groups_of(part, keras)
        where = f",{axis},{groups}" if groups > 1 else f",{axis}" if axis else ""
        return f"{spec}|block({k},{len(weights)}{where})"
    sizes = ",".join(str(out[axis] * w // weights[k]) for w in weights)
    return f"{spec}|join({k},{axis},{sizes})"


def _reshaped(kind: str, shape: tuple[int, ...]) -> str:
    kind = kind.partition("*")[0]  # the slices per head change no reshape spelled with the stored shape
    if kind.startswith("rows+"):  # transformers' leading rows KerasHub lacks
        return f"prepend({kind.removeprefix('rows+')})"
    if kind == "dense":
        return "transpose"
    if kind == "heads_in":  # [hidden, heads, head_dim] -> [heads * head_dim, hidden]
        return f"reshape({shape[0]},{shape[1] * shape[2]})|transpose"
    if kind == "heads_out":  # [heads, head_dim, hidden] -> [hidden, heads * head_dim]
        return f"reshape({shape[0] * shape[1]},{shape[2]})|transpose"
    if kind == "heads_first_in":  # [heads, hidden, head_dim] -> [heads * head_dim, hidden]
        return f"permute(0,2,1)|reshape({shape[0] * shape[2]},{shape[1]})"
    if kind == "conv_heads_in":  # [hidden, heads, head_dim] -> [hidden, heads * head_dim]
        return f"reshape({shape[0]},{shape[1] * shape[2]})"
    if kind == "conv_heads_out":  # [heads, head_dim, hidden] -> [heads * head_dim, hidden]
        return f"reshape({shape[0] * shape[1]},{shape[2]})"
    if kind == "heads_bias":
        return f"reshape({shape[0] * shape[1]})"
    if kind == "conv1d":  # [width, in, out] -> [out, in, width]
        return "permute(2,1,0)"
    if kind == "conv2d":  # [h, w, in, out] -> [out, in, h, w]
        return "permute(3,2,0,1)"
    if kind == "depthwise2d":  # [h, w, channels, 1] -> [channels, 1, h, w]
        return "permute(2,3,0,1)"
    if kind == "lead1":
        return "unsqueeze(0)"
    if kind == "axis1":
        return "unsqueeze(1)"
    return "identity"


Hit = tuple[str, str, int | None]  # a target: its transformers name, the kind, the row of the variable it takes


def _targets_of(entries: tuple[Entry, ...], family: Family, name: str, keras: dict[str, Any]) -> list[Hit]:
    """The transformers names, kinds and rows of a backbone variable path (none: transformers has no tensor)."""
    own = [e for e in entries if "{i}" not in e.target and re.fullmatch(e.source, name)]
    if own:  # the first entry of the path, and those declaring the same variable (a fused kernel's targets)
        return [(e.named(r), e.kind, r) for e in own if e.source == own[0].source and e.target for r in e.rows(keras)]
    stacks = family.layer_stacks(keras)
    for stack in stacks:
        m = re.fullmatch(rf"layers/{re.escape(stack.layer)}(?:_(\d+))?/(.+)", name)
        if m is None:
            continue
        k, start = int(m[1] or 0), stack.start(keras)
        if k < start or any(o.layer == stack.layer and start < o.start(keras) <= k for o in stacks):
            continue  # a layer of another stack of this class (T5's decoder blocks after its encoder blocks)
        i = k - start
        hits = [  # every entry of the path: one variable holding several targets side by side has one per target
            (entry.named(r, i), entry.kind, r)
            for entry in stack.entries_of(i, keras)
            if re.fullmatch(entry.source, m[2])
            for r in entry.rows(keras)
        ]
        if hits:
            return hits
    return []


def _task_targets(entries: Iterable[Entry], name: str) -> list[Hit]:
    rest = name.removeprefix(TASK_PREFIX)
    return next(([(e.target, e.kind, None)] for e in entries if re.fullmatch(e.source, rest)), [])


def bind(ckpt: Checkpoint, spec: TargetSpec) -> tuple[RulePack, list[str]]:
    """Exact-name rules for this pair: each preset variable to its transformers name, reshapes spelled with its
    shape; the variables are the preset's (to PyTorch) or the layout's computed from a transformers source."""
    to_preset = ckpt.framework == "pytorch"
    keras: dict[str, Any] = {}
    if to_preset:
        family = family_for(spec.config or {})
        variables = [(name, t.shape) for name, t in spec.tensors.items()]
        if family is not None and family.writing is not None:
            keras = family.writing.keras_config(spec.config or {})
    else:
        family = _family(ckpt.metadata)
        variables = [(r.name, r.shape) for r in ckpt.values() if r.kind == "model"]
        keras = ckpt.metadata.get("backbone_config") or {}
    if family is None:
        return PACK, []
    entries = family.entries_for(keras)
    prefix = family.base_prefix + "."
    sources = {r.name.removeprefix(prefix) for r in ckpt.values()} if to_preset and family.saved else set()
    rules: list[Rule] = []
    for name, shape in variables:
        if name.startswith(TASK_PREFIX):
            hits = _task_targets(family.task_entries, name)
        else:
            hits = _targets_of(entries, family, name, keras)
        for target, kind, row in hits:
            source = family.source_name(target, sources) if sources else target
            rules.append(Rule(re.escape(name), source, _transform(kind, shape, keras, row)))
    bound = replace(PACK, pt=replace(PACK.pt, base_prefix=family.base_prefix), matching=_zeros(family, keras))
    if to_preset:
        spec.base_prefix = spec.base_prefix or family.base_prefix  # a preset given as the reference names none
        return bound.with_rules(tuple(rules)), [
            f"keras-hub preset: transformers {family.model_type} -> {preset_class((), spec.config or {})}",
            *preset_notes(spec.config or {}),
        ]
    return bound.with_rules(tuple(rules)), [f"keras-hub preset: {family.backbone} -> transformers {family.model_type}"]


def _zeros(family: Family, keras: dict[str, Any]) -> Matching:
    """What one side has and the other lacks.  The family's transformers tensors KerasHub lacks: filled with zeros
    on the way in (optional targets), and on the way out left behind only while they hold zeros (buffers the
    preset rebuilds as zeros).  The preset variables transformers lacks, and the transformers parts the backbone
    does not compute (a pooler): dropped where the other side lacks them, zeros where it needs them."""
    prefix = re.escape(family.base_prefix + ".")
    only = family.keras_only(keras)
    unkept = family.unkept
    why = f"a KerasHub layer transformers' {family.base_class} has no tensor for"
    return replace(
        PACK.matching,
        optional=(
            *(Optional_(f"(?:{prefix})?{re.escape(n)}", reason, fill="zeros") for n, reason in family.zeros),
            *(Optional_(re.escape(e.source), f"{why}: {_written(e)}", fill=_fill(e, keras)) for e in only),
            *(Optional_(f"(?:{prefix})?{rx}", f"{reason}: written as zeros", fill="zeros") for rx, reason in unkept),
            *(
                Optional_(f"(?:{prefix})?{re.escape(c.name)}", c.reason, fill=Fill(partial(c.value, keras)))
                for c in family.computed
            ),
        ),
        buffers=(
            *(Buffer(rf"(?:^|\.){re.escape(n)}$", reason, _zeros_of) for n, reason in family.zeros),
            *(Buffer(rf"(?:^|\.){re.escape(c.name)}$", c.reason, partial(c.value, keras)) for c in family.computed),
        ),
        heads=(
            *(Head(why, re.escape(e.source), "\0", separate=True) for e in only),
            *(Head(reason, f"(?:{prefix})?{rx}", "\0", separate=True) for rx, reason in unkept),
        ),
    )


def _written(entry: Entry) -> str:
    return "written as zeros" if entry.computed is None else "computed from the config"


def _fill(entry: Entry, keras: dict[str, Any]) -> str | Fill:
    """How a preset variable transformers has no tensor for is written: zeros, else its value from the config."""
    return "zeros" if entry.computed is None else Fill(value=functools.partial(entry.computed, keras))


def _zeros_of(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _claims_target(target: str) -> bool:
    """A PyTorch source checked against a preset (``verify SRC PRESET``): the preset's family is written here."""
    from pathlib import Path

    path = Path(target)
    return sniff_keras_hub_preset(path) and _family(preset_facts(path)) is not None


def _detect(ckpt: Checkpoint) -> bool:
    return ckpt.format == _FORMAT and _family(ckpt.metadata) is not None


def _preset_facts(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The transformers config a preset's ``config.json`` (and ``task.json``) describes; beside a transformers
    source, its vocabulary for the preset's tokenizer assets."""
    if not sniff_keras_hub_preset(folder):
        return vocabulary_facts(folder)
    facts = preset_facts(folder)
    family = _family(facts)
    if family is None:
        return {}, []
    config = family.config(facts["backbone_config"])
    task = family.tasks.get(str(facts.get("task_class", "")))
    if task is not None and task.endswith(
        ("ForSequenceClassification", "ForImageClassification", "ForSemanticSegmentation")
    ):
        num = facts.get("task_config", {}).get("num_classes")
        if isinstance(num, int):
            config["num_labels"] = num
    if task is not None and family.task_settings is not None:
        config |= family.task_settings(facts.get("task_config", {}))
    chosen = task or (next(iter(family.tasks.values())) if family.generates and family.tasks else family.base_class)
    config["architectures"] = [chosen]
    return config, [f"config from the preset's {facts['backbone_class']} config"]


# Keys of a Keras config.json read as if it were transformers': not transformers settings.
_KERAS_KEYS = ("module", "class_name", "config", "registered_name", "build_config")


def _pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    out = {k: v for k, v in config.items() if k not in _KERAS_KEYS}
    out["architectures"] = [class_name]
    out.setdefault("dtype", "float32")
    return out, []


def _saved_class(config: dict[str, Any], names: Iterable[str]) -> str | None:
    saved = config.get("architectures")
    return saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None


def _saved_names(config: dict[str, Any]) -> bool:
    family = family_for(config)
    return family is not None and family.saved_names


def _generation(config: dict[str, Any]) -> dict[str, Any] | None:
    family = family_for(config)
    if family is None or not family.generates:
        return None
    out = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config.get(k) is not None}
    return out


PACK = RulePack(
    name="keras-hub",
    description="KerasHub presets (save_to_preset directories): " + ", ".join(f.backbone for f in FAMILIES),
    matching=Matching(bind=bind),
    detection=Detection(detect=_detect, claims_target=_claims_target),
    config=ConfigHooks(
        from_files=_preset_facts, pytorch=_pt_config, generation=_generation, side_files=tokenizer_files
    ),
    pt=PyTorchSide(saved_class=_saved_class, saved_names=_saved_names),
    tf=TensorFlowSide(
        source_layout=preset_layout,
        class_name=preset_class,
        output=Output(
            format="keras-hub",
            writer=write_keras_hub_preset,
            weights="model.weights.h5",
            note="a KerasHub preset: keras_hub.models.Backbone.from_preset(OUT) (or the task class) loads it",
        ),
        model_types=WRITTEN_TYPES,
        metadata=preset_files,
    ),
    forward_check=forward_check,
    docs=Docs(model_types=tuple(dict.fromkeys(f.model_type for f in FAMILIES)), layout="KerasHub preset"),
)
