"""Gemma 1: ``GemmaBackbone`` <-> ``GemmaModel``, ``GemmaCausalLM`` <-> ``GemmaForCausalLM`` (attention kernels
``[heads, hidden, head_dim]``, the embeddings always tied)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "gemma",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"] // 2,  # KerasHub counts gate and up projections together
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "hidden_activation": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    }


_ATTN = "attention"
GEMMA = Family(
    backbone="GemmaBackbone",
    model_type="gemma",
    base_class="GemmaModel",
    base_prefix="model",
    layer="gemma_decoder_block",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/rms_normalization/vars/0", "norm.weight"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/0", f"layers.{{i}}.self_attn.{k[0]}_proj.weight", "heads_first_in")
            for k in ("query", "key", "value")
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry("pre_attention_norm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("pre_ffw_norm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("gating_ffw/vars/0", "layers.{i}.mlp.gate_proj.weight", "dense"),
        Entry("gating_ffw_2/vars/0", "layers.{i}.mlp.up_proj.weight", "dense"),
        Entry("ffw_linear/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
    ),
    config=_to_transformers,
    tokenizer="GemmaTokenizer",
    tasks={"GemmaCausalLM": "GemmaForCausalLM"},
    generates=True,
)
