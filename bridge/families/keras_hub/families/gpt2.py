"""GPT-2: ``GPT2Backbone`` <-> ``GPT2Model``, ``GPT2CausalLM`` <-> ``GPT2LMHeadModel`` (Conv1D weights keep Keras'
``[in, out]`` order; query, key and value sit side by side in one ``c_attn``)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "gpt2",
        "vocab_size": c["vocabulary_size"],
        "n_embd": c["hidden_dim"],
        "n_layer": c["num_layers"],
        "n_head": c["num_heads"],
        "n_inner": c["intermediate_dim"],
        "n_positions": c.get("max_sequence_length", 1024),
        "activation_function": "gelu_new",  # KerasHub: gelu_approximate, the tanh form
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": c.get("dropout", 0.1),
        "embd_pdrop": c.get("dropout", 0.1),
        "attn_pdrop": c.get("dropout", 0.1),
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    if float(c.get("layer_norm_epsilon", 1e-5)) != 1e-5:
        raise refuse(c, f"layer_norm_epsilon {c['layer_norm_epsilon']}", "KerasHub GPT-2's layer norms use 1e-5")
    for key in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if c.get(key):
            raise refuse(c, f"{key} is set", "KerasHub GPT-2 computes attention as the original GPT-2 does")
    if c.get("tie_word_embeddings") is False:
        raise refuse(c, "tie_word_embeddings is false", "KerasHub GPT-2's output projection is its embeddings")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["n_layer"],
        "num_heads": c["n_head"],
        "hidden_dim": c["n_embd"],
        "intermediate_dim": c.get("n_inner") or 4 * c["n_embd"],
        "dropout": c.get("resid_pdrop", 0.1),
        "max_sequence_length": c.get("n_positions", 1024),
    }


def _notes(c: Config) -> list[str]:
    act = c.get("activation_function", "gelu_new")
    if act in ("gelu_new", "gelu_pytorch_tanh"):
        return []
    return [f"activation_function {act}: KerasHub GPT-2 computes the tanh form of gelu; the values are written exactly"]


_ATTN = "_self_attention_layer"
GPT2 = Family(
    backbone="GPT2Backbone",
    model_type="gpt2",
    base_class="GPT2Model",
    base_prefix="transformer",
    layer="transformer_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "wte.weight"),
        Entry("layers/position_embedding/vars/0", "wpe.weight"),
        Entry("layers/layer_normalization/vars/0", "ln_f.weight"),
        Entry("layers/layer_normalization/vars/1", "ln_f.bias"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/{v}", f"h.{{i}}.attn.c_attn.{p}", f"{kind}@{n}/3")
            for n, k in enumerate(("query", "key", "value"))
            for v, p, kind in ((0, "weight", "conv_heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "h.{i}.attn.c_proj.weight", "conv_heads_out"),
        Entry(f"{_ATTN}/output_dense/vars/1", "h.{i}.attn.c_proj.bias"),
        Entry(f"{_ATTN}_norm/vars/0", "h.{i}.ln_1.weight"),
        Entry(f"{_ATTN}_norm/vars/1", "h.{i}.ln_1.bias"),
        Entry("_feedforward_layer_norm/vars/0", "h.{i}.ln_2.weight"),
        Entry("_feedforward_layer_norm/vars/1", "h.{i}.ln_2.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", "h.{i}.mlp.c_fc.weight"),
        Entry("_feedforward_intermediate_dense/vars/1", "h.{i}.mlp.c_fc.bias"),
        Entry("_feedforward_output_dense/vars/0", "h.{i}.mlp.c_proj.weight"),
        Entry("_feedforward_output_dense/vars/1", "h.{i}.mlp.c_proj.bias"),
    ),
    config=_to_transformers,
    tokenizer="GPT2Tokenizer",
    vocabulary="bpe",
    tasks={"GPT2CausalLM": "GPT2LMHeadModel"},
    generates=True,
    writing=Writing(
        "keras_hub.src.models.gpt2",
        _to_keras,
        ("CausalLM",),
        notes=_notes,
        tokenizer="GPT2Tokenizer",
        tokenizer_config={"unsplittable_tokens": ["<|endoftext|>"]},
    ),
    lora=LoraOrder(
        2,
        (
            None,  # the decoder block
            None,  # feedforward_layer_norm
            LoraSite("feedforward_output_dense", "h.{i}.mlp.c_proj", kind="dense"),
            LoraSite("feedforward_intermediate_dense", "h.{i}.mlp.c_fc", kind="dense"),
            None,  # self_attention_layer_norm
            None,  # self_attention
            LoraSite("attention_output", "h.{i}.attn.c_proj", "q", kind="heads_out"),
            LoraSite("value", "h.{i}.attn.c_attn", "q", kind="heads_in", part="2/3"),
            LoraSite("key", "h.{i}.attn.c_attn", "q", kind="heads_in", part="1/3"),
            LoraSite("query", "h.{i}.attn.c_attn", "q", kind="heads_in", part="0/3"),
        ),
        ("n_layer", "n_head", "n_head"),
        fan_in_fan_out=True,
    ),
)
