"""Qwen 2 MoE and Qwen 3 MoE: ``QwenMoeBackbone`` <-> ``Qwen2MoeModel`` and ``Qwen3MoeBackbone`` <->
``Qwen3MoeModel``, their CausalLMs <-> ``*ForCausalLM``.  Llama-shaped decoders whose feed-forward routes each token
by softmax and top-k (the top-k weights renormalized where ``norm_topk_prob`` says) over a bank of SwiGLU experts;
Qwen 2 MoE adds a shared expert scaled by a sigmoid gate and q/k/v biases, Qwen 3 MoE per-head q/k norms.

KerasHub keeps an expert's gate and up kernels side by side in one ``[experts, hidden, 2 * moe]`` array (gate
first) and its down kernels in another; transformers 5 joins them in memory (``mlp.experts.gate_up_proj``) but saves
one ``[out, in]`` tensor per expert, ``mlp.experts.N.gate_proj`` / ``up_proj`` / ``down_proj``, the names its
loader and KerasHub's own importer read.  The table names those.

Only models whose every layer routes are written: KerasHub's Qwen 2 MoE builds each layer as if it were layer 0
(sparse in all layers or in none, whatever ``decoder_sparse_step`` / ``mlp_only_layers`` say), so a config with
dense layers is refused both ways."""

from __future__ import annotations

from collections.abc import Callable

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.decoder import rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, no_notes, refuse

_ATTN = "_self_attention_layer"
_TIED = "layers/reversible_embedding/vars/1"
_EXPERT = "layers.{i}.mlp.experts.{e}"
_QK_NORM_EPS = 1e-6  # KerasHub's Qwen3MoeAttention builds its query and key norms at its default epsilon
_ROUTED = "KerasHub's MoE backbones here route in every layer (decoder_sparse_step 1, no mlp_only_layers)"


def _experts_of(c: Config) -> Config:
    """``c`` with ``num_experts`` as transformers 5 saves it for Qwen 3 MoE too (``num_local_experts``)."""
    return c if "num_experts" in c else c | {"num_experts": c.get("num_local_experts")}


def _every_layer_routes(c: Config, steps: str, only: str, experts: str) -> str:
    """Why a config (its keys ``steps``, ``only``, ``experts``) has a layer that does not route, or ''."""
    if c.get(steps, 1) != 1:
        return f"{steps} {c[steps]}"
    if c.get(only):
        return f"{only} {c[only]}"
    if not c.get(experts):
        return f"{experts} {c.get(experts)}"
    return ""


def _preset_refusal(c: Config, backbone: str, model: str) -> None:
    """A preset transformers' ``model`` would compute otherwise: refused by the key."""
    why = _every_layer_routes(c, "decoder_sparse_step", "mlp_only_layers", "num_experts")
    if not why and c.get("rope_scaling_factor", 1.0) != 1.0:
        why = f"rope_scaling_factor {c['rope_scaling_factor']}"
    if why:
        raise UsageError(
            f"This {backbone} has no transformers {model} counterpart",
            detail=why,
            hint=f"{_ROUTED}, unscaled rotary embeddings",
        )


def _common(c: Config, model_type: str) -> Config:
    return {
        "model_type": model_type,
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "intermediate_size": c["intermediate_dim"],
        "moe_intermediate_size": c["moe_intermediate_dim"],
        "num_experts": c["num_experts"],
        "num_experts_per_tok": c["top_k"],
        "norm_topk_prob": bool(c.get("norm_top_k_prob", False)),
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "hidden_act": "silu",
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": c.get("rope_max_wavelength", 10000),
        "max_position_embeddings": 32768,
        "attention_dropout": c.get("dropout", 0),
        "output_router_logits": False,
        "router_aux_loss_coef": c.get("router_aux_loss_coefficient", 0.001),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
    }


def _qwen2_moe_to_transformers(c: Config) -> Config:
    _preset_refusal(c, "QwenMoeBackbone", "Qwen2MoeForCausalLM")
    out = _common(c, "qwen2_moe") | {"shared_expert_intermediate_size": c["shared_expert_intermediate_dim"]}
    out["qkv_bias"] = True
    layers = c["num_layers"]
    if c.get("use_sliding_window_attention"):  # KerasHub slides in every layer; transformers where layer_types say
        slides = {"sliding_window": c["sliding_window_size"], "max_window_layers": layers}
        return out | {"use_sliding_window": True, **slides, "layer_types": ["sliding_attention"] * layers}
    # the size stays (KerasHub's importer reads it; transformers ignores it while use_sliding_window is false)
    return out | {"use_sliding_window": False, "sliding_window": c["sliding_window_size"], "max_window_layers": layers}


