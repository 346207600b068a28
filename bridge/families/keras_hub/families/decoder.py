"""Llama-shaped decoders (RMSNorm, rotary, SwiGLU, grouped-query attention): Llama, Mistral, Qwen 2 and Qwen 3
share one table and differ in their final norm's name, q/k/v biases, Qwen 3's per-head q/k norms and a few config
keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import (
    TOKENIZER_FILES_KEY,
    Config,
    Entry,
    Family,
    LoraOrder,
    LoraSite,
    Writing,
    no_notes,
    refuse,
)

_ATTN = "_self_attention_layer"
_TIED = "layers/reversible_embedding/vars/1"
# The weighted layers of a decoder block in Keras' order (the index save_lora_weights keys a layer by)
_LORA = LoraOrder(
    1,
    (
        None,  # the decoder block
        None,  # feedforward_layernorm
        LoraSite("feedforward_output_dense", "layers.{i}.mlp.down_proj"),
        LoraSite("feedforward_gate_dense", "layers.{i}.mlp.gate_proj"),
        LoraSite("feedforward_intermediate_dense", "layers.{i}.mlp.up_proj"),
        None,  # self_attention_layernorm
        None,  # self_attention
        LoraSite("attention_output", "layers.{i}.self_attn.o_proj", "q"),
        LoraSite("value", "layers.{i}.self_attn.v_proj", "kv"),
        LoraSite("key", "layers.{i}.self_attn.k_proj", "kv"),
        LoraSite("query", "layers.{i}.self_attn.q_proj", "q"),
    ),
)  # the output projection, absent when the embeddings are tied


def _to_transformers(model_type: str, **extra: Any) -> Callable[[Config], Config]:
    """The config mapping of a Llama-shaped decoder; ``extra`` adds transformers keys (a string value naming a
    Keras key takes that key's value)."""

    def mapping(c: Config) -> Config:
        out = {
            "model_type": model_type,
            "vocab_size": c["vocabulary_size"],
            "hidden_size": c["hidden_dim"],
            "num_hidden_layers": c["num_layers"],
            "num_attention_heads": c["num_query_heads"],
            "num_key_value_heads": c["num_key_value_heads"],
            "intermediate_size": c["intermediate_dim"],
            "hidden_act": "silu",
            "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
            "rope_theta": c.get("rope_max_wavelength", 10000),
            "max_position_embeddings": 2048,
            "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        }
        if c.get("head_dim"):
            out["head_dim"] = c["head_dim"]
        return out | {k: (c[v] if isinstance(v, str) and v in c else v) for k, v in extra.items()}

    return mapping


def rope_theta(c: Config, kinds: tuple[str, ...] = ("default",)) -> float:
    """The rotary base of a transformers config, refusing the scaled kinds (beyond ``kinds``) the KerasHub decoder
    does not compute."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if kind not in kinds:
        known = " or ".join(kinds)
        raise refuse(c, f"rope_type {kind}", f"This KerasHub backbone computes the {known} rotary embedding only")
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return float(theta if theta is not None else c.get("rope_theta") or 10000.0)


# Llama 3.1's frequency smoothing: transformers' ``llama3`` rope parameters and KerasHub Llama's constructor keys,
# the same frequencies both ways (KerasHub's LlamaRotaryEmbedding and transformers' _compute_llama3_parameters)
_LLAMA3_ROPE = (
    ("factor", "rope_frequency_adjustment_factor"),
    ("low_freq_factor", "rope_low_freq_factor"),
    ("high_freq_factor", "rope_high_freq_factor"),
    ("original_max_position_embeddings", "rope_pretraining_sequence_length"),
)


def _llama_rope_to_keras(c: Config) -> Config:
    """KerasHub Llama's rotary keys of a transformers config (unscaled, or Llama 3.1's ``llama3`` smoothing)."""
    theta = rope_theta(c, ("default", "llama3"))
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    scaled = rope.get("rope_type", rope.get("type")) == "llama3"
    out: Config = {"rope_max_wavelength": theta, "rope_position_scaling_factor": 1.0}
    for key, keras_key in _LLAMA3_ROPE:
        out[keras_key] = rope.get(key) if scaled else None
    if scaled and rope.get("original_max_position_embeddings") is None:
        out["rope_pretraining_sequence_length"] = c.get("max_position_embeddings")
    return out


def _llama_rope_to_transformers(c: Config) -> Config:
    """transformers' rope parameters of a KerasHub Llama config, refusing a position scaling it does not share."""
    scale = c.get("rope_position_scaling_factor", 1.0)
    theta = c.get("rope_max_wavelength", 10000)
    if scale not in (None, 1.0):
        raise UsageError(
            "This KerasHub Llama preset cannot be written for transformers",
            detail=f"rope_position_scaling_factor {scale}",
            hint="transformers' Llama has no rotary position scaling of that kind",
        )
    if c.get("rope_low_freq_factor") is None:
        return {"rope_theta": theta}
    rope = {"rope_type": "llama3", "rope_theta": theta} | {k: c[keras] for k, keras in _LLAMA3_ROPE}
    return {"rope_theta": theta, "rope_parameters": rope}


def head_dim_is_derived(c: Config) -> None:
    derived = c["hidden_size"] // c["num_attention_heads"]
    if c.get("head_dim") not in (None, derived):
        raise refuse(
            c,
            f"head_dim {c['head_dim']} is not hidden_size / num_attention_heads ({derived})",
            "This KerasHub backbone derives head_dim from hidden_dim",
        )


def _to_keras(c: Config) -> Config:
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "rope_max_wavelength": rope_theta(c),
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
    }


