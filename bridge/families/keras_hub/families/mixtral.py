"""Mixtral: ``MixtralBackbone`` <-> ``MixtralModel``, ``MixtralCausalLM`` <-> ``MixtralForCausalLM`` (a
Llama-shaped decoder whose feed-forward is a router over a bank of SwiGLU experts; both route by softmax, top-k, the
top-k weights renormalized).  KerasHub keeps each projection of every expert in one ``[experts, in, out]`` array;
transformers 5 joins them in memory (``mlp.experts.gate_up_proj``) but saves them as transformers 4 did, the names
vLLM and KerasHub's own importer read: one ``[out, in]`` tensor per expert, ``block_sparse_moe.experts.N.w1`` (gate),
``w3`` (up), ``w2`` (down), and the router ``block_sparse_moe.gate``.  The table names those."""

from __future__ import annotations

from bridge.families.keras_hub.families.decoder import rope_theta
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "mixtral",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "intermediate_size": c["intermediate_dim"],
        "num_local_experts": c["num_experts"],
        "num_experts_per_tok": c["top_k"],
        "router_jitter_noise": c.get("router_jitter_noise", 0.0),
        "router_aux_loss_coef": c.get("router_aux_loss_coef", 0.02),
        "output_router_logits": False,  # KerasHub's importer reads the key, which transformers 5 saves only when set
        "hidden_act": "silu",
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": c.get("rope_max_wavelength", 10000),
        "sliding_window": None,  # KerasHub's attention keeps its sliding_window setting without applying it
        "tie_word_embeddings": False,
    }


def _to_keras(c: Config) -> Config:
    heads = c["num_attention_heads"]
    if c.get("head_dim") not in (None, c["hidden_size"] // heads):
        raise refuse(c, f"head_dim {c['head_dim']}", "KerasHub Mixtral derives head_dim from hidden_dim")
    if c.get("tie_word_embeddings"):
        raise refuse(c, "tie_word_embeddings is set", "KerasHub Mixtral always has its own output projection")
    if c.get("sliding_window"):
        raise refuse(c, f"sliding_window {c['sliding_window']}", "KerasHub Mixtral attends to the whole sequence")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": heads,
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "num_experts": c["num_local_experts"],
        "top_k": c["num_experts_per_tok"],
        "router_jitter_noise": c.get("router_jitter_noise", 0.0),
        "rope_max_wavelength": rope_theta(c),
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": c.get("num_key_value_heads") or heads,
        "router_aux_loss_coef": c.get("router_aux_loss_coef", 0.02),
        "sliding_window": 512,  # KerasHub's default, kept in its config and never applied
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
    }


_ATTN = "_self_attention_layer"
_MOE = "_sparse_moe_block"
_EXPERT = "layers.{i}.block_sparse_moe.experts.{e}"
_EXPERTS = "the experts: KerasHub's expert bank (MixtralMoeExperts) takes no LoRA, so its LoRA file never holds them"
_ROUTER = (
    "the router: transformers 5's is a bare weight (MixtralTopKRouter), not a Linear PEFT's LoRA adapts, while "
    "KerasHub's is a Dense"
)
MIXTRAL = Family(
    backbone="MixtralBackbone",
    model_type="mixtral",
    base_class="MixtralModel",
    base_prefix="model",
    layer="mixtral_transformer_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/reversible_embedding/vars/1", "lm_head.weight", "dense"),
        Entry("layers/mixtral_layer_normalization/vars/0", "norm.weight"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in")
            for k, p in (("query", "q"), ("key", "k"), ("value", "v"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry("_self_attention_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("_feedforward_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry(f"{_MOE}/_sparse_feedforward_gate_dense/vars/0", "layers.{i}.block_sparse_moe.gate.weight", "dense"),
        *(  # the bank's gate, up and down kernels, one row per expert
            Entry(f"{_MOE}/expert_bank/vars/{n}", f"{_EXPERT}.{w}.weight", "dense", each="num_experts")
            for n, w in enumerate(("w1", "w3", "w2"))
        ),
    ),
    config=_to_transformers,
    tokenizer="LlamaTokenizer",
    vocabulary="sentencepiece",
    tasks={"MixtralCausalLM": "MixtralForCausalLM"},
    generates=True,
    saved_names=True,
    writing=Writing("keras_hub.src.models.mixtral", _to_keras, ("CausalLM",), tokenizer="MixtralTokenizer"),
    lora=LoraOrder(
        1,
        (
            None,  # the decoder block
            None,  # feedforward_layernorm
            None,  # the sparse MoE block
            LoraSite("experts", "layers.{i}.mlp.experts", refused=_EXPERTS),
            LoraSite("sparse_feedforward_gate_dense", "layers.{i}.mlp.gate", refused=_ROUTER),
            None,  # self_attention_layernorm
            None,  # self_attention
            LoraSite("attention_output", "layers.{i}.self_attn.o_proj", "q"),
            LoraSite("value", "layers.{i}.self_attn.v_proj", "kv"),
            LoraSite("key", "layers.{i}.self_attn.k_proj", "kv"),
            LoraSite("query", "layers.{i}.self_attn.q_proj", "q"),
        ),
    ),
)
