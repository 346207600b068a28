"""Gemma 4, text only: ``Gemma4Backbone`` <-> ``Gemma4TextModel``, ``Gemma4CausalLM`` <-> ``Gemma4ForCausalLM``
(Gemma 3's block with a learned scalar per layer, queries unscaled after their norms, wider heads in the full layers
and a proportional partial rotary there), with or without full layers whose keys double as values over their own
count of key heads (transformers' ``attention_k_eq_v``, KerasHub's ``num_global_key_value_heads``), the last layers
reusing an earlier layer's keys and values (``num_kv_shared_layers``, double-wide feed-forwards there) and per-layer
embeddings (``hidden_size_per_layer_input``).  Mixture-of-experts blocks and the vision and audio towers are refused
by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.gemma import notes
from bridge.families.keras_hub.families.gemma3 import GEMMA3
from bridge.families.keras_hub.families.qwen3_5 import language_model, published_text
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_FULL, _SLIDING = "full_attention", "sliding_attention"
_ASSISTANT = "An assistant whose every layer reuses another model's keys has no causal-LM counterpart"
# Keras config key -> the value that computes what this family converts (what no entry holds or the math differs)
_PLAIN = {
    "vision_encoder": None,
    "audio_encoder": None,
    "enable_moe_block": False,
    "use_bidirectional_attention": False,
    "use_vision_bidirectional_attention": False,
    "is_embedding_model": False,
    "attention_logit_soft_cap": None,  # transformers' Gemma 4 text attention has no soft cap
    "local_rope_scaling_factor": 1.0,
    "global_rope_scaling_factor": 1.0,
}
# the backbone's keys left unset (None) in a text-only model without experts or pooling
_UNSET = (
    "embedding_dim",
    "pooling_intermediate_dim",
    "expert_intermediate_dim",
    "num_experts",
    "num_audio_tokens_per_clip",
)
# transformers config key -> the value this family converts (unset: the same)
_PLAIN_TRANSFORMERS = (
    ("tie_word_embeddings", True, "KerasHub Gemma 4's output projection is its embeddings"),
    ("attention_bias", False, "KerasHub Gemma 4 has no biases"),
    ("enable_moe_block", False, "Gemma 4's mixture-of-experts blocks are not converted today"),
    ("use_bidirectional_attention", None, "Only causal Gemma 4 text models are written as presets"),
)


def _unlike_transformers(c: Config) -> str:
    """What a ``Gemma4Backbone`` config computes otherwise than ``Gemma4ForCausalLM`` (empty: nothing)."""
    for key, plain in _PLAIN.items():
        if c.get(key, plain) not in (plain, None if plain in (0, False) else plain):
            return f"{key} is {c[key]!r} (this family converts {plain!r}: text only, no experts)"
    types = c.get("layer_types") or []
    if len(types) != c["num_layers"] or types[-1] != _FULL:
        return f"layer_types {types} (one per layer, the last full_attention as transformers forces)"
    if _SLIDING in types and not c.get("use_sliding_window_attention", True):
        return "use_sliding_window_attention is false with sliding_attention layers"
    if c.get("num_kv_shared_layers", 0) >= c["num_layers"] > 0:
        return f"num_kv_shared_layers {c['num_kv_shared_layers']}: every layer reads another model's keys"
    return ""


def _keys_as_values(c: Config) -> Config:
    """The full layers' ``per_layer_config`` key heads where their keys double as values (empty: they do not)."""
    heads = c.get("num_global_key_value_heads")
    return {} if heads is None else {"num_key_value_heads": heads}


def _own_keys(c: Config, i: int) -> bool:
    """An :attr:`Entry.held` predicate: layer ``i`` computes keys (not one of the last ``num_kv_shared_layers``,
    which reuse the last earlier layer's of their kind in both libraries)."""
    return i < int(c["num_layers"]) - int(c.get("num_kv_shared_layers") or 0)


def _own_values(c: Config, i: int) -> bool:
    """An :attr:`Entry.held` predicate: layer ``i`` has a value projection (computes keys, and is not a full layer
    reusing them as values)."""
    return _own_keys(c, i) and (c["layer_types"][i] != _FULL or c.get("num_global_key_value_heads") is None)


