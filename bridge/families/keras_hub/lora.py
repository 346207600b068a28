"""KerasHub LoRA files (``Backbone.save_lora_weights``) <-> PEFT LoRA adapters: names and values.

A ``.lora.h5`` keys each adapted layer by its index among the backbone's layers that hold weights, in the order
Keras' ``_flatten_layers`` walks them: the top-level layers in order, each one followed by its sublayers, the
last-built first.  The file names no layer, so the order of one transformer block is spelled here per family
(a test checks it against Keras) and each site's kernel kind comes from the family's table.  Layouts are keyed by
transformers' model_type: families sharing a backbone class (Gemma 1 and 2) differ in their blocks' layers.

A family may have further stacks of blocks (an encoder-decoder's decoder), blocks walked last first (ViT's, the
sublayers of one encoder layer), and layers of one Keras kind fused in one transformers module (GPT-2's query, key
and value in ``c_attn``): their LoRAs are one LoRA there, ``A`` stacked and ``B`` block-diagonal, and the way back
splits ``B`` by rows with ``A`` shared (both exact).

Values.  Keras factors a kernel ``[..., out]`` as ``lora_kernel_a [..., r] @ lora_kernel_b [r, out]``: on a
``[hidden, heads, head_dim]`` query kernel that is one ``A`` per head and one ``B`` shared by all heads, a rank of
``heads * r`` in transformers' ``[heads * head_dim, hidden]`` weight; PEFT gets that rank exactly (its ``A`` the
heads' factors stacked, its ``B`` block-diagonal) through ``rank_pattern``.  The way back writes a head's whole
update as its ``A`` and an identity ``B``, so the file's rank is at least ``head_dim``; smaller factors are padded
with zeros (one rank per file).  Scaling: ``Backbone.enable_lora`` (and ``load_lora_weights``) leave
``lora_alpha`` at the rank, a scaling of 1, so the PEFT adapter gets ``lora_alpha = r`` per module, and PEFT's
scaling (``lora_alpha / r``, ``/ sqrt(r)`` with ``use_rslora``) is multiplied into ``lora_kernel_b``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.core.errors import UnsupportedFeature, UsageError
from bridge.families.keras_hub.families import FAMILIES
from bridge.families.keras_hub.table import Family, LoraSite, LoraStack

DEFAULT_TARGETS = ("query_dense", "value_dense", "query", "value")  # Backbone.default_lora_layer_names()
_PEFT_PREFIX = "base_model.model."


Site = LoraSite


@dataclass(frozen=True)
class Layout:
    """A family with its LoRA order (:class:`~bridge.families.keras_hub.table.LoraOrder`)."""

    family: Family
    before: int | Callable[[dict[str, Any]], int]
    block: tuple[Site | None, ...]
    counts: tuple[str, str, str]
    fan_in_fan_out: bool = False
    reverse: bool = False
    stacks: tuple[LoraStack, ...] = ()
    backend: str = ""  # LoraOrder.backend

    def sites(self, config: dict[str, Any] | None = None) -> list[Site]:
        """Every site of every stack's block (with a config: those its model holds)."""
        every = [s for block in (self.block, *(st.block for st in self.stacks)) for s in block if s is not None]
        return [s for s in every if config is None or s.held is None or s.held(config)]


LAYOUTS: dict[str, Layout] = {
    f.model_type: Layout(
        f,
        f.lora.before,
        f.lora.block,
        f.lora.counts,
        f.lora.fan_in_fan_out,
        f.lora.reverse,
        f.lora.stacks,
        f.lora.backend,
    )
    for f in FAMILIES
    if f.lora is not None
}


@dataclass(frozen=True)
class Slot:
    """One adapted layer of a concrete model: its Keras index, transformers module, kernel kind, head count."""

    index: int
    keras: str
    module: str
    kind: str
    heads: int
    refused: str = ""  # why a LoRA here does not convert (LoraSite.refused)
    part: tuple[int, int] | None = None  # (n, k): the n-th of k equal output blocks of its module (LoraSite.part)

    def refusal(self, family: Family, path: str) -> UnsupportedFeature:
        return UnsupportedFeature(
            f"A {family.model_type} LoRA on {self.keras} ({self.module}) does not convert exactly",
            path=path,
            tensor=self.module,
            detail=self.refused,
            hint="Merge the adapter into the base model (merge_and_unload / merge_weights) and convert that",
        )