def _qwen3_moe_to_transformers(c: Config) -> Config:
    _preset_refusal(c, "Qwen3MoeBackbone", "Qwen3MoeForCausalLM")
    if c.get("layer_norm_epsilon", 1e-6) != _QK_NORM_EPS:  # transformers' q/k norms take rms_norm_eps
        raise UsageError(
            "This Qwen3MoeBackbone has no transformers Qwen3MoeForCausalLM counterpart",
            detail=f"layer_norm_epsilon {c['layer_norm_epsilon']}: its query and key norms use {_QK_NORM_EPS:g}",
            hint="transformers computes one epsilon for every norm; convert a preset at layer_norm_epsilon 1e-6",
        )
    window = c.get("sliding_window_size")  # KerasHub applies it in every layer whenever it is set
    slides = (
        {"use_sliding_window": True, "sliding_window": window}
        if window
        else {"use_sliding_window": False, "sliding_window": None}
    )
    return _common(c, "qwen3_moe") | {"head_dim": c.get("head_dim") or c["hidden_dim"] // c["num_query_heads"]} | slides


def _to_keras_common(c: Config) -> Config:
    c = _experts_of(c)
    why = _every_layer_routes(c, "decoder_sparse_step", "mlp_only_layers", "num_experts")
    if why:
        raise refuse(c, why, _ROUTED)
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "moe_intermediate_dim": c["moe_intermediate_size"],
    }


def _qwen2_moe_to_keras(c: Config) -> Config:
    derived = c["hidden_size"] // c["num_attention_heads"]
    if c.get("head_dim") not in (None, derived):
        raise refuse(c, f"head_dim {c['head_dim']}", "KerasHub Qwen MoE derives head_dim from hidden_dim")
    if c.get("qkv_bias") is False:
        raise refuse(c, "qkv_bias false", "KerasHub Qwen MoE's query, key and value always have biases")
    layers = c["num_hidden_layers"]
    sliding = bool(c.get("use_sliding_window"))
    types = c.get("layer_types") or ["full_attention"] * layers
    if types != [("sliding_attention" if sliding else "full_attention")] * layers:
        raise refuse(c, f"layer_types {types}", "KerasHub Qwen MoE slides its window in every layer or in none")
    return {
        **_to_keras_common(c),
        "shared_expert_intermediate_dim": c["shared_expert_intermediate_size"],
        "rope_max_wavelength": rope_theta(c),
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "rope_scaling_factor": 1.0,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "use_sliding_window_attention": sliding,
        # unapplied while the window is off: the size kept, else KerasHub's default (transformers saves 0 then)
        "sliding_window_size": c.get("sliding_window") or 32768,
        "num_experts": c["num_experts"],
        "top_k": c["num_experts_per_tok"],
        "norm_top_k_prob": bool(c.get("norm_topk_prob", False)),
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "output_router_logits": False,
    }


def _qwen3_moe_to_keras(c: Config) -> Config:
    if c.get("attention_bias"):
        raise refuse(c, "attention_bias is set", "KerasHub Qwen 3 MoE's attention has no biases")
    return {
        **{k: v for k, v in _to_keras_common(c).items() if k != "intermediate_dim"},
        "head_dim": c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
        "intermediate_dim": c["intermediate_size"],
        "moe_intermediate_dim": c["moe_intermediate_size"],
        "rope_max_wavelength": rope_theta(c),
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "rope_scaling_factor": 1.0,
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "sliding_window_size": c.get("sliding_window") if c.get("use_sliding_window") else None,
        "num_experts": _experts_of(c)["num_experts"],
        "top_k": c["num_experts_per_tok"],
        "norm_top_k_prob": bool(c.get("norm_topk_prob", False)),
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "router_aux_loss_coefficient": c.get("router_aux_loss_coef", 0.001),
    }


def _qwen3_moe_notes(c: Config) -> list[str]:
    eps = c.get("rms_norm_eps", 1e-6)
    if eps == _QK_NORM_EPS:
        return []
    return [f"rms_norm_eps {eps}: KerasHub Qwen 3 MoE's query and key norms use 1e-6 whatever its layer_norm_epsilon"]


