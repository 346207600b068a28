"""Falcon: ``FalconBackbone`` <-> ``FalconModel``, ``FalconCausalLM`` <-> ``FalconForCausalLM``: the ALiBi,
multi-head, sequential-residual form with biases (the only one KerasHub computes: no rotary, multi-query, grouped
or parallel attention); transformers' one ``query_key_value`` projection holds per head its query, key and value
rows, KerasHub's three einsum kernels are those blocks of each head; the output head tied."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_EPSILON = 1e-5  # KerasHub's Falcon blocks build their layer norms at their default, whatever the backbone's config


def _to_transformers(c: Config) -> Config:
    eps = c.get("layer_norm_epsilon", _EPSILON)
    if eps != _EPSILON:
        raise UsageError(
            "This FalconBackbone has no transformers FalconModel counterpart",
            detail=f"layer_norm_epsilon {eps} (KerasHub's blocks keep 1e-5, only its final norm takes it)",
            hint="Convert a Falcon preset whose layer_norm_epsilon is 1e-5",
        )
    return {
        "model_type": "falcon",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "ffn_hidden_size": c["intermediate_dim"],
        "layer_norm_epsilon": eps,
        "alibi": True,
        "new_decoder_architecture": False,
        "multi_query": False,
        "parallel_attn": False,
        "bias": True,
        "activation": "gelu",
        "hidden_dropout": c.get("feedforward_dropout_rate", 0.0),
        "attention_dropout": c.get("attention_dropout_rate", 0.0),
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("alibi", True, "KerasHub Falcon positions tokens by ALiBi, not rotary embeddings"),
            ("new_decoder_architecture", False, "KerasHub Falcon has one layer norm per sublayer, in sequence"),
            ("multi_query", False, "KerasHub Falcon gives every head its own key and value"),
            ("parallel_attn", False, "KerasHub Falcon adds attention, then the MLP, to the residual in sequence"),
            ("bias", True, "KerasHub Falcon's projections have biases"),
            ("activation", "gelu", "KerasHub Falcon's MLP computes the exact gelu"),
            ("tie_word_embeddings", True, "KerasHub Falcon's output projection is its embeddings"),
        ),
    )
    heads = c["num_attention_heads"]
    if c.get("num_kv_heads") not in (None, heads):
        raise refuse(c, f"num_kv_heads {c['num_kv_heads']}", "KerasHub Falcon gives every head its own key and value")
    eps = c.get("layer_norm_epsilon", _EPSILON)
    if eps != _EPSILON:
        raise refuse(c, f"layer_norm_epsilon {eps}", "KerasHub Falcon's blocks build their layer norms at 1e-5")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_attention_heads": heads,
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c.get("ffn_hidden_size") or 4 * c["hidden_size"],
        "layer_norm_epsilon": eps,
        "attention_dropout_rate": c.get("attention_dropout", 0.0),
        "feedforward_dropout_rate": c.get("hidden_dropout", 0.0),
    }


def _notes(c: Config) -> list[str]:
    return [
        "alibi: transformers rounds its ALiBi slopes times positions to bfloat16, KerasHub keeps float32; the "
        "forwards agree where those products are exact in bfloat16 (power-of-two head counts, short sequences)"
    ]


_ATTN = "attention_layer"
FALCON = Family(
    backbone="FalconBackbone",
    model_type="falcon",
    base_class="FalconModel",
    base_prefix="transformer",
    layer="falcon_transformer_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "word_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "ln_f.weight"),
        Entry("layers/layer_normalization/vars/1", "ln_f.bias"),
        # query_key_value's rows are per head [query, key, value]: block n of 3 in each of num_attention_heads groups
        *(
            Entry(
                f"{_ATTN}/{k}_dense/vars/{v}",
                f"h.{{i}}.self_attention.query_key_value.{p}",
                f"{kind}@{n}/3/0/num_attention_heads",
            )
            for n, k in enumerate(("query", "key", "value"))
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "h.{i}.self_attention.dense.weight", "dense"),
        Entry(f"{_ATTN}/output_dense/vars/1", "h.{i}.self_attention.dense.bias"),
        Entry("input_layernorm/vars/0", "h.{i}.input_layernorm.weight"),
        Entry("input_layernorm/vars/1", "h.{i}.input_layernorm.bias"),
        Entry("post_attention_layernorm/vars/0", "h.{i}.post_attention_layernorm.weight"),
        Entry("post_attention_layernorm/vars/1", "h.{i}.post_attention_layernorm.bias"),
        Entry("dense_h_to_4h/vars/0", "h.{i}.mlp.dense_h_to_4h.weight", "dense"),
        Entry("dense_h_to_4h/vars/1", "h.{i}.mlp.dense_h_to_4h.bias"),
        Entry("dense_4h_to_h/vars/0", "h.{i}.mlp.dense_4h_to_h.weight", "dense"),
        Entry("dense_4h_to_h/vars/1", "h.{i}.mlp.dense_4h_to_h.bias"),
    ),
    config=_to_transformers,
    tokenizer="GPT2Tokenizer",  # KerasHub's FalconTokenizer is a byte-level BPE splitting words as GPT-2's does
    vocabulary="bpe",
    tasks={"FalconCausalLM": "FalconForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.falcon", _to_keras, ("CausalLM",), notes=_notes, tokenizer="FalconTokenizer"),
)
