"""KerasHub Qwen 3.5 MoE <-> transformers ``qwen3_5_moe_text``: Qwen 3.5's hybrid layers (:mod:`.qwen3_5`) whose
feed-forward routes each token to its top-k experts (softmax, the top-k renormalised, in both libraries) beside a
shared expert under a sigmoid gate.  KerasHub keeps the experts in one bank (gate and up kernels side by side);
transformers 5 joins them in memory and saves them one by one (``mlp.experts.{e}.*``)."""

from __future__ import annotations

from bridge.families.keras_hub.families.qwen3_5 import BLOCK, feedforward, keras_common, transformers_common
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse

_MOE = "mlp"
_EXPERT = "layers.{i}.mlp.experts.{e}"
_BANK = f"{_MOE}/expert_bank/vars"


def _to_keras(c: Config) -> Config:
    experts, top_k = int(c["num_experts"]), int(c["num_experts_per_tok"])
    if not 0 < top_k <= experts:
        raise refuse(c, f"num_experts_per_tok {top_k} of num_experts {experts}", "Each token picks among the experts")
    return keras_common(c) | {
        "moe_intermediate_dim": c["moe_intermediate_size"],
        "shared_expert_intermediate_size": c["shared_expert_intermediate_size"],
        "num_experts": experts,
        "top_k": top_k,
        "router_aux_loss_coefficient": c.get("router_aux_loss_coef", 0.001),
    }


def _to_transformers(c: Config) -> Config:
    return transformers_common(c, "qwen3_5_moe_text") | {
        "moe_intermediate_size": c["moe_intermediate_dim"],
        "shared_expert_intermediate_size": c["shared_expert_intermediate_size"],
        "num_experts": c["num_experts"],
        "num_experts_per_tok": c["top_k"],
        "router_aux_loss_coef": c.get("router_aux_loss_coefficient", 0.001),
    }


QWEN3_5_MOE = Family(
    backbone="Qwen3_5MoeBackbone",
    model_type="qwen3_5_moe_text",
    base_class="Qwen3_5MoeTextModel",
    base_prefix="model",
    layer="qwen3_5_moe_transformer_decoder",
    entries=(
        *BLOCK,
        Entry(f"{_MOE}/_router_gate/vars/0", "layers.{i}.mlp.gate.weight", "dense"),
        Entry(f"{_BANK}/0", f"{_EXPERT}.gate_proj.weight", "dense%0/2", each="num_experts"),
        Entry(f"{_BANK}/0", f"{_EXPERT}.up_proj.weight", "dense%1/2", each="num_experts"),
        Entry(f"{_BANK}/1", f"{_EXPERT}.down_proj.weight", "dense", each="num_experts"),
        *feedforward(f"{_MOE}/shared_expert/", "layers.{i}.mlp.shared_expert"),
        Entry(f"{_MOE}/_shared_expert_gate/vars/0", "layers.{i}.mlp.shared_expert_gate.weight", "dense"),
    ),
    config=_to_transformers,
    tasks={"Qwen3_5MoeCausalLM": "Qwen3_5MoeForCausalLM"},
    generates=True,
    tokenizer="Qwen2Tokenizer",
    vocabulary="bpe",
    saved_names=True,
    writing=Writing(
        "keras_hub.src.models.qwen3_5_moe",
        _to_keras,
        ("CausalLM",),
        "layers/reversible_embedding/vars/1",
        tokenizer="Qwen3_5MoeTokenizer",
        tokenizer_config={"unsplittable_tokens": ["<|endoftext|>"]},
    ),
)
