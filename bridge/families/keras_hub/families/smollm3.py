"""SmolLM3: a Llama-shaped decoder whose layers each compute rotary or no position embedding (NoPE), its token
table tied to the output; KerasHub keeps the query, key and value projections as plain ``Dense`` layers and saves
each layer's rotary frequencies as a variable of its own."""

from __future__ import annotations

from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.decoder import head_dim_is_derived, rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_LAYER = "smol_lm3_decoder_layer"
_ATTN = "self_attn"
_DEFAULT_IDS = {"bos_token_id": 128000, "eos_token_id": 128001}  # transformers' SmolLM3Config defaults
# KerasHub's module files of the classes (``smollm3_*``, not the class names in snake case)
_FILES = {
    "SmolLM3Backbone": "backbone",
    "SmolLM3CausalLM": "causal_lm",
    "SmolLM3CausalLMPreprocessor": "causal_lm_preprocessor",
    "SmolLM3Tokenizer": "tokenizer",
}


def _inverse_frequencies(keras: Config, shape: tuple[int, ...]) -> Any:
    """A layer's rotary frequencies as KerasHub's ``rope_init`` computes them (float32, the whole head)."""
    import numpy as np

    dim = 2 * shape[0]
    exponents = np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
    return (1.0 / np.power(np.float32(keras["rope_theta"]), exponents)).astype(np.float32)


def _rotary_tables(keras: Config) -> tuple[Entry, ...]:
    """Every layer's rotary variable (NoPE layers keep one too): transformers computes it, so it is no tensor."""
    shape = ((keras["hidden_dim"] // keras["num_attention_heads"]) // 2,)
    return tuple(
        Entry(
            f"layers/{_LAYER}{f'_{i}' if i else ''}/{_ATTN}/rotary_embedding/vars/0",
            "",
            shape=shape,
            computed=_inverse_frequencies,
        )
        for i in range(keras["num_layers"])
    )


def _unwritable(c: Config, detail: str, hint: str) -> UsageError:
    return UsageError("This KerasHub SmolLM3 preset cannot be written for transformers", detail=detail, hint=hint)


def _to_transformers(c: Config) -> Config:
    if c.get("attention_bias"):
        raise _unwritable(c, "attention_bias True", "KerasHub's output projection has no bias, transformers' would")
    if c.get("mlp_bias"):
        raise _unwritable(c, "mlp_bias True", "Only SmolLM3 presets without MLP biases convert")
    if c.get("partial_rotary_factor", 1.0) != 1.0:
        raise _unwritable(
            c, f"partial_rotary_factor {c['partial_rotary_factor']}", "transformers' SmolLM3 rotates whole heads"
        )
    layers = int(c["num_layers"])
    enabled = list(c["rope_layer_enabled_list"])[:layers]
    return {
        "model_type": "smollm3",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"],
        "num_hidden_layers": layers,
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "hidden_act": "silu",
        "rms_norm_eps": c["layer_norm_epsilon"],
        "max_position_embeddings": c["max_position_embeddings"],
        "rope_parameters": {"rope_type": "default", "rope_theta": c["rope_theta"]},
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": c.get("attention_dropout", 0.0),
        # KerasHub rotates in the layers its list enables (a layer past its end: rotary) ...
        "no_rope_layers": [int(bool(x)) for x in enabled] + [1] * (layers - len(enabled)),
        # ... and attends over the whole sequence in every layer, whatever its layer_types say
        "layer_types": ["full_attention"] * layers,
        "use_sliding_window": False,
        "tie_word_embeddings": True,
        # transformers' defaults name SmolLM3's own vocabulary's ids; the preset's tokenizer keeps its own
        "pad_token_id": None,
        **{k: None for k in ("bos_token_id", "eos_token_id") if _DEFAULT_IDS[k] >= c["vocabulary_size"]},
    }


def _to_keras(c: Config) -> Config:
    head_dim_is_derived(c)
    require(
        c,
        (
            ("tie_word_embeddings", True, "KerasHub SmolLM3 always ties its output projection to the token table"),
            ("attention_bias", False, "KerasHub SmolLM3's output projection has no bias"),
            ("mlp_bias", False, "Only SmolLM3 models without MLP biases convert"),
        ),
    )
    layers = int(c["num_hidden_layers"])
    if c.get("use_sliding_window") and "sliding_attention" in (c.get("layer_types") or ()):
        raise refuse(c, "use_sliding_window with sliding_attention layers", "KerasHub SmolLM3 attends over everything")
    interval = int(c.get("no_rope_layer_interval") or 4)
    no_rope = c.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(layers)]
    return {
        "vocabulary_size": c["vocab_size"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "num_layers": layers,
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "attention_bias": False,
        "attention_dropout": c.get("attention_dropout", 0.0),
        # transformers' no_rope_layers holds 1 where a layer rotates (KerasHub's name says what it means)
        "rope_layer_enabled_list": [bool(x) for x in no_rope],
        "layer_types": ["full_attention"] * layers,
        "mlp_bias": False,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "max_position_embeddings": c.get("max_position_embeddings", 32768),
        "rope_theta": rope_theta(c),
        "partial_rotary_factor": 1.0,
    }


SMOLLM3 = Family(
    backbone="SmolLM3Backbone",
    model_type="smollm3",
    base_class="SmolLM3Model",
    base_prefix="model",
    layer=_LAYER,
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/rms_normalization/vars/0", "norm.weight"),
        *(Entry(f"{_ATTN}/{p}_proj/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "dense") for p in "qkv"),
        Entry(f"{_ATTN}/o_proj/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry("input_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("post_attention_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        *(Entry(f"mlp/{p}_proj/vars/0", f"layers.{{i}}.mlp.{p}_proj.weight", "dense") for p in ("gate", "up", "down")),
    ),
    config=_to_transformers,
    tasks={"SmolLM3CausalLM": "SmolLM3ForCausalLM"},
    generates=True,
    vocabulary="bpe",  # transformers reads SmolLM3's vocabulary from tokenizer.json alone
    writing=Writing(
        "keras_hub.src.models.smollm3",
        _to_keras,
        ("CausalLM",),
        tokenizer="SmolLM3Tokenizer",
        files={c: f"smollm3_{s}" for c, s in _FILES.items()},
    ),
    variant=_rotary_tables,
)
