"""GPT-2: ``GPT2Backbone`` <-> ``GPT2Model``, ``GPT2CausalLM`` <-> ``GPT2LMHeadModel`` (Conv1D weights keep Keras'
``[in, out]`` order; query, key and value sit side by side in one ``c_attn``)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family


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
    tasks={"GPT2CausalLM": "GPT2LMHeadModel"},
    generates=True,
)
