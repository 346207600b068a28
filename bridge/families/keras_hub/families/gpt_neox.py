"""GPT-NeoX: ``GPTNeoXBackbone`` <-> ``GPTNeoXModel``, ``GPTNeoXCausalLM`` <-> ``GPTNeoXForCausalLM`` (parallel
residual blocks, partial rotary embeddings; one query-key-value projection whose rows are per head query, key and
value, the layout of KerasHub's ``[hidden, heads, 3 * head_dim]`` einsum kernel; the output head tied)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # what KerasHub's gelu_approximate computes


def _to_transformers(c: Config) -> Config:
    dropout = c.get("dropout", 0.0)
    return {
        "model_type": "gpt_neox",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": c.get("rotary_max_wavelength", 10000),
            "partial_rotary_factor": c.get("rotary_percentage", 0.25),
        },
        "layer_norm_eps": c.get("layer_norm_epsilon", 1e-5),
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "use_parallel_residual": True,
        "attention_bias": True,
        "hidden_dropout": dropout,
        "attention_dropout": dropout,
        "tie_word_embeddings": True,
    }


def _rope(c: Config) -> Config:
    """transformers 5's rope_parameters, or the keys older configs spell them with."""
    rope = dict(c.get("rope_parameters") or c.get("rope_scaling") or {})
    rope.setdefault("rope_theta", c.get("rotary_emb_base", 10000))
    rope.setdefault("partial_rotary_factor", c.get("rotary_pct", 0.25))
    return rope


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("use_parallel_residual", True, "KerasHub GPT-NeoX adds attention and MLP to the residual in parallel"),
            ("attention_bias", True, "KerasHub GPT-NeoX's attention projections have biases"),
            ("tie_word_embeddings", True, "KerasHub GPT-NeoX's output projection is its embeddings"),
        ),
    )
    act = c.get("hidden_act", "gelu")
    if act != "gelu" and act not in _TANH_GELU:
        raise refuse(c, f"hidden_act {act}", "KerasHub GPT-NeoX's MLP computes the tanh form of gelu")
    rope = _rope(c)
    if rope.get("rope_type", "default") != "default":
        raise refuse(c, f"rope_parameters rope_type {rope['rope_type']}", "Only unscaled rotary embeddings convert")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout", 0.0),
        "rotary_percentage": rope["partial_rotary_factor"],
        "rotary_max_wavelength": rope["rope_theta"],
        "max_sequence_length": c.get("max_position_embeddings", 2048),
        "layer_norm_epsilon": c.get("layer_norm_eps", 1e-5),
    }


def _notes(c: Config) -> list[str]:
    if c.get("hidden_act", "gelu") in _TANH_GELU:
        return []
    return ["hidden_act gelu: KerasHub GPT-NeoX computes the tanh form of gelu; the values are written exactly"]


_ATTN = "_self_attention_layer"
GPT_NEOX = Family(
    backbone="GPTNeoXBackbone",
    model_type="gpt_neox",
    base_class="GPTNeoXModel",
    base_prefix="gpt_neox",
    layer="gpt_neo_x_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_in.weight"),
        Entry("layers/layer_normalization/vars/0", "final_layer_norm.weight"),
        Entry("layers/layer_normalization/vars/1", "final_layer_norm.bias"),
        # [hidden, heads, 3 * head_dim]: per head its query, key and value, as transformers' rows are
        Entry(f"{_ATTN}/_qkv_dense/vars/0", "layers.{i}.attention.query_key_value.weight", "heads_in*3"),
        Entry(f"{_ATTN}/_qkv_dense/vars/1", "layers.{i}.attention.query_key_value.bias", "heads_bias*3"),
        Entry(f"{_ATTN}/_output_dense/vars/0", "layers.{i}.attention.dense.weight", "dense"),
        Entry(f"{_ATTN}/_output_dense/vars/1", "layers.{i}.attention.dense.bias"),
        Entry(f"{_ATTN}_norm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry(f"{_ATTN}_norm/vars/1", "layers.{i}.input_layernorm.bias"),
        Entry("_feedforward_layer_norm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("_feedforward_layer_norm/vars/1", "layers.{i}.post_attention_layernorm.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", "layers.{i}.mlp.dense_h_to_4h.weight", "dense"),
        Entry("_feedforward_intermediate_dense/vars/1", "layers.{i}.mlp.dense_h_to_4h.bias"),
        Entry("_feedforward_output_dense/vars/0", "layers.{i}.mlp.dense_4h_to_h.weight", "dense"),
        Entry("_feedforward_output_dense/vars/1", "layers.{i}.mlp.dense_4h_to_h.bias"),
    ),
    config=_to_transformers,
    tokenizer="GPT2Tokenizer",
    vocabulary="bpe",
    tasks={"GPTNeoXCausalLM": "GPTNeoXForCausalLM"},
    generates=True,
    writing=Writing(
        "keras_hub.src.models.gpt_neo_x",
        _to_keras,
        ("CausalLM",),
        notes=_notes,
        tokenizer="GPTNeoXTokenizer",
        files={
            "GPTNeoXBackbone": "gpt_neo_x_backbone",
            "GPTNeoXCausalLM": "gpt_neo_x_causal_lm",
            "GPTNeoXTokenizer": "gpt_neo_x_tokenizer",
        },
    ),
)
