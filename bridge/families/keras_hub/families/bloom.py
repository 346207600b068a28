"""BLOOM: ``BloomBackbone`` <-> ``BloomModel``, ``BloomCausalLM`` <-> ``BloomForCausalLM`` (ALiBi attention, a layer
norm after the embeddings; transformers' one ``query_key_value`` projection holds per head its query, key and value
rows, KerasHub's three einsum kernels are those blocks of each head; the output head tied)."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require


def _to_transformers(c: Config) -> Config:
    if c["intermediate_dim"] != 4 * c["hidden_dim"]:
        raise UsageError(
            "This BloomBackbone has no transformers BloomModel counterpart",
            detail=f"intermediate_dim {c['intermediate_dim']} is not 4 * hidden_dim {c['hidden_dim']}",
            hint="transformers' BLOOM MLP is always four times as wide as the model",
        )
    dropout = c.get("dropout", 0.0)
    return {
        "model_type": "bloom",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "n_layer": c["num_layers"],
        "n_head": c["num_heads"],
        "layer_norm_epsilon": c.get("layer_norm_epsilon", 1e-5),
        "apply_residual_connection_post_layernorm": False,
        "hidden_dropout": dropout,
        "attention_dropout": dropout,
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            (
                "apply_residual_connection_post_layernorm",
                False,
                "KerasHub BLOOM adds each sublayer's input, not its normed input, to the residual",
            ),
            ("tie_word_embeddings", True, "KerasHub BLOOM's output projection is its embeddings"),
        ),
    )
    hidden = c.get("hidden_size") or c.get("n_embed", 64)
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["n_layer"],
        "num_heads": c["n_head"],
        "hidden_dim": hidden,
        "intermediate_dim": 4 * hidden,
        "dropout": c.get("hidden_dropout", 0.0),
        "layer_norm_epsilon": c.get("layer_norm_epsilon", 1e-5),
    }


_ATTN = "_self_attention_layer"
BLOOM = Family(
    backbone="BloomBackbone",
    model_type="bloom",
    base_class="BloomModel",
    base_prefix="transformer",
    layer="bloom_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "word_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "word_embeddings_layernorm.weight"),
        Entry("layers/layer_normalization/vars/1", "word_embeddings_layernorm.bias"),
        Entry("layers/layer_normalization_1/vars/0", "ln_f.weight"),
        Entry("layers/layer_normalization_1/vars/1", "ln_f.bias"),
        # query_key_value's rows are per head [query, key, value]: block n of 3 in each of num_heads groups
        *(
            Entry(
                f"{_ATTN}/_{k}_dense/vars/{v}",
                f"h.{{i}}.self_attention.query_key_value.{p}",
                f"{kind}@{n}/3/0/num_heads",
            )
            for n, k in enumerate(("query", "key", "value"))
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN}/_output_dense/vars/0", "h.{i}.self_attention.dense.weight", "dense"),
        Entry(f"{_ATTN}/_output_dense/vars/1", "h.{i}.self_attention.dense.bias"),
        Entry("_pre_attention_layernorm/vars/0", "h.{i}.input_layernorm.weight"),
        Entry("_pre_attention_layernorm/vars/1", "h.{i}.input_layernorm.bias"),
        Entry("_post_attention_layernorm/vars/0", "h.{i}.post_attention_layernorm.weight"),
        Entry("_post_attention_layernorm/vars/1", "h.{i}.post_attention_layernorm.bias"),
        Entry("_mlp_intermediate_dense/vars/0", "h.{i}.mlp.dense_h_to_4h.weight", "dense"),
        Entry("_mlp_intermediate_dense/vars/1", "h.{i}.mlp.dense_h_to_4h.bias"),
        Entry("_mlp_output_dense/vars/0", "h.{i}.mlp.dense_4h_to_h.weight", "dense"),
        Entry("_mlp_output_dense/vars/1", "h.{i}.mlp.dense_4h_to_h.bias"),
    ),
    config=_to_transformers,
    tokenizer="GPT2Tokenizer",  # KerasHub's BloomTokenizer splits words as GPT-2's does
    vocabulary="bpe",
    tasks={"BloomCausalLM": "BloomForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.bloom", _to_keras, ("CausalLM",), tokenizer="BloomTokenizer"),
)
