"""GPT-OSS: biased attention with a learnt sink per head, sliding and full layers alternating, YaRN rotary and a
bank of biased experts whose gate and up kernels interleave in one array (KerasHub and transformers alike, so each
tensor is one variable, whole)."""

from __future__ import annotations

from typing import Any

from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_ATTN = "self_attention_layer"
_MOE = "sparse_moe_block"
# The YaRN parameters KerasHub's GPT-OSS attention fixes (only the factor is a config key of its backbone)
_YARN = {"beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 4096, "truncate": False}


def _layer_types(layers: int) -> list[str]:
    """KerasHub's GPT-OSS slides its window in the odd layers (transformers' default: the even ones)."""
    return ["sliding_attention" if i % 2 else "full_attention" for i in range(layers)]


def _to_transformers(c: Config) -> Config:
    layers = int(c["num_layers"])
    window = c.get("sliding_window")
    window = window if window and window > 0 else None  # KerasHub slides no window of size 0 or less
    out: Config = {
        "model_type": "gpt_oss",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"],
        "num_hidden_layers": layers,
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c.get("head_dim") or c["hidden_dim"] // c["num_query_heads"],
        "num_local_experts": c["num_experts"],
        "num_experts_per_tok": c.get("top_k", 2),
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "attention_bias": True,
        "attention_dropout": c.get("dropout", 0.0),
        "tie_word_embeddings": False,
        # KerasHub lets a query see ``sliding_window`` earlier tokens and itself; transformers counts itself in
        "sliding_window": window + 1 if window else None,
        "layer_types": _layer_types(layers) if window else ["full_attention"] * layers,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": c.get("rope_max_wavelength", 10000)}
        | {"factor": float(c.get("rope_scaling_factor", 1.0))}
        | _YARN,
        "swiglu_alpha": 1.702,
        "swiglu_limit": 7.0,
        "output_router_logits": bool(c.get("output_router_logits", False)),
    }
    return out


def _yarn_factor(c: Config) -> float:
    """KerasHub's ``rope_scaling_factor`` of a transformers rotary (unscaled, or YaRN with KerasHub's fixed
    parameters), refusing what it does not compute."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "default":
        return 1.0
    if kind != "yarn":
        raise refuse(c, f"rope_type {kind}", "KerasHub GPT-OSS computes YaRN (or unscaled) rotary only")
    for key, want in _YARN.items():
        got = rope.get(key, True if key == "truncate" else None)
        if got != want:
            raise refuse(c, f"rope_parameters {key} {got}", f"KerasHub GPT-OSS fixes YaRN's {key} at {want}")
    factor = rope.get("factor") or c["max_position_embeddings"] / _YARN["original_max_position_embeddings"]
    for key in ("attention_factor", "mscale", "mscale_all_dim"):
        if rope.get(key) is not None:
            raise refuse(c, f"rope_parameters {key} {rope[key]}", "KerasHub GPT-OSS scales attention by 0.1 ln f + 1")
    if factor < 1:  # KerasHub scales attention by 0.1 ln f + 1 there too, transformers not
        raise refuse(c, f"rope_parameters factor {factor}", "KerasHub GPT-OSS computes YaRN with a factor >= 1")
    return float(factor)


def _to_keras(c: Config) -> Config:
    quantized = c.get("quantization_config")
    if quantized:
        method = quantized.get("quant_method") if isinstance(quantized, dict) else quantized
        raise refuse(
            c,
            f"quantization_config {method}",
            "Dequantize it first (transformers: from_pretrained(..., quantization_config=Mxfp4Config(dequantize="
            "True)), then save_pretrained), KerasHub's GPT-OSS holds float experts",
        )
    require(
        c,
        (
            ("tie_word_embeddings", False, "KerasHub GPT-OSS always has its own output projection"),
            ("attention_bias", True, "KerasHub GPT-OSS's attention always has biases"),
            ("swiglu_alpha", 1.702, "KerasHub GPT-OSS's experts fix the activation's alpha at 1.702"),
            ("swiglu_limit", 7.0, "KerasHub GPT-OSS's experts clamp at 7"),
        ),
    )
    layers = int(c["num_hidden_layers"])
    window = int(c.get("sliding_window") or 0)
    types = list(c.get("layer_types") or _layer_types(layers))
    if window and "sliding_attention" in types and types != _layer_types(layers):
        raise refuse(
            c,
            f"layer_types {types[:2]}...",
            "KerasHub GPT-OSS slides its window in the odd layers only (full, sliding, full, ...)",
        )
    if window and window < 2:
        raise refuse(c, f"sliding_window {window}", "KerasHub GPT-OSS's window holds at least the token itself")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": layers,
        "num_query_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "num_experts": c["num_local_experts"],
        "top_k": c.get("num_experts_per_tok", 4),
        "rope_max_wavelength": _theta(c),
        "rope_scaling_factor": _yarn_factor(c),
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "sliding_window": window - 1 if window and "sliding_attention" in types else None,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-5),
        "dropout": c.get("attention_dropout", 0.0),
        "output_router_logits": bool(c.get("output_router_logits", False)),
        "head_dim": c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
    }


def _theta(c: Config) -> Any:
    rope = c.get("rope_parameters") or {}
    return rope.get("rope_theta") or c.get("rope_theta") or 150000.0


GPT_OSS = Family(
    backbone="GptOssBackbone",
    model_type="gpt_oss",
    base_class="GptOssModel",
    base_prefix="model",
    layer="gpt_oss_transformer_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/reversible_embedding/vars/1", "lm_head.weight", "dense"),
        Entry("layers/gpt_oss_layer_normalization/vars/0", "norm.weight"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/{v}", f"layers.{{i}}.self_attn.{p}_proj.{n}", kind)
            for k, p in (("query", "q"), ("key", "k"), ("value", "v"))
            for v, n, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry(f"{_ATTN}/output_dense/vars/1", "layers.{i}.self_attn.o_proj.bias"),
        Entry(f"{_ATTN}/vars/0", "layers.{i}.self_attn.sinks"),
        Entry("input_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("post_attention_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry(f"{_MOE}/router/router_dense/vars/0", "layers.{i}.mlp.router.weight", "dense"),
        Entry(f"{_MOE}/router/router_dense/vars/1", "layers.{i}.mlp.router.bias"),
        *(
            Entry(f"{_MOE}/experts/vars/{v}", f"layers.{{i}}.mlp.experts.{n}")
            for v, n in enumerate(("gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"))
        ),
    ),
    config=_to_transformers,
    tasks={"GptOssCausalLM": "GptOssForCausalLM"},
    generates=True,
    vocabulary="bpe",
    writing=Writing(
        "keras_hub.src.models.gpt_oss",
        _to_keras,
        ("CausalLM",),
        "layers/reversible_embedding/vars/1",
        tokenizer="GptOssTokenizer",
    ),
)
