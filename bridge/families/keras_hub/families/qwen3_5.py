"""KerasHub Qwen 3.5 (text) <-> transformers ``qwen3_5_text``: a hybrid decoder whose layers are either gated full
attention (a query projection holding per head its query and its output gate, query and key norms, partial rotary
embedding) or gated delta-net linear attention (a depthwise causal conv over the fused query-key-value
projection, decay ``A_log`` and ``dt_bias``, a gated RMSNorm).  ``layer_types`` decides which variables a layer
holds.  Both libraries' norms are ``(1 + w)`` RMSNorms except the linear attention's gated one (``w``), so the
values copy unchanged."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.decoder import rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_LAYER = "qwen3_5_transformer_decoder"
_ATTN = "_self_attention_layer"
_LINEAR = "_linear_attn"
_TIED = "layers/reversible_embedding/vars/1"
_FULL, _DELTA = "full_attention", "linear_attention"
_CONTEXT = 32768  # transformers' max_position_embeddings default and KerasHub's sliding_window_size default


def _of_type(kind: str) -> Any:
    """An :attr:`Entry.held` predicate: the layers whose ``layer_types`` entry is ``kind``."""
    return lambda keras, i: _types(keras)[i] == kind


def _types(keras: Config) -> list[str]:
    """KerasHub's layer types (its own default where the config has none: every fourth layer full attention)."""
    types = keras.get("layer_types")
    return list(types) if types else [_DELTA if (i + 1) % 4 else _FULL for i in range(int(keras["num_layers"]))]


def feedforward(path: str, module: str) -> tuple[Entry, ...]:
    """A gated SiLU feed-forward (KerasHub's ``path``: its three dense layers) under transformers' ``module``."""
    return tuple(
        Entry(f"{path}_feedforward_{k}_dense/vars/0", f"{module}.{p}_proj.weight", "dense")
        for k, p in (("gate", "gate"), ("intermediate", "up"), ("output", "down"))
    )


_full, _delta = _of_type(_FULL), _of_type(_DELTA)
# the embeddings, the output projection, the final norm and every layer but its feed-forward: shared with Qwen 3.5 MoE
BLOCK = (
    Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
    Entry(_TIED, "lm_head.weight", "dense"),
    Entry("layers/qwen3_5_layer_norm/vars/0", "norm.weight"),
    Entry("_input_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
    Entry("_post_attention_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
    # per head its query then its output gate, head_dim each, in both libraries
    Entry(f"{_ATTN}/_query_dense/vars/0", "layers.{i}.self_attn.q_proj.weight", "heads_in*2", held=_full),
    *(
        Entry(f"{_ATTN}/_{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in", held=_full)
        for k, p in (("key", "k"), ("value", "v"))
    ),
    *(
        Entry(f"{_ATTN}/_{k}_norm/vars/0", f"layers.{{i}}.self_attn.{p}_norm.weight", held=_full)
        for k, p in (("query", "q"), ("key", "k"))
    ),
    Entry(f"{_ATTN}/_output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out", held=_full),
    Entry(f"{_LINEAR}/vars/0", "layers.{i}.linear_attn.conv1d.weight", "axis1", held=_delta),
    Entry(f"{_LINEAR}/vars/1", "layers.{i}.linear_attn.dt_bias", held=_delta),
    Entry(f"{_LINEAR}/vars/2", "layers.{i}.linear_attn.A_log", held=_delta),
    *(
        Entry(f"{_LINEAR}/{p}/vars/0", f"layers.{{i}}.linear_attn.{p}.weight", "dense", held=_delta)
        for p in ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj")
    ),
    Entry(f"{_LINEAR}/norm/vars/0", "layers.{i}.linear_attn.norm.weight", held=_delta),
)
_ENTRIES = (*BLOCK, *feedforward("", "layers.{i}.mlp"))


def keras_common(c: Config) -> Config:
    """The Keras config of a transformers Qwen 3.5 text config (MoE or not) but for its feed-forward sizes."""
    require(
        c,
        (
            ("attention_bias", False, "KerasHub Qwen 3.5's attention projections have no biases"),
            ("hidden_act", "silu", "KerasHub Qwen 3.5's feed-forward and conv activations are SiLU"),
        ),
    )
    rope = c.get("rope_parameters") or {}
    layers = int(c["num_hidden_layers"])
    types = list(c.get("layer_types") or [_DELTA if (i + 1) % 4 else _FULL for i in range(layers)])
    unknown = sorted(set(types) - {_FULL, _DELTA})
    if unknown:
        raise refuse(c, f"layer_types {', '.join(unknown)}", "KerasHub Qwen 3.5 has full and linear attention only")
    heads, linear_k = int(c["linear_num_value_heads"]), int(c["linear_num_key_heads"])
    if heads % linear_k:
        raise refuse(
            c,
            f"linear_num_value_heads {heads} is not a multiple of linear_num_key_heads {linear_k}",
            "Both libraries repeat each key head over a whole number of value heads",
        )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": layers,
        "num_query_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "head_dim": c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
        "layer_types": types,
        "partial_rotary_factor": rope.get("partial_rotary_factor", c.get("partial_rotary_factor", 0.25)),
        "rope_max_wavelength": rope_theta(c),
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "sliding_window_size": None,  # transformers attends over everything
        "linear_num_key_heads": linear_k,
        "linear_num_value_heads": heads,
        "linear_key_head_dim": c["linear_key_head_dim"],
        "linear_value_head_dim": c["linear_value_head_dim"],
        "linear_conv_kernel_dim": c["linear_conv_kernel_dim"],
        "mrope_section": None,  # text alone: one position per token, what transformers' text model rotates by
        "vision_encoder": None,
    }


def _to_keras(c: Config) -> Config:
    return keras_common(c) | {"intermediate_dim": c["intermediate_size"]}


def transformers_common(c: Config, model_type: str) -> Config:
    """The transformers config of a Qwen 3.5 preset's Keras config (MoE or not) but for its feed-forward sizes."""
    if c.get("vision_encoder"):
        raise UsageError(
            f"This KerasHub Qwen 3.5 preset cannot be written for transformers' {model_type}",
            detail="it has a vision_encoder",
            hint="Only text-only Qwen 3.5 presets convert",
        )
    if c.get("rope_scaling_factor", 1.0) not in (None, 1.0):
        raise UsageError(
            "This KerasHub Qwen 3.5 preset cannot be written for transformers",
            detail=f"rope_scaling_factor {c['rope_scaling_factor']}",
            hint="transformers' Qwen 3.5 has no rotary position scaling of that kind",
        )
    window = c.get("sliding_window_size")
    theta = c.get("rope_max_wavelength", 10000)
    return {
        "model_type": model_type,
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "attention_bias": False,
        "attention_dropout": c.get("dropout", 0.0),
        "layer_types": _types(c),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": theta,
            "partial_rotary_factor": c.get("partial_rotary_factor", 0.25),
        },
        # KerasHub's sliding window (default 32768) cuts nothing within a context of that length
        "max_position_embeddings": int(window) if window else _CONTEXT,
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "linear_num_key_heads": c.get("linear_num_key_heads", 16),
        "linear_num_value_heads": c.get("linear_num_value_heads", 32),
        "linear_key_head_dim": c.get("linear_key_head_dim", 128),
        "linear_value_head_dim": c.get("linear_value_head_dim", 128),
        "linear_conv_kernel_dim": c.get("linear_conv_kernel_dim", 4),
    }


