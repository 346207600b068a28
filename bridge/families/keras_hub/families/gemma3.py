"""Gemma 3, text only: ``Gemma3Backbone`` <-> ``Gemma3TextModel``, ``Gemma3CausalLM`` <-> ``Gemma3ForCausalLM``
(Gemma 2's block with per-head query and key norms; five sliding layers to one global, each kind with its own
rotary base: 10000 local, 1000000 global, as KerasHub fixes them)."""

from __future__ import annotations

from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.gemma import ENTRIES, notes
from bridge.families.keras_hub.families.gemma2 import GEMMA2
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, Writing, refuse, require

_LOCAL_THETA, _GLOBAL_THETA = 10_000.0, 1_000_000.0
_QK_NORM_EPS = 1e-6  # KerasHub's Gemma3Attention builds its query and key norms at its default epsilon


def _layer_types(layers: int, sliding: bool) -> list[str]:
    """KerasHub slides the window in five layers of six (``i % 6 < 5``) when it slides at all."""
    return ["sliding_attention" if sliding and i % 6 < 5 else "full_attention" for i in range(layers)]


def _rope(theta: float, factor: float) -> Config:
    """One kind of layer's rotary embedding: KerasHub's ``scaling_factor`` divides positions (transformers' linear)."""
    if factor == 1.0:
        return {"rope_type": "default", "rope_theta": theta}
    return {"rope_type": "linear", "factor": factor, "rope_theta": theta}


def _unlike_transformers(c: Config) -> str:
    """What a ``Gemma3Backbone`` config computes otherwise than ``Gemma3ForCausalLM`` (empty: nothing)."""
    if c.get("use_bidirectional_attention") or c.get("is_embedding_model"):
        return "use_bidirectional_attention or is_embedding_model is set (an embedding model)"
    if not (c.get("use_query_key_norm", True) and c.get("use_post_ffw_norm") and c.get("use_post_attention_norm")):
        norms = "use_query_key_norm, use_post_attention_norm and use_post_ffw_norm"
        return f"not all of {norms} are set (transformers' Gemma 3 has every one of those norms)"
    if c.get("layer_norm_epsilon", 1e-6) != _QK_NORM_EPS:
        eps = c["layer_norm_epsilon"]
        return f"layer_norm_epsilon {eps} (KerasHub's query/key norms keep 1e-6, transformers' take it)"
    return ""


def text_config(c: Config) -> Config:
    """A ``Gemma3Backbone``'s language model as a ``gemma3_text`` config (the text-only model, or a multimodal
    model's ``text_config``)."""
    unlike = _unlike_transformers(c)
    if unlike:
        raise UsageError(
            "This Gemma3Backbone has no transformers Gemma3ForCausalLM counterpart",
            detail=unlike,
            hint="Convert a text-only Gemma 3 preset with query/key and post norms at layer_norm_epsilon 1e-6",
        )
    sliding = bool(c.get("use_sliding_window_attention"))
    return {
        "model_type": "gemma3_text",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"],  # unlike Gemma 1 and 2, one projection's width
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "hidden_activation": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "max_position_embeddings": 131072,
        # KerasHub's block scales queries by head_dim whatever query_head_dim_normalize says
        "query_pre_attn_scalar": c["head_dim"],
        "final_logit_softcapping": c.get("final_logit_soft_cap"),
        "attn_logit_softcapping": c.get("attention_logit_soft_cap"),
        "sliding_window": c.get("sliding_window_size", 1024),
        "layer_types": _layer_types(c["num_layers"], sliding),
        "rope_parameters": {
            "sliding_attention": _rope(_LOCAL_THETA, float(c.get("local_rope_scaling_factor", 1.0))),
            "full_attention": _rope(_GLOBAL_THETA, float(c.get("global_rope_scaling_factor", 1.0))),
        },
        "use_bidirectional_attention": False,
        "tie_word_embeddings": True,
    }


def _rope_factor(c: Config, kind: str, theta: float) -> float:
    """The linear scaling factor of one kind of layer's rotary embedding, refusing what KerasHub cannot compute."""
    rope: Any = (c.get("rope_parameters") or {}).get(kind) or {}
    given = rope.get("rope_theta", theta)
    if given != theta or rope.get("rope_type", "default") not in ("default", "linear") or c.get("rope_scaling"):
        raise refuse(
            c,
            f"{kind} rope {rope}",
            f"KerasHub Gemma 3's {kind} layers use rope_theta {theta:g}, unscaled or scaled linearly",
        )
    return float(rope.get("factor", 1.0)) if rope.get("rope_type") == "linear" else 1.0