def _experts(moe: str) -> tuple[Entry, ...]:
    """The router and the expert bank: gate and up side by side in one array, down in another."""
    bank = f"{moe}/expert_bank/vars"
    return (
        Entry(f"{moe}/_sparse_feedforward_gate_dense/vars/0", "layers.{i}.mlp.gate.weight", "dense"),
        Entry(f"{bank}/0", f"{_EXPERT}.gate_proj.weight", "dense%0/2", each="num_experts"),
        Entry(f"{bank}/0", f"{_EXPERT}.up_proj.weight", "dense%1/2", each="num_experts"),
        Entry(f"{bank}/1", f"{_EXPERT}.down_proj.weight", "dense", each="num_experts"),
    )


def _family(
    names: tuple[str, str, str, str],
    attention: tuple[Entry, ...],
    moe: tuple[Entry, ...],
    mappings: tuple[Callable[[Config], Config], Callable[[Config], Config]],
    tokenizer: str,
    notes: Callable[[Config], list[str]] = no_notes,
) -> Family:
    """``names``: the backbone class, transformers' model_type and model class, the final norm's layer."""
    backbone, model_type, base_class, norm = names
    prefix = backbone.removesuffix("Backbone")
    to_transformers, to_keras = mappings
    return Family(
        backbone=backbone,
        model_type=model_type,
        base_class=base_class,
        base_prefix="model",
        layer=f"{prefix.lower().replace('moe', '_moe')}_transformer_decoder",
        entries=(
            Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
            Entry(_TIED, "lm_head.weight", "dense"),
            Entry(f"layers/{norm}/vars/0", "norm.weight"),
            *attention,
            Entry(f"{_ATTN}/_output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
            Entry("_self_attention_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
            Entry("_feedforward_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
            *_experts("mlp"),
            *moe,
        ),
        config=to_transformers,
        tokenizer="Qwen2Tokenizer",
        vocabulary="bpe",
        tasks={f"{prefix}CausalLM": base_class.replace("Model", "ForCausalLM")},
        generates=True,
        saved_names=True,
        writing=Writing(
            f"keras_hub.src.models.{prefix.lower().replace('moe', '_moe')}",
            to_keras,
            ("CausalLM",),
            _TIED,
            tokenizer=tokenizer,
            tokenizer_config={"unsplittable_tokens": ["<|endoftext|>"]},
            notes=notes,
        ),
    )


_QKV = (("query", "q"), ("key", "k"), ("value", "v"))
_SHARED = "layers.{i}.mlp.shared_expert"
QWEN2_MOE = _family(
    ("QwenMoeBackbone", "qwen2_moe", "Qwen2MoeModel", "qwen_layer_norm"),
    (
        *(Entry(f"{_ATTN}/{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in") for k, p in _QKV),
        *(Entry(f"{_ATTN}/{k}_dense/vars/1", f"layers.{{i}}.self_attn.{p}_proj.bias", "heads_bias") for k, p in _QKV),
    ),
    (  # the shared expert every token takes, scaled by sigmoid(shared_expert_gate)
        *(
            Entry(f"mlp/shared_expert_dense/_feedforward_{k}_dense/vars/0", f"{_SHARED}.{p}_proj.weight", "dense")
            for k, p in (("gate", "gate"), ("intermediate", "up"), ("output", "down"))
        ),
        Entry("mlp/shared_expert_gate_dense/vars/0", "layers.{i}.mlp.shared_expert_gate.weight", "dense"),
    ),
    (_qwen2_moe_to_transformers, _qwen2_moe_to_keras),
    "QwenMoeTokenizer",
)
QWEN3_MOE = _family(
    ("Qwen3MoeBackbone", "qwen3_moe", "Qwen3MoeModel", "qwen3_moe_layer_norm"),
    (
        *(Entry(f"{_ATTN}/_{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in") for k, p in _QKV),
        *(  # per-head RMSNorms: KerasHub's at 1e-6 always, transformers' at rms_norm_eps
            Entry(f"{_ATTN}/_{k}_dense_layer_norm/vars/0", f"layers.{{i}}.self_attn.{p}_norm.weight")
            for k, p in _QKV[:2]
        ),
    ),
    (),
    (_qwen3_moe_to_transformers, _qwen3_moe_to_keras),
    "Qwen3MoeTokenizer",
    _qwen3_moe_notes,
)