def _to_transformers(c: Config) -> Config:
    return transformers_common(c, "qwen3_5_text") | {"intermediate_size": c["intermediate_dim"]}


QWEN3_5 = Family(
    backbone="Qwen3_5Backbone",
    model_type="qwen3_5_text",
    base_class="Qwen3_5TextModel",
    base_prefix="model",
    layer=_LAYER,
    entries=_ENTRIES,
    config=_to_transformers,
    tasks={"Qwen3_5CausalLM": "Qwen3_5ForCausalLM"},
    generates=True,
    tokenizer="Qwen2Tokenizer",
    vocabulary="bpe",
    writing=Writing(
        "keras_hub.src.models.qwen3_5",
        _to_keras,
        ("CausalLM",),
        _TIED,
        tokenizer="Qwen3_5Tokenizer",
        tokenizer_config={"unsplittable_tokens": ["<|endoftext|>"]},
    ),
)


def language_model(entry: Entry) -> Entry:
    """A text family's entry as a multimodal transformers model names it: under ``language_model.`` but for the
    output projection, which the multimodal model keeps at its top level (beside the base prefix)."""
    return entry if entry.target.startswith("lm_head.") else replace(entry, target="language_model." + entry.target)


def published_text(c: Config) -> Config:
    """A multimodal transformers config's text settings (``text_config``) with its top-level output tying."""
    return {
        **(c.get("text_config") or {}),
        "model_type": c.get("model_type"),
        "tie_word_embeddings": c.get("tie_word_embeddings", False),
    }


_VISION_NOTE = "the vision tower (model.visual.*) is not converted: the preset holds the language model alone"

# The published Qwen 3.5 checkpoints: transformers' multimodal ``qwen3_5`` (Qwen3_5ForConditionalGeneration), the text
# model under ``model.language_model.`` and a vision tower under ``model.visual.`` that the preset leaves out.  Read
# only: a preset is written back as text-only ``qwen3_5_text`` (QWEN3_5 claims it).
QWEN3_5_PUBLISHED = Family(
    backbone="Qwen3_5Backbone",
    model_type="qwen3_5",
    base_class="Qwen3_5Model",
    base_prefix="model",
    layer=_LAYER,
    entries=tuple(language_model(e) for e in _ENTRIES),
    config=_to_transformers,
    claims=lambda keras: False,
    tasks={"Qwen3_5CausalLM": "Qwen3_5ForConditionalGeneration"},
    generates=True,
    tokenizer="Qwen2Tokenizer",
    vocabulary="bpe",
    unkept=((r"visual\..*", "Qwen 3.5's vision tower, which a preset of the language model leaves out"),),
    writing=Writing(
        "keras_hub.src.models.qwen3_5",
        lambda c: _to_keras(published_text(c)),
        ("CausalLM",),
        _TIED,
        notes=lambda c: [_VISION_NOTE] if c.get("vision_config") else [],
        tokenizer="Qwen3_5Tokenizer",
        tokenizer_config={"unsplittable_tokens": ["<|endoftext|>"]},
    ),
)