def slots(layout: Layout, config: dict[str, Any]) -> list[Slot]:
    """Every layer LoRA can adapt in a model of ``config`` (transformers' config.json of the base)."""
    family = layout.family
    entries = (*family.entries, *(e for stack in family.stacks for e in stack.entries))
    kinds = {e.target.removesuffix(".weight"): e.kind for e in entries}
    start = layout.before(config) if callable(layout.before) else layout.before
    stacks = ((0, layout.block, layout.counts), *((s.between, s.block, s.counts) for s in layout.stacks))
    out = []
    for between, block, (layers_key, q_key, kv_key) in stacks:
        start += between
        layers = int(config.get(layers_key) or config[layout.counts[0]])  # T5's decoder: the encoder's count
        heads = {"q": int(config[q_key]), "kv": int(config.get(kv_key) or config[q_key]), "": 0}
        block = tuple(s for s in block if s is None or s.held is None or s.held(config))
        for i in range(layers):
            walked = layers - 1 - i if layout.reverse else i
            for pos, site in enumerate(block):
                if site is not None:
                    kind = site.kind or kinds.get(site.module, "")
                    module = site.module.format(i=i)
                    index = start + walked * len(block) + pos
                    out.append(Slot(index, site.keras, module, kind, heads[site.heads], site.refused, _part(site.part)))
        start += layers * len(block)
    return out


def _part(spelled: str) -> tuple[int, int] | None:
    """``"n/k"`` -> ``(n, k)``; empty: None."""
    if not spelled:
        return None
    n, k = spelled.split("/")
    return int(n), int(k)


def module_prefix(layout: Layout, config: dict[str, Any]) -> str:
    """Where the backbone sits in the class the base's config names (``model.`` in ``LlamaForCausalLM``)."""
    arch = config.get("architectures") or [layout.family.base_class]
    return "" if arch[0] == layout.family.base_class else layout.family.base_prefix + "."


# --- values: KerasHub factors -> PEFT's ``lora_A.weight`` [r, in] and ``lora_B.weight`` [out, r] -------------------


