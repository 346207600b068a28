"""KerasHub Qwen 3.5 (text) <-> transformers ``qwen3_5_text``: a hybrid decoder whose layers are either gated full
attention (a query projection holding per head its query and its output gate, query and key norms, partial rotary
embedding) or gated delta-net linear attention (a depthwise causal conv over the fused query-key-value
projection, decay ``A_log`` and ``dt_bias``, a gated RMSNorm).  ``layer_types`` decides which variables a layer
holds.  Both libraries' norms are ``(1 + w)`` RMSNorms except the linear attention's gated one (``w``), so the
values copy unchanged."""

from __future__ import annotations

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


_full, _delta = _of_type(_FULL), _of_type(_DELTA)
_ENTRIES = (
    Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
    Entry(_TIED, "lm_head.weight", "dense"),
    Entry("layers/qwen3_5_layer_norm/vars/0", "norm.weight"),
    Entry("_input_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
    Entry("_post_attention_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
    *(
        Entry(f"_feedforward_{k}_dense/vars/0", f"layers.{{i}}.mlp.{p}_proj.weight", "dense")
        for k, p in (("gate", "gate"), ("intermediate", "up"), ("output", "down"))
    ),
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


def _to_keras(c: Config) -> Config:
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
        "intermediate_dim": c["intermediate_size"],
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


def _to_transformers(c: Config) -> Config:
    if c.get("vision_encoder"):
        raise UsageError(
            "This KerasHub Qwen 3.5 preset cannot be written for transformers' qwen3_5_text",
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
        "model_type": "qwen3_5_text",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "intermediate_size": c["intermediate_dim"],
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