def _llama_to_keras(c: Config) -> Config:
    head_dim_is_derived(c)
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise refuse(c, "attention_bias or mlp_bias is set", "KerasHub Llama has no biases")
    rope = _llama_rope_to_keras(c)
    out = _to_keras(c | {"rope_parameters": {"rope_theta": rope["rope_max_wavelength"]}, "rope_scaling": None})
    out = {**{k: out[k] for k in list(out)[:6]}, **rope, **{k: out[k] for k in list(out)[6:]}}
    if c.get("tie_word_embeddings"):  # KerasHub's own get_config leaves it out; its constructor takes it
        out["tie_word_embeddings"] = True
    return out


def _mistral_to_keras(c: Config) -> Config:
    if c.get("tie_word_embeddings"):
        raise refuse(c, "tie_word_embeddings is set", "KerasHub Mistral always has its own output projection")
    out = _to_keras(c)
    window = c.get("sliding_window") or c.get("max_position_embeddings")
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    extra = {
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": out.pop("num_key_value_heads"),
        "sliding_window": window,
        "head_dim": head_dim,
    }
    eps = out.pop("layer_norm_epsilon")
    dropout = out.pop("dropout")
    return out | extra | {"layer_norm_epsilon": eps, "dropout": dropout}


def _qwen2_to_keras(c: Config) -> Config:
    head_dim_is_derived(c)
    out = _to_keras(c)
    kv = out.pop("num_key_value_heads")
    return {
        **{k: out[k] for k in ("vocabulary_size", "num_layers", "num_query_heads", "hidden_dim", "intermediate_dim")},
        "rope_max_wavelength": out["rope_max_wavelength"],
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": kv,
        "layer_norm_epsilon": out["layer_norm_epsilon"],
        "dropout": out["dropout"],
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "use_sliding_window_attention": bool(c.get("use_sliding_window", False)),
        "sliding_window_size": c.get("sliding_window") or 32768,
    }


def _qwen3_to_keras(c: Config) -> Config:
    out = _to_keras(c)
    window = c.get("sliding_window") if c.get("use_sliding_window") else None
    if window and (c.get("max_window_layers") or 0) > 0:
        raise refuse(
            c,
            f"use_sliding_window with max_window_layers {c['max_window_layers']}",
            "KerasHub Qwen 3 slides its window in every layer or none (max_window_layers 0)",
        )
    return {
        **{k: out[k] for k in ("vocabulary_size", "num_layers", "num_query_heads", "hidden_dim")},
        "head_dim": c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
        "intermediate_dim": out["intermediate_dim"],
        "rope_max_wavelength": out["rope_max_wavelength"],
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": out["num_key_value_heads"],
        "layer_norm_epsilon": out["layer_norm_epsilon"],
        "dropout": out["dropout"],
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "sliding_window_size": window,
    }


def _qwen3_to_transformers(c: Config) -> Config:
    """Qwen 3's window (KerasHub: a size in every layer, or None) as transformers spells it."""
    window = c.get("sliding_window_size")
    slides = {"use_sliding_window": True, "sliding_window": window, "max_window_layers": 0}
    return _to_transformers("qwen3")(c) | (slides if window else {"use_sliding_window": False})


def _qwen3_notes(c: Config) -> list[str]:
    eps = c.get("rms_norm_eps", 1e-6)
    if eps == 1e-5:
        return []
    return [f"rms_norm_eps {eps}: KerasHub Qwen 3's query and key norms use 1e-5 whatever its layer_norm_epsilon says"]