def to_peft(slot: Slot, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PEFT's ``(lora_A, lora_B)`` whose ``lora_B @ lora_A`` is the update Keras' ``a @ b`` makes, at scaling 1."""
    r = a.shape[-1]
    if slot.kind == "dense":  # a [in, r], b [r, out]
        return a.T, b.T
    if slot.kind == "heads_out":  # a [heads, head_dim, r]: one factor over the merged heads
        return a.reshape(-1, r).T, b.T
    if slot.kind == "heads_first_in":  # a [heads, hidden, r] -> [hidden, heads, r]
        a = a.transpose(1, 0, 2)
    if slot.kind not in ("heads_in", "heads_first_in"):
        raise UnsupportedFeature(f"LoRA on a `{slot.kind}` kernel is not converted", tensor=slot.module)
    hidden, heads, _ = a.shape  # a [hidden, heads, r], b [r, head_dim]: one A per head, B shared
    head_dim = b.shape[1]
    lora_a = a.transpose(1, 2, 0).reshape(heads * r, hidden)
    lora_b = np.zeros((heads * head_dim, heads * r), dtype=b.dtype)
    for h in range(heads):
        lora_b[h * head_dim : (h + 1) * head_dim, h * r : (h + 1) * r] = b.T
    return lora_a, lora_b


def join_parts(parts: list[tuple[Slot, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One module's PEFT pair from its layers' pairs: a lone layer's as it is; the blocks of a fused module (its
    ``part``s) as one LoRA of their ranks summed, ``A`` stacked and each ``B`` on its block's rows (zero
    elsewhere, a block no LoRA adapts all zero)."""
    first = parts[0][0].part
    if first is None:
        return parts[0][1], parts[0][2]
    block_out, blocks = parts[0][2].shape[0], first[1]
    lora_a = np.concatenate([a for _, a, _ in parts], axis=0)
    lora_b = np.zeros((blocks * block_out, lora_a.shape[0]), dtype=parts[0][2].dtype)
    col = 0
    for slot, a, b in parts:
        n = slot.part[0] if slot.part else 0
        lora_b[n * block_out : (n + 1) * block_out, col : col + a.shape[0]] = b
        col += a.shape[0]
    return lora_a, lora_b


def part_of(slot: Slot, lora_b: np.ndarray) -> np.ndarray:
    """The rows of a fused module's ``lora_B`` that make this layer's block (with ``lora_A`` shared: exact)."""
    if slot.part is None:
        return lora_b
    n, blocks = slot.part
    rows = lora_b.shape[0] // blocks
    return lora_b[n * rows : (n + 1) * rows]


def to_keras(
    slot: Slot, lora_a: np.ndarray, lora_b: np.ndarray, scaling: float, rank: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keras' ``(lora_kernel_a, lora_kernel_b)`` of rank ``rank`` making the update PEFT's pair makes at
    ``scaling``; computed in float64, stored float32 (KerasHub keeps LoRA factors in float32)."""
    a64, b64 = lora_a.astype(np.float64), lora_b.astype(np.float64) * scaling
    r = a64.shape[0]
    if slot.kind in ("dense", "heads_out"):
        a = a64.T  # [in, r]
        if slot.kind == "heads_out":
            a = a.reshape(slot.heads, -1, r)
        b = b64.T  # [r, out]
        a = np.concatenate([a, np.zeros((*a.shape[:-1], rank - r))], axis=-1)
        b = np.concatenate([b, np.zeros((rank - r, b.shape[1]))], axis=0)
        return a.astype(np.float32), b.astype(np.float32)
    out, hidden = b64.shape[0], a64.shape[1]
    head_dim = out // slot.heads
    update = (b64 @ a64).T.reshape(hidden, slot.heads, head_dim)  # each head's whole update
    if slot.kind == "heads_first_in":
        update = update.transpose(1, 0, 2)
    a = np.concatenate([update, np.zeros((*update.shape[:-1], rank - head_dim))], axis=-1)
    b = np.eye(rank, head_dim)
    return a.astype(np.float32), b.astype(np.float32)


def needed_rank(slot: Slot, lora_a: np.ndarray, lora_b: np.ndarray) -> int:
    """The smallest Keras rank ``to_keras`` can write this pair at."""
    if slot.kind in ("heads_in", "heads_first_in"):
        return int(lora_b.shape[0]) // slot.heads
    return int(lora_a.shape[0])


# --- PEFT's config and names --------------------------------------------------------------------------------------


def peft_scaling(config: dict[str, Any], module: str, rank: int) -> float:
    """PEFT's scaling of ``module``: ``lora_alpha`` (or its ``alpha_pattern``) over ``r`` (``sqrt(r)`` rslora)."""
    alpha = float(config.get("lora_alpha", 8))
    for key, value in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            alpha = float(value)
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def peft_config(
    slots_written: list[tuple[Slot, int]],
    rank: int,
    prefix: str,
    base: str,
    task: str | None,
    fan_in_fan_out: bool = False,
) -> Any:
    """adapter_config.json for modules written at the given ranks, each at scaling 1 (alpha = its rank)."""
    other = {prefix + s.module: r for s, r in slots_written if r != rank}
    return {
        "peft_type": "LORA",
        "task_type": task,
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": rank,
        "rank_pattern": other,
        "alpha_pattern": dict(other),
        "target_modules": sorted({prefix + s.module for s, _ in slots_written}),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "inference_mode": True,
    }


def peft_key(prefix: str, module: str, factor: str) -> str:
    return f"{_PEFT_PREFIX}{prefix}{module}.lora_{factor}.weight"


def peft_module(key: str, prefix: str) -> tuple[str, str] | None:
    """``(module without the backbone prefix, "A" | "B")`` of a PEFT tensor name, or None."""
    m = re.fullmatch(rf"{re.escape(_PEFT_PREFIX)}(?P<module>.+)\.lora_(?P<f>[AB])(?:\.[^.]+)?\.weight", key)
    if m is None:
        return None
    module = m["module"]
    return (module.removeprefix(prefix) if prefix and module.startswith(prefix) else module), m["f"]


def check_peft_config(config: dict[str, Any], path: str) -> None:
    """Refuse what a ``.lora.h5`` cannot hold, by name."""
    hint = "Merge it into the base model instead (PeftModel.merge_and_unload) and convert that"
    if config.get("peft_type", "LORA") != "LORA":
        raise UnsupportedFeature(
            "Not a LoRA adapter", path=path, detail=f"peft_type {config.get('peft_type')}", hint=hint
        )
    found = {
        "use_dora": config.get("use_dora"),
        "bias": config.get("bias", "none") != "none" and config.get("bias"),
        "modules_to_save": config.get("modules_to_save"),
    }
    for key, value in found.items():
        if value:
            raise UnsupportedFeature(
                "The adapter holds what KerasHub's LoRA file has no place for",
                path=path,
                detail=f"{key} = {config.get(key)!r}",
                hint=hint,
            )


def keras_targets(written: list[Slot]) -> list[str]:
    """``target_layer_names`` for ``enable_lora`` that adapts exactly these layers."""
    return sorted({s.keras for s in written})


def layout_for(model_type: str) -> Layout:
    """The LoRA layout of transformers' ``model_type`` (a preset's: the type ``convert`` writes it as)."""
    layout = LAYOUTS.get(model_type)
    if layout is None:
        known = ", ".join(sorted(LAYOUTS))
        raise UsageError(
            "No LoRA layout for this base model",
            detail=f"model_type {model_type!r}",
            hint=f"LoRA adapters convert for the families {known}",
        )
    return layout