def _to_transformers(c: Config) -> Config:
    unlike = _unlike_transformers(c)
    if unlike:
        raise UsageError(
            "This Gemma4Backbone has no transformers Gemma4ForCausalLM counterpart",
            detail=unlike,
            hint="Convert a text-only Gemma 4 preset without experts, some layers computing keys",
        )
    head_dim = c["head_dim"]
    factor = c.get("global_rope_partial_rotary_factor")
    return {
        "model_type": "gemma4_text",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": head_dim,
        # as save_pretrained writes the full layers' wider heads (the config's ``global_head_dim`` argument)
        "per_layer_config": {
            str(i): {"head_dim": c.get("global_head_dim") or head_dim} | _keys_as_values(c)
            for i, kind in enumerate(c["layer_types"])
            if kind == _FULL
        },
        "hidden_activation": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "max_position_embeddings": 131072,
        "final_logit_softcapping": c.get("final_logit_soft_cap"),
        "sliding_window": c.get("sliding_window_size", 512),
        "layer_types": list(c["layer_types"]),
        "rope_parameters": {
            _SLIDING: {"rope_type": "default", "rope_theta": c.get("local_rope_wavelength") or 10_000.0},
            _FULL: {
                "rope_type": "proportional",
                "partial_rotary_factor": 1.0 if factor is None else factor,
                "rope_theta": c.get("global_rope_wavelength") or 1_000_000.0,
            },
        },
        "hidden_size_per_layer_input": c.get("hidden_size_per_layer_input") or 0,
        "vocab_size_per_layer_input": c.get("vocab_size_per_layer_input") or c["vocabulary_size"],
        "attention_k_eq_v": bool(_keys_as_values(c)),
        "num_kv_shared_layers": c.get("num_kv_shared_layers") or 0,
        "enable_moe_block": False,
        "use_double_wide_mlp": bool(c.get("use_double_wide_mlp")),
        "tie_word_embeddings": True,
    }


def _full_layer(c: Config, key: str, default: Any, refused: str = "") -> Any:
    """One value of every full layer's ``per_layer_config`` override (refused where the full layers differ, or with
    the reason ``refused`` where any layer overrides it)."""
    full = [i for i, t in enumerate(c["layer_types"]) if t == _FULL]
    per_layer = {int(k): v for k, v in (c.get("per_layer_config") or {}).items()}
    values = {(per_layer.get(i) or {}).get(key, default) for i in full}
    own = {"head_dim", "num_key_value_heads"}
    if len(values) > 1 or any(set(per_layer.get(i) or {}) - own or i not in full for i in per_layer):
        raise refuse(c, f"per_layer_config {per_layer}", "KerasHub Gemma 4 gives every full layer one head layout")
    if refused and values and values != {default}:
        raise refuse(c, f"per_layer_config {key} {values.pop()} where {refused}", "KerasHub Gemma 4 lacks it")
    return values.pop() if values else default


def _rope(c: Config, kind: str, rope_type: str) -> Any:
    rope: Any = (c.get("rope_parameters") or {}).get(kind) or {}
    if rope.get("rope_type", rope_type) != rope_type:
        raise refuse(c, f"{kind} rope_type {rope.get('rope_type')}", f"KerasHub Gemma 4's {kind} rope is {rope_type}")
    return rope


def _shared_layers(c: Config) -> int:
    shared = int(c.get("num_kv_shared_layers") or 0)
    if shared >= c["num_hidden_layers"] > 0:
        raise refuse(c, f"num_kv_shared_layers {shared}: every layer reads another model's keys", _ASSISTANT)
    return shared


def _to_keras(c: Config) -> Config:
    require(c, _PLAIN_TRANSFORMERS, unset_ok=True)
    if c.get("attn_logit_softcapping"):
        raise refuse(c, "attn_logit_softcapping is set", "transformers' Gemma 4 text attention ignores it")
    layers, types = c["num_hidden_layers"], list(c["layer_types"])
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    sliding, full = _rope(c, _SLIDING, "default"), _rope(c, _FULL, "proportional")
    return {
        "vocabulary_size": c["vocab_size"],
        "image_size": None,
        "num_layers": layers,
        "num_query_heads": c["num_attention_heads"],
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "head_dim": head_dim,
        "global_head_dim": _full_layer(c, "head_dim", head_dim),
        # the full layers' key heads doubling as values (None: those layers have values of their own)
        "num_global_key_value_heads": (
            _full_layer(c, "num_key_value_heads", c.get("num_key_value_heads") or c["num_attention_heads"])
            if c.get("attention_k_eq_v")
            else _full_layer(c, "num_key_value_heads", None, "attention_k_eq_v is false")
        ),
        "query_head_dim_normalize": True,  # unread: Gemma 4 leaves queries unscaled after their norm
        "attention_logit_soft_cap": None,
        "final_logit_soft_cap": c.get("final_logit_softcapping"),
        "use_sliding_window_attention": True,
        "sliding_window_size": c.get("sliding_window") or 512,
        "layer_types": types,
        "layer_norm_epsilon": c.get("rms_norm_eps") or 1e-6,
        "dropout": c.get("attention_dropout") or 0,
        "global_rope_wavelength": full.get("rope_theta", 1_000_000.0),
        "local_rope_wavelength": sliding.get("rope_theta", 10_000.0),
        "global_rope_partial_rotary_factor": full.get("partial_rotary_factor", 1.0),
        # transformers' default where unset (as KerasHub's: 0 where null)
        "hidden_size_per_layer_input": c.get("hidden_size_per_layer_input", 256) or 0,
        "vocab_size_per_layer_input": c.get("vocab_size_per_layer_input", 262_144)
        if c.get("hidden_size_per_layer_input", 256)
        else None,
        "num_kv_shared_layers": _shared_layers(c),
        "enable_moe_block": False,
        "use_double_wide_mlp": bool(c.get("use_double_wide_mlp")),
        "vision_encoder": None,
        "audio_encoder": None,
        # the backbone's defaults, written as save_to_preset writes them
        "sliding_window_pattern": 6,  # unread where layer_types is given
        "local_rope_scaling_factor": 1.0,
        "global_rope_scaling_factor": 1.0,
        "use_bidirectional_attention": False,
        "use_vision_bidirectional_attention": False,
        "is_embedding_model": False,
        "num_experts_per_token": 8,
        **dict.fromkeys(_UNSET),
    }


