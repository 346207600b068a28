"""Mixtral: ``MixtralBackbone`` -> ``MixtralModel``, ``MixtralCausalLM`` -> ``MixtralForCausalLM`` (a Llama-shaped
decoder whose feed-forward is a router over a bank of SwiGLU experts: KerasHub keeps each projection of every expert
in one ``[experts, in, out]`` array, transformers 5 gate and up joined in ``gate_up_proj [experts, 2 * inter,
hidden]`` and ``down_proj [experts, hidden, inter]`` in memory; both route by softmax, top-k, the top-k weights
renormalized).
Read only: transformers 5 saves Mixtral on disk as transformers 4 did, one tensor per expert
(``block_sparse_moe.experts.N.w1``), which this table does not name yet."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family


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


_ATTN = "_self_attention_layer"
_MOE = "_sparse_moe_block"
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
        Entry(f"{_MOE}/_sparse_feedforward_gate_dense/vars/0", "layers.{i}.mlp.gate.weight", "dense"),
        Entry(f"{_MOE}/expert_bank/vars/0", "layers.{i}.mlp.experts.gate_up_proj", "experts_dense@0/2/1"),
        Entry(f"{_MOE}/expert_bank/vars/1", "layers.{i}.mlp.experts.gate_up_proj", "experts_dense@1/2/1"),
        Entry(f"{_MOE}/expert_bank/vars/2", "layers.{i}.mlp.experts.down_proj", "experts_dense"),
    ),
    config=_to_transformers,
    tokenizer="LlamaTokenizer",
    vocabulary="sentencepiece",
    tasks={"MixtralCausalLM": "MixtralForCausalLM"},
    generates=True,
)