def text_only(c: Config) -> bool:
    """Whether a ``Gemma3Backbone`` config is text-only (no ``vision_encoder``)."""
    return c.get("vision_encoder") is None


def keras_text(c: Config) -> Config:
    """A ``gemma3_text`` config (or a multimodal one's ``text_config``) as ``Gemma3Backbone``'s text keys."""
    require(
        c,
        (
            ("tie_word_embeddings", True, "KerasHub Gemma 3's output projection is its embeddings"),
            ("attention_bias", False, "KerasHub Gemma 3 has no biases"),
            ("use_bidirectional_attention", False, "Only causal Gemma 3 models are written as presets"),
            ("rms_norm_eps", _QK_NORM_EPS, "KerasHub Gemma 3's query/key norms use 1e-6"),
        ),
        unset_ok=True,
    )
    layers, heads, hidden = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"]
    head_dim = c.get("head_dim") or hidden // heads
    scalar = c.get("query_pre_attn_scalar", head_dim)
    if scalar != head_dim:
        raise refuse(
            c, f"query_pre_attn_scalar {scalar} is not head_dim ({head_dim})", "KerasHub Gemma 3 scales by head_dim"
        )
    types = c.get("layer_types") or _layer_types(layers, True)
    sliding = types == _layer_types(layers, True)
    if not sliding and types != _layer_types(layers, False):
        raise refuse(c, "layer_types other than five sliding to one full", "KerasHub Gemma 3 slides where i % 6 < 5")
    return {
        "vocabulary_size": c["vocab_size"],
        "image_size": None,
        "num_layers": layers,
        "num_query_heads": heads,
        "num_key_value_heads": c.get("num_key_value_heads") or heads,
        "hidden_dim": hidden,
        "intermediate_dim": c["intermediate_size"],
        "head_dim": head_dim,
        "query_head_dim_normalize": True,
        "use_query_key_norm": True,
        "use_post_ffw_norm": True,
        "use_post_attention_norm": True,
        "attention_logit_soft_cap": c.get("attn_logit_softcapping"),
        "final_logit_soft_cap": c.get("final_logit_softcapping"),
        "use_sliding_window_attention": sliding,
        "sliding_window_size": c.get("sliding_window") or 1024,
        "local_rope_scaling_factor": _rope_factor(c, "sliding_attention", _LOCAL_THETA),
        "global_rope_scaling_factor": _rope_factor(c, "full_attention", _GLOBAL_THETA),
        "vision_encoder": None,
        "use_bidirectional_attention": False,
        "layer_norm_epsilon": c.get("rms_norm_eps") or 1e-6,
        "dropout": c.get("attention_dropout") or 0,
        "is_embedding_model": False,
        "pooling_intermediate_dim": None,
        "embedding_dim": None,
    }


_GEMMA2_BLOCK = GEMMA2.lora.block if GEMMA2.lora is not None else ()
# Gemma 2's block order, with the attention's key and query norms after its output projection
_LORA = LoraOrder(1, (*_GEMMA2_BLOCK[:8], None, None, *_GEMMA2_BLOCK[8:]))  # key_norm, query_norm

GEMMA3 = Family(
    backbone="Gemma3Backbone",
    model_type="gemma3_text",
    base_class="Gemma3TextModel",
    base_prefix="model",
    layer="gemma3_decoder_block",
    entries=(
        *ENTRIES,
        Entry("attention/query_norm/vars/0", "layers.{i}.self_attn.q_norm.weight"),
        Entry("attention/key_norm/vars/0", "layers.{i}.self_attn.k_norm.weight"),
        Entry("post_attention_norm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("pre_ffw_norm/vars/0", "layers.{i}.pre_feedforward_layernorm.weight"),
        Entry("post_ffw_norm/vars/0", "layers.{i}.post_feedforward_layernorm.weight"),
    ),
    config=text_config,
    claims=text_only,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"Gemma3CausalLM": "Gemma3ForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.gemma3", keras_text, ("CausalLM",), notes=notes, tokenizer="Gemma3Tokenizer"),
    lora=_LORA,
)
