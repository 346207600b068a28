"""Gemma 2: the same ``GemmaBackbone`` as Gemma 1, told apart by its config (norms after attention and after the
feed-forward, logit soft-caps, a sliding window in every other layer) <-> ``Gemma2Model``, ``Gemma2ForCausalLM``."""

from __future__ import annotations

from bridge.families.keras_hub.families.gemma import ENTRIES, check_writable, notes
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse


def _layer_types(layers: int, sliding: bool) -> list[str]:
    """KerasHub slides the window in the even layers (``i % 2 == 0``) when it slides at all."""
    return ["sliding_attention" if sliding and i % 2 == 0 else "full_attention" for i in range(layers)]


def _to_transformers(c: Config) -> Config:
    head_dim = c["head_dim"]
    return {
        "model_type": "gemma2",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"] // 2,  # KerasHub counts gate and up projections together
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "query_pre_attn_scalar": head_dim
        if c.get("query_head_dim_normalize", True)
        else c["hidden_dim"] // c["num_query_heads"],
        "final_logit_softcapping": c.get("final_logit_soft_cap"),
        "attn_logit_softcapping": c.get("attention_logit_soft_cap"),
        "sliding_window": c.get("sliding_window_size", 4096),
        "layer_types": _layer_types(c["num_layers"], bool(c.get("use_sliding_window_attention"))),
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    check_writable(c)
    layers, heads, hidden = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"]
    head_dim = c.get("head_dim") or hidden // heads
    scalar = c.get("query_pre_attn_scalar", head_dim)
    if scalar != head_dim:  # KerasHub's other scaling (hidden / heads) gave a forward transformers does not match
        raise refuse(
            c,
            f"query_pre_attn_scalar {scalar} is not head_dim ({head_dim})",
            "Only Gemma 2 models scaling queries by head_dim are written as presets today",
        )
    types = c.get("layer_types") or _layer_types(layers, True)
    sliding = types == _layer_types(layers, True)
    if not sliding and types != _layer_types(layers, False):
        raise refuse(c, "layer_types other than sliding in even layers", "KerasHub Gemma slides in layers 0, 2, ...")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": layers,
        "num_query_heads": heads,
        "num_key_value_heads": c.get("num_key_value_heads") or heads,
        "hidden_dim": hidden,
        "intermediate_dim": c["intermediate_size"] * 2,
        "head_dim": head_dim,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0),
        "query_head_dim_normalize": scalar == head_dim,
        "use_post_ffw_norm": True,
        "use_post_attention_norm": True,
        "final_logit_soft_cap": c.get("final_logit_softcapping"),
        "attention_logit_soft_cap": c.get("attn_logit_softcapping"),
        "sliding_window_size": c.get("sliding_window") or 4096,
        "use_sliding_window_attention": sliding,
    }


GEMMA2 = Family(
    backbone="GemmaBackbone",
    model_type="gemma2",
    base_class="Gemma2Model",
    base_prefix="model",
    layer="gemma_decoder_block",
    entries=(
        *ENTRIES,
        Entry("post_attention_norm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("pre_ffw_norm/vars/0", "layers.{i}.pre_feedforward_layernorm.weight"),
        Entry("post_ffw_norm/vars/0", "layers.{i}.post_feedforward_layernorm.weight"),
    ),
    config=_to_transformers,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"GemmaCausalLM": "Gemma2ForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.gemma", _to_keras, ("CausalLM",), notes=notes, tokenizer="GemmaTokenizer"),
    lora=LoraOrder(
        1,
        (
            None,  # the decoder block
            LoraSite("ffw_linear", "layers.{i}.mlp.down_proj"),
            LoraSite("ffw_gating_2", "layers.{i}.mlp.up_proj"),
            LoraSite("ffw_gating", "layers.{i}.mlp.gate_proj"),
            None,  # post_ffw_norm
            None,  # pre_ffw_norm
            None,  # attention
            LoraSite("attention_output", "layers.{i}.self_attn.o_proj", "q"),
            LoraSite("value", "layers.{i}.self_attn.v_proj", "kv"),
            LoraSite("key", "layers.{i}.self_attn.k_proj", "kv"),
            LoraSite("query", "layers.{i}.self_attn.q_proj", "q"),
            None,  # post_attention_norm
            None,  # pre_attention_norm
        ),
    ),
    claims=lambda c: bool(c.get("use_post_ffw_norm") and c.get("use_post_attention_norm")),
)