def _decoder(
    names: tuple[str, str, str],
    norm: str,
    qkv_bias: bool,
    extra: Config | Callable[[Config], Config],
    to_keras: Callable[[Config], Config],
    tokenizers: tuple[str, str, str],
    base_class: str = "",
    qk_norm: bool = False,
    notes: Callable[[Config], list[str]] = no_notes,
    lora: LoraOrder = _LORA,
    module: str = "",
    unsplittable: tuple[str, ...] = ("<|endoftext|>",),
) -> Family:
    """A Llama-shaped KerasHub decoder; ``names`` are the backbone class, transformers' model_type and the stem of
    the ``<stem>_transformer_decoder`` layers, ``norm`` the final norm's layer; ``extra`` the transformers config
    keys beyond Llama's (or the whole mapping); ``tokenizers`` the vocabulary's kind, transformers' tokenizer class
    reading it and KerasHub's; ``qk_norm``: an RMSNorm over each query and key head; ``module``: the KerasHub
    module of its classes where not the layers' stem; ``unsplittable``: a BPE tokenizer's config's tokens."""
    backbone, model_type, stem = names
    kind, tokenizer, keras_tokenizer = tokenizers
    bpe = {"unsplittable_tokens": list(unsplittable)} if kind == "bpe" and unsplittable else {}
    prefix = backbone.removesuffix("Backbone")
    pt_prefix = (base_class or prefix).removesuffix("Model")
    qkv = (("query", "q"), ("key", "k"), ("value", "v"))
    return Family(
        backbone=backbone,
        model_type=model_type,
        base_class=base_class or f"{prefix}Model",
        base_prefix="model",
        layer=f"{stem}_transformer_decoder",
        entries=(
            Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
            Entry(_TIED, "lm_head.weight", "dense"),
            Entry(f"layers/{norm}/vars/0", "norm.weight"),
            *(
                Entry(f"{_ATTN}/_{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in")
                for k, p in qkv
            ),
            *(
                Entry(f"{_ATTN}/_{k}_dense/vars/1", f"layers.{{i}}.self_attn.{p}_proj.bias", "heads_bias")
                for k, p in qkv
                if qkv_bias
            ),
            *(
                Entry(f"{_ATTN}/_{k}_dense_layer_norm/vars/0", f"layers.{{i}}.self_attn.{p}_norm.weight")
                for k, p in qkv[:2]
                if qk_norm
            ),
            Entry(f"{_ATTN}/_output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
            Entry("_self_attention_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
            Entry("_feedforward_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
            Entry("_feedforward_gate_dense/vars/0", "layers.{i}.mlp.gate_proj.weight", "dense"),
            Entry("_feedforward_intermediate_dense/vars/0", "layers.{i}.mlp.up_proj.weight", "dense"),
            Entry("_feedforward_output_dense/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
        ),
        config=extra if callable(extra) else _to_transformers(model_type, **extra),
        tokenizer=tokenizer,
        vocabulary=kind,
        tasks={f"{prefix}CausalLM": f"{pt_prefix}ForCausalLM"},
        generates=True,
        writing=Writing(
            module or f"keras_hub.src.models.{stem}",
            to_keras,
            ("CausalLM",),
            _TIED,
            tokenizer=keras_tokenizer,
            tokenizer_config=bpe,
            notes=notes,
        ),
        lora=lora,
    )


def _llama_to_transformers(c: Config) -> Config:
    return _to_transformers("llama", attention_bias=False, mlp_bias=False)(c) | _llama_rope_to_transformers(c)


def _is_llama3(c: Config) -> bool:
    """A transformers Llama written as KerasHub's Llama 3: Llama 3.1's rotary smoothing, or a byte-level BPE
    vocabulary (``tokenizer.json`` or ``vocab.json`` without Llama 2's SentencePiece ``tokenizer.model``)."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    files = c.get(TOKENIZER_FILES_KEY) or ()
    bpe = "tokenizer.model" not in files and ("tokenizer.json" in files or "vocab.json" in files)
    return bpe or (isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) == "llama3")


LLAMA = _decoder(
    ("LlamaBackbone", "llama", "llama"),
    "llama_layer_norm",
    False,
    _llama_to_transformers,
    _llama_to_keras,
    ("sentencepiece", "LlamaTokenizer", "LlamaTokenizer"),
)
LLAMA3 = replace(
    _decoder(  # Llama's blocks; its classes in a module of their own
        ("Llama3Backbone", "llama", "llama"),
        "llama_layer_norm",
        False,
        _llama_to_transformers,
        _llama_to_keras,
        ("bpe", "", "Llama3Tokenizer"),  # transformers reads Llama 3's vocabulary from tokenizer.json alone
        base_class="LlamaModel",
        module="keras_hub.src.models.llama3",
        unsplittable=(),
    ),
    picks=_is_llama3,
)
MISTRAL = _decoder(
    ("MistralBackbone", "mistral", "mistral"),
    "mistral_layer_normalization",
    False,
    {"sliding_window": "sliding_window"},
    _mistral_to_keras,
    ("sentencepiece", "LlamaTokenizer", "MistralTokenizer"),  # transformers reads it with Llama's tokenizer
)
QWEN2 = _decoder(
    ("QwenBackbone", "qwen2", "qwen"),
    "qwen_layer_norm",
    True,
    {"use_sliding_window": "use_sliding_window_attention", "sliding_window": "sliding_window_size"},
    _qwen2_to_keras,
    ("bpe", "Qwen2Tokenizer", "QwenTokenizer"),
    base_class="Qwen2Model",
)
QWEN3 = _decoder(
    ("Qwen3Backbone", "qwen3", "qwen3"),
    "qwen3_layer_norm",
    False,
    _qwen3_to_transformers,
    _qwen3_to_keras,
    ("bpe", "Qwen2Tokenizer", "Qwen3Tokenizer"),
    qk_norm=True,
    notes=_qwen3_notes,
    lora=LoraOrder(
        1,
        (
            *_LORA.block[:9],  # the block, its norms, the MLP, attention_output, value
            None,  # key_dense_layernorm
            _LORA.block[9],  # key
            None,  # query_dense_layernorm
            _LORA.block[10],  # query
        ),
    ),
)
