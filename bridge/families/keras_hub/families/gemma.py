"""Gemma 1: ``GemmaBackbone`` <-> ``GemmaModel``, ``GemmaCausalLM`` <-> ``GemmaForCausalLM`` (attention kernels
``[heads, hidden, head_dim]``, the embeddings always tied)."""

from __future__ import annotations

from bridge.families.keras_hub.families.decoder import rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse


def to_transformers(c: Config) -> Config:
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


def check_writable(c: Config) -> None:
    """Refuse what no KerasHub ``GemmaBackbone`` computes."""
    if rope_theta(c) != 10000.0:
        raise refuse(c, f"rope_theta {rope_theta(c)}", "KerasHub Gemma's rotary base is 10000")
    if c.get("tie_word_embeddings") is False:
        raise refuse(c, "tie_word_embeddings is false", "KerasHub Gemma's output projection is its embeddings")
    if c.get("attention_bias"):
        raise refuse(c, "attention_bias is set", "KerasHub Gemma has no biases")


def to_keras(c: Config) -> Config:
    check_writable(c)
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": c["num_attention_heads"],
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"] * 2,  # KerasHub counts gate and up projections together
        "head_dim": c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0),
        "query_head_dim_normalize": True,
        "use_post_ffw_norm": False,
        "use_post_attention_norm": False,
        "final_logit_soft_cap": None,
        "attention_logit_soft_cap": None,
        "sliding_window_size": 4096,
        "use_sliding_window_attention": False,
    }


def notes(c: Config) -> list[str]:
    act = c.get("hidden_activation") or c.get("hidden_act")
    if act in ("gelu_pytorch_tanh", None):
        return []
    return [f"hidden_activation {act}: KerasHub Gemma computes the tanh form of gelu; the values are written exactly"]


_ATTN = "attention"
# The entries Gemma 1 and 2 share (their norms between attention and feed-forward differ)
ENTRIES = (
    Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
    Entry("layers/rms_normalization/vars/0", "norm.weight"),
    *(
        Entry(f"{_ATTN}/{k}_dense/vars/0", f"layers.{{i}}.self_attn.{k[0]}_proj.weight", "heads_first_in")
        for k in ("query", "key", "value")
    ),
    Entry(f"{_ATTN}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
    Entry("pre_attention_norm/vars/0", "layers.{i}.input_layernorm.weight"),
    Entry("gating_ffw/vars/0", "layers.{i}.mlp.gate_proj.weight", "dense"),
    Entry("gating_ffw_2/vars/0", "layers.{i}.mlp.up_proj.weight", "dense"),
    Entry("ffw_linear/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
)
_GEMMA2_KEYS = ("use_post_ffw_norm", "use_post_attention_norm", "final_logit_soft_cap", "attention_logit_soft_cap")


def is_gemma1(c: Config) -> bool:
    """A ``GemmaBackbone`` config computing Gemma 1: none of Gemma 2's norms, caps and windows."""
    return not any(c.get(k) for k in _GEMMA2_KEYS) and not c.get("use_sliding_window_attention")


GEMMA = Family(
    backbone="GemmaBackbone",
    model_type="gemma",
    base_class="GemmaModel",
    base_prefix="model",
    layer="gemma_decoder_block",
    entries=(*ENTRIES, Entry("pre_ffw_norm/vars/0", "layers.{i}.post_attention_layernorm.weight")),
    config=to_transformers,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"GemmaCausalLM": "GemmaForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.gemma", to_keras, ("CausalLM",), notes=notes, tokenizer="GemmaTokenizer"),
    lora=LoraOrder(
        1,
        (
            None,  # the decoder block
            LoraSite("ffw_linear", "layers.{i}.mlp.down_proj"),
            LoraSite("ffw_gating_2", "layers.{i}.mlp.up_proj"),
            LoraSite("ffw_gating", "layers.{i}.mlp.gate_proj"),
            None,  # pre_ffw_norm
            None,  # attention
            LoraSite("attention_output", "layers.{i}.self_attn.o_proj", "q"),
            LoraSite("value", "layers.{i}.self_attn.v_proj", "kv"),
            LoraSite("key", "layers.{i}.self_attn.k_proj", "kv"),
            LoraSite("query", "layers.{i}.self_attn.q_proj", "q"),
            None,  # pre_attention_norm
        ),
    ),
    claims=is_gemma1,
)
