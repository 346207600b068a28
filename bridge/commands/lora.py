"""``bridge lora``: KerasHub's LoRA file <-> a PEFT adapter, named through the base model's structure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import UnsupportedFeature, UsageError
from bridge.core.jsonio import load_json
from bridge.core.keras_hub_preset import preset_facts, sniff_keras_hub_preset
from bridge.families.keras_hub import lora
from bridge.families.keras_hub.pack import PACK
from pt_side.peft_adapter import read_peft_adapter, sniff_peft_adapter, write_peft_adapter
from tf_side.keras_hub_lora import SUFFIX, read_keras_hub_lora, sniff_keras_hub_lora, write_keras_hub_lora


@dataclass
class LoraResult:
    source: str
    out: str
    written: str  # "peft" or "keras-hub-lora"
    rank: int
    modules: list[str]
    keras_targets: list[str]
    load: str  # the Python lines that apply the result
    ranks: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _base(base: Path) -> tuple[lora.Layout, dict[str, Any]]:
    """The base model's LoRA layout and transformers config (a preset's, as ``convert`` would write it)."""
    if sniff_keras_hub_preset(base):
        from_files = PACK.config.from_files  # the keras-hub pack's: a preset's config as `convert` writes it
        config = from_files(base)[0] if from_files is not None else {}
        # the family's model_type, not the backbone class: Gemma 1 and 2 share GemmaBackbone
        return lora.layout_for(str(config.get("model_type", preset_facts(base)["backbone_class"]))), config
    config_path = base / "config.json"
    if not config_path.is_file():
        raise UsageError(
            "The base is neither a KerasHub preset nor a transformers directory",
            path=base,
            hint="Pass --base the preset the adapter was trained on, or its transformers conversion",
        )
    config = load_json(config_path.read_bytes(), path=config_path, what="config", hint="")
    if not isinstance(config, dict):
        raise UsageError("Unreadable base config.json", path=config_path, detail="not a JSON object")
    return lora.layout_for(str(config.get("model_type"))), config


def _fits(slot: lora.Slot, a: np.ndarray) -> bool:
    """Whether a Keras ``lora_kernel_a`` has the shape this slot's kernel gives it."""
    if slot.kind in ("dense",):
        return a.ndim == 2
    axis = 1 if slot.kind == "heads_in" else 0
    return a.ndim == 3 and a.shape[axis] == slot.heads


def run_lora(source: Path, base: Path, out: Path, *, force: bool = False) -> LoraResult:
    layout, config = _base(base)
    slots = lora.slots(layout, config)
    prefix = lora.module_prefix(layout, config)
    if sniff_keras_hub_lora(source):
        return _to_peft(source, base, out, force, slots, prefix, config, layout)
    if sniff_peft_adapter(source):
        return _to_keras(source, out, force, slots, layout)
    raise UsageError(
        "Not a LoRA adapter this tool reads",
        path=source,
        hint=f"Pass a KerasHub save_lora_weights file (*{SUFFIX}) or a PEFT adapter directory (adapter_config.json)",
    )


