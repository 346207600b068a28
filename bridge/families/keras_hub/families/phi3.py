"""Phi-3: ``Phi3Backbone`` <-> ``Phi3Model``, ``Phi3CausalLM`` <-> ``Phi3ForCausalLM`` (a Llama-shaped decoder whose
transformers side joins query, key and value into one ``qkv_proj``, unequal blocks under grouped-query attention,
and gate and up projections into one ``gate_up_proj``; the output projection never tied)."""

from __future__ import annotations

from bridge.families.keras_hub.families.decoder import rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse

_QKV = "num_query_heads+num_key_value_heads+num_key_value_heads"  # the blocks of qkv_proj's rows, in heads


def _to_transformers(c: Config) -> Config:
    if c.get("rope_scaling_type"):
        raise refuse(c, f"rope_scaling_type {c['rope_scaling_type']}", "Only unscaled rotary embeddings convert")
    return {
        "model_type": "phi3",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "silu",
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": c.get("rope_max_wavelength", 10000),
        "max_position_embeddings": c.get("max_sequence_length", 4096),
        "original_max_position_embeddings": c.get("pretraining_sequence_length", 4096),
        "sliding_window": None,
        "tie_word_embeddings": False,
        "pad_token_id": None,  # Phi3Config's default (32000) lies outside a smaller vocabulary
    }


def _to_keras(c: Config) -> Config:
    heads = c["num_attention_heads"]
    if c.get("head_dim") not in (None, c["hidden_size"] // heads):
        raise refuse(c, f"head_dim {c['head_dim']}", "KerasHub Phi-3 derives head_dim from hidden_dim")
    if c.get("tie_word_embeddings"):
        raise refuse(c, "tie_word_embeddings is set", "KerasHub Phi-3 always has its own output projection")
    if c.get("sliding_window"):
        raise refuse(c, f"sliding_window {c['sliding_window']}", "KerasHub Phi-3 attends to the whole sequence")
    if (c.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0) != 1.0:
        raise refuse(c, "partial_rotary_factor is not 1", "KerasHub Phi-3 rotates every query and key dimension")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": heads,
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "num_key_value_heads": c.get("num_key_value_heads") or heads,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-5),
        "dropout": c.get("attention_dropout", 0.0),
        "max_sequence_length": c.get("max_position_embeddings", 4096),
        "pretraining_sequence_length": c.get("original_max_position_embeddings") or 4096,
        "rope_max_wavelength": rope_theta(c),
        "rope_scaling_type": None,
        "rope_scaling_short_factor": None,
        "rope_scaling_long_factor": None,
    }


_ATTN = "attention"
_FUSED = (
    "transformers' Phi-3 joins them in one Linear; bridge does not yet merge KerasHub's separate LoRA factors into "
    "one fused PEFT pair, nor split a fused pair back"
)
_FUSED_QKV = f"query, key and value: {_FUSED}"
_FUSED_MLP = f"the gate and up projections: {_FUSED}"
PHI3 = Family(
    backbone="Phi3Backbone",
    model_type="phi3",
    base_class="Phi3Model",
    base_prefix="model",
    layer="phi3_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/reversible_embedding/vars/1", "lm_head.weight", "dense"),
        Entry("layers/phi3_layer_norm/vars/0", "norm.weight"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/0", "layers.{i}.self_attn.qkv_proj.weight", f"heads_in@{n}/{_QKV}/0")
            for n, k in enumerate(("query", "key", "value"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry("pre_attention_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("post_attention_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("feedforward_gate_dense/vars/0", "layers.{i}.mlp.gate_up_proj.weight", "dense@0/2/0"),
        Entry("feedforward_intermediate_dense/vars/0", "layers.{i}.mlp.gate_up_proj.weight", "dense@1/2/0"),
        Entry("feedforward_output_dense/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
    ),
    config=_to_transformers,
    tokenizer="LlamaTokenizer",
    vocabulary="sentencepiece",
    tasks={"Phi3CausalLM": "Phi3ForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.phi3", _to_keras, ("CausalLM",), tokenizer="Phi3Tokenizer"),
    lora=LoraOrder(
        1,
        (
            None,  # the decoder block
            LoraSite("feedforward_output_dense", "layers.{i}.mlp.down_proj"),
            LoraSite("feedforward_gate_dense", "layers.{i}.mlp.gate_up_proj", refused=_FUSED_MLP),
            LoraSite("feedforward_intermediate_dense", "layers.{i}.mlp.gate_up_proj", refused=_FUSED_MLP),
            None,  # post_attention_layernorm
            None,  # attention
            LoraSite("attention_output", "layers.{i}.self_attn.o_proj", "q"),
            LoraSite("value", "layers.{i}.self_attn.qkv_proj", "kv", refused=_FUSED_QKV),
            LoraSite("key", "layers.{i}.self_attn.qkv_proj", "kv", refused=_FUSED_QKV),
            LoraSite("query", "layers.{i}.self_attn.qkv_proj", "q", refused=_FUSED_QKV),
            None,  # pre_attention_layernorm
        ),
    ),
)
