"""KerasHub presets -> transformers 5: one pack over the per-family tables of :mod:`.data`.

A preset's variable paths carry no family scope a regex could claim, and its attention kernels change shape by the
head count, so the pack claims a preset by its backbone class (``detect``) and :func:`bind` turns the family's table
into exact-name rules for this source, each reshape spelled with the stored shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bridge.core.keras_hub_preset import TASK_PREFIX, preset_facts, sniff_keras_hub_preset
from bridge.core.packs import ConfigHooks, Detection, Docs, Matching, PyTorchSide, Rule, RulePack
from bridge.core.transforms import parse
from bridge.families.keras_hub.data import BY_BACKBONE, FAMILIES, Entry, Family
from bridge.families.keras_hub.tokenizer import tokenizer_files

if TYPE_CHECKING:
    from pathlib import Path

    from bridge.core.model import Checkpoint
    from bridge.core.plan import TargetSpec

_FORMAT = "keras-hub-preset"
_LAYER = re.compile(r"layers/(?P<layer>[a-z0-9_]+?)(?:_(?P<k>\d+))?/(?P<rest>.+)")


def _family(metadata: dict[str, Any]) -> Family | None:
    return BY_BACKBONE.get(str(metadata.get("backbone_class", "")))


def _transform(kind: str, shape: tuple[int, ...]) -> str:
    """The transform spec of ``kind`` for a value of ``shape`` (the reshapes spelled with its sizes); a kind
    ending ``@k/n`` adds ``block(k,n,axis)`` along the result's last axis."""
    kind, _, part = kind.partition("@")
    spec = _reshaped(kind, shape)
    if not part:
        return spec
    k, n = part.split("/")
    out = parse(spec).shape(shape)
    axis = len(out) - 1 if out else 0
    return f"{spec}|block({k},{n}{f',{axis}' if axis else ''})"


def _reshaped(kind: str, shape: tuple[int, ...]) -> str:
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
    return "identity"


def _target_of(family: Family, name: str) -> tuple[str, str] | None:
    """The transformers name and kind of a backbone variable path, or None."""
    for entry in family.entries:
        if "{i}" not in entry.target and re.fullmatch(entry.source, name):
            return entry.target, entry.kind
    m = _LAYER.fullmatch(name)
    if m is None or m["layer"] != family.layer:
        return None
    index = int(m["k"] or 0)
    for entry in family.entries:
        if "{i}" in entry.target and re.fullmatch(entry.source, m["rest"]):
            return entry.target.format(i=index), entry.kind
    return None


def _task_target(entries: Iterable[Entry], name: str) -> tuple[str, str] | None:
    rest = name.removeprefix(TASK_PREFIX)
    return next(((e.target, e.kind) for e in entries if re.fullmatch(e.source, rest)), None)


def bind(ckpt: Checkpoint, spec: TargetSpec) -> tuple[RulePack, list[str]]:
    """Exact-name rules for this preset: each variable to its transformers name, reshapes spelled with its shape."""
    family = _family(ckpt.metadata)
    if family is None:
        return PACK, []
    rules: list[Rule] = []
    for record in ckpt.values():
        if record.kind != "model":
            continue
        if record.name.startswith(TASK_PREFIX):
            hit = _task_target(family.task_entries, record.name)
        else:
            hit = _target_of(family, record.name)
        if hit is not None:
            rules.append(Rule(re.escape(record.name), hit[0], _transform(hit[1], record.shape)))
    bound = replace(PACK, pt=replace(PACK.pt, base_prefix=family.base_prefix))
    return bound.with_rules(tuple(rules)), [f"keras-hub preset: {family.backbone} -> transformers {family.model_type}"]


def _detect(ckpt: Checkpoint) -> bool:
    return ckpt.format == _FORMAT and _family(ckpt.metadata) is not None


def _preset_facts(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The transformers config a preset's ``config.json`` (and ``task.json``) describes."""
    if not sniff_keras_hub_preset(folder):
        return {}, []
    facts = preset_facts(folder)
    family = _family(facts)
    if family is None:
        return {}, []
    config = family.config(facts["backbone_config"])
    task = BY_BACKBONE[family.backbone].tasks.get(str(facts.get("task_class", "")))
    if task is not None and task.endswith("ForSequenceClassification"):
        num = facts.get("task_config", {}).get("num_classes")
        if isinstance(num, int):
            config["num_labels"] = num
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


def _generation(config: dict[str, Any]) -> dict[str, Any] | None:
    family = next((f for f in FAMILIES if f.model_type == config.get("model_type")), None)
    if family is None or not family.generates:
        return None
    out = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config.get(k) is not None}
    return out


PACK = RulePack(
    name="keras-hub",
    description="KerasHub presets (save_to_preset directories): " + ", ".join(f.backbone for f in FAMILIES),
    matching=Matching(bind=bind),
    detection=Detection(detect=_detect),
    config=ConfigHooks(
        from_files=_preset_facts, pytorch=_pt_config, generation=_generation, side_files=tokenizer_files
    ),
    pt=PyTorchSide(saved_class=_saved_class),
    docs=Docs(model_types=tuple(f.model_type for f in FAMILIES), layout="KerasHub preset"),
)