def _to_peft(
    source: Path,
    base: Path,
    out: Path,
    force: bool,
    slots: list[lora.Slot],
    prefix: str,
    config: dict[str, Any],
    layout: lora.Layout,
) -> LoraResult:
    family = layout.family
    rank, layers = read_keras_hub_lora(source)
    by_index = {s.index: s for s in slots}
    modules: dict[str, list[tuple[lora.Slot, np.ndarray, np.ndarray]]] = {}
    for index, (a, b) in sorted(layers.items()):
        slot = by_index.get(index)
        if slot is not None and slot.refused:
            raise slot.refusal(family, str(source))
        if slot is None or not _fits(slot, a):
            raise UsageError(
                "The LoRA file does not fit the base model",
                path=source,
                tensor=f"lora/{index}",
                detail=f"lora_kernel_a {a.shape}; the base's layer {index} is "
                + (f"{slot.keras} ({slot.module})" if slot else "not one LoRA adapts"),
                hint="Pass --base the preset whose backbone saved this file"
                + (f"; {layout.backend}" if layout.backend else ""),
            )
        modules.setdefault(slot.module, []).append((slot, *lora.to_peft(slot, a, b)))
    tensors: dict[str, np.ndarray] = {}
    written: list[tuple[lora.Slot, int]] = []
    for module, parts in modules.items():
        lora_a, lora_b = lora.join_parts(parts)
        tensors[lora.peft_key(prefix, module, "A")] = np.ascontiguousarray(lora_a)
        tensors[lora.peft_key(prefix, module, "B")] = np.ascontiguousarray(lora_b)
        written.append((parts[0][0], int(lora_a.shape[0])))
    arch = (config.get("architectures") or [""])[0]
    task = "CAUSAL_LM" if arch.endswith("ForCausalLM") else None
    adapter = lora.peft_config(written, rank, prefix, str(base), task, layout.fan_in_fan_out)
    write_peft_adapter(out, adapter, tensors, force=force, inputs=(source,))
    auto = "AutoModelForCausalLM" if task else "AutoModel"
    return LoraResult(
        source=str(source),
        out=str(out),
        written="peft",
        rank=rank,
        modules=[prefix + s.module for s, _ in written],
        keras_targets=lora.keras_targets([s for parts in modules.values() for s, _, _ in parts]),
        ranks={prefix + s.module: r for s, r in written},
        load=f"PeftModel.from_pretrained({auto}.from_pretrained(BASE_PYTORCH), {str(out)!r}); "
        f"BASE_PYTORCH: `bridge convert {base} --to pytorch -o BASE_PYTORCH` where the base is a preset",
    )


def _to_keras(source: Path, out: Path, force: bool, slots: list[lora.Slot], layout: lora.Layout) -> LoraResult:
    if not out.name.endswith(SUFFIX):
        raise UsageError("KerasHub reads LoRA files named *" + SUFFIX, path=out, hint=f"Name the output *{SUFFIX}")
    if out.exists() and not force:
        raise UsageError("Output already exists", path=out, hint="Pass --force to replace it, or choose another path")
    if out.absolute() == source.absolute():
        raise UsageError("Refusing to write over an input", path=out, hint="Choose another output path")
    config, tensors = read_peft_adapter(source)
    lora.check_peft_config(config, str(source))
    by_module: dict[str, list[lora.Slot]] = {}
    for s in slots:
        by_module.setdefault(s.module, []).append(s)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        parsed = lora.peft_module(key, layout.family.base_prefix + ".")
        found = by_module.get(parsed[0]) if parsed else None
        if parsed is None or found is None:
            raise UnsupportedFeature(
                "A LoRA tensor on a module KerasHub's LoRA file has no layer for",
                path=source,
                tensor=key,
                detail=f"{layout.family.model_type}'s LoRA layers: {', '.join(sorted({s.keras for s in slots}))}",
                hint="KerasHub adapts attention and feed-forward kernels; merge the rest into the base "
                "(PeftModel.merge_and_unload) and convert that",
            )
        for slot in found:
            if slot.refused:
                raise slot.refusal(layout.family, str(source))
        pairs.setdefault(parsed[0], {})[parsed[1]] = value
    rank = 0
    chosen: list[tuple[lora.Slot, np.ndarray, np.ndarray]] = []
    for module, pair in sorted(pairs.items(), key=lambda kv: by_module[kv[0]][0].index):
        if set(pair) != {"A", "B"}:
            raise UsageError("A LoRA module lacks a factor", path=source, tensor=module, detail=f"has {sorted(pair)}")
        for slot in by_module[module]:  # a fused module's blocks: its B's rows, its A shared
            lora_b = lora.part_of(slot, pair["B"])
            chosen.append((slot, pair["A"], lora_b))
            rank = max(rank, lora.needed_rank(slot, pair["A"], lora_b))
    layers = {
        slot.index: lora.to_keras(slot, a, b, lora.peft_scaling(config, slot.module, int(a.shape[0])), rank)
        for slot, a, b in chosen
    }
    write_keras_hub_lora(out, rank, layers)
    targets = lora.keras_targets([s for s, _, _ in chosen])
    default = sorted({s.keras for s in slots if s.keras in lora.DEFAULT_TARGETS})
    enable = "" if targets == default else f"backbone.enable_lora(rank={rank}, target_layer_names={targets}); "
    return LoraResult(
        source=str(source),
        out=str(out),
        written="keras-hub-lora",
        rank=rank,
        modules=list(dict.fromkeys(s.module for s, _, _ in chosen)),
        keras_targets=targets,
        load=f"{enable}backbone.load_lora_weights({str(out)!r})",
    )