def _held_by(source: str) -> Callable[[Config, int], bool] | None:
    """Which layers hold a Gemma 3 entry's variable (none: every layer)."""
    if "value_dense" in source:
        return _own_values
    return _own_keys if "key_" in source else None


_FINAL_NORM = "layers/rms_normalization/vars/0"


def _per_layer(c: Config, i: int = 0) -> bool:
    """Whether the backbone has per-layer embeddings (an :attr:`Entry.held` predicate too: every layer or none)."""
    return bool(c.get("hidden_size_per_layer_input"))


def _model_entries(c: Config) -> tuple[Entry, ...]:
    """The per-layer embeddings' tables where the backbone has them (built first, so the final norm is then ``_1``)."""
    if not _per_layer(c):
        return (Entry(_FINAL_NORM, "norm.weight"),)
    return (
        Entry("layers/embedding/vars/0", "embed_tokens_per_layer.weight"),
        Entry("layers/dense/vars/0", "per_layer_model_projection.weight", "dense"),
        Entry(_FINAL_NORM, "per_layer_projection_norm.weight"),
        Entry("layers/rms_normalization_1/vars/0", "norm.weight"),
    )


def _head_dim_of(c: Config, i: int) -> int:
    """Layer ``i``'s head size: the full layers' own where the backbone gives one."""
    return int(c.get("global_head_dim") or c["head_dim"]) if c["layer_types"][i] == _FULL else int(c["head_dim"])


GEMMA4 = Family(
    backbone="Gemma4Backbone",
    model_type="gemma4_text",
    base_class="Gemma4TextModel",
    base_prefix="model",
    layer="gemma4_text_decoder_block",
    entries=(
        *(replace(e, held=_held_by(e.source)) for e in GEMMA3.entries if e.source != _FINAL_NORM),
        Entry("vars/0", "layers.{i}.layer_scalar", "lead1"),
        Entry("per_layer_input_gate/vars/0", "layers.{i}.per_layer_input_gate.weight", "dense", held=_per_layer),
        Entry("per_layer_up_proj/vars/0", "layers.{i}.per_layer_projection.weight", "dense", held=_per_layer),
        Entry("post_per_layer_input_norm/vars/0", "layers.{i}.post_per_layer_input_norm.weight", held=_per_layer),
    ),
    variant=_model_entries,
    config=_to_transformers,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"Gemma4CausalLM": "Gemma4ForCausalLM"},
    generates=True,
    head_dim_of=_head_dim_of,
    writing=Writing("keras_hub.src.models.gemma4", _to_keras, ("CausalLM",), notes=notes, tokenizer="Gemma4Tokenizer"),
)

_TOWERS_NOTE = "the {} (model.{}) is not converted: the preset holds the language model alone"
# the multimodal model's parts a preset of its language model leaves out: (saved-name regex, what it is)
_TOWERS = (
    (r"vision_tower\..*", "vision tower"),
    (r"embed_vision\..*", "vision embedding projection"),
    (r"audio_tower\..*", "audio tower"),
    (r"embed_audio\..*", "audio embedding projection"),
)


def _towers_notes(c: Config) -> list[str]:
    towers = [("vision tower", "vision_tower.*, embed_vision.*")] if c.get("vision_config") else []
    towers += [("audio tower", "audio_tower.*, embed_audio.*")] if c.get("audio_config") else []
    return [_TOWERS_NOTE.format(*tower) for tower in towers] + notes(c.get("text_config") or {})


def _published_to_keras(c: Config) -> Config:
    return _to_keras({**published_text(c), "model_type": "gemma4_text"})


# The published Gemma 4 checkpoints: transformers' multimodal ``gemma4`` (Gemma4ForConditionalGeneration), the text
# model under ``model.language_model.``, vision and audio towers beside it that the preset leaves out.  Read only: a
# preset is written back as text-only ``gemma4_text`` (GEMMA4 claims it).
GEMMA4_PUBLISHED = replace(
    GEMMA4,
    model_type="gemma4",
    base_class="Gemma4Model",
    entries=tuple(language_model(e) for e in GEMMA4.entries),
    variant=lambda c: tuple(language_model(e) for e in _model_entries(c)),
    claims=lambda keras: False,
    tasks={"Gemma4CausalLM": "Gemma4ForConditionalGeneration"},
    unkept=tuple(
        (regex, f"Gemma 4's {what}, which a preset of the language model leaves out") for regex, what in _TOWERS
    ),
    writing=replace(GEMMA4.writing, keras_config=_published_to_keras, notes=_towers_notes) if GEMMA4.writing else None,
)
