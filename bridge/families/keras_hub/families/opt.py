"""OPT: ``OPTBackbone`` <-> ``OPTModel``, ``OPTCausalLM`` <-> ``OPTForCausalLM`` (pre-norm decoder blocks with
biases, ReLU, learned positions; transformers' position table has two leading rows for its offset that KerasHub's
lacks, read only at padding positions)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, refuse

_OFFSET = 2  # transformers' OPTLearnedPositionalEmbedding reads row position + 2


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "opt",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "word_embed_proj_dim": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "ffn_dim": c["intermediate_dim"],
        "max_position_embeddings": c.get("max_sequence_length", 2048),
        "activation_function": "relu",
        "do_layer_norm_before": True,
        "enable_bias": True,
        "layer_norm_elementwise_affine": True,
        "dropout": c.get("dropout", 0.1),
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    hidden = c["hidden_size"]
    for key, want in (
        ("word_embed_proj_dim", hidden),
        ("do_layer_norm_before", True),
        ("enable_bias", True),
        ("layer_norm_elementwise_affine", True),
        ("activation_function", "relu"),
        ("tie_word_embeddings", True),
        ("_remove_final_layer_norm", False),
    ):
        if c.get(key, want) != want:
            raise refuse(c, f"{key} is {c[key]!r}", f"KerasHub OPT computes only {key} {want!r}")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": hidden,
        "intermediate_dim": c["ffn_dim"],
        "dropout": c.get("dropout", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 2048),
    }


_ATTN = "_self_attention_layer"
_EMBED = "layers/token_and_position_embedding"
OPT = Family(
    backbone="OPTBackbone",
    model_type="opt",
    base_class="OPTModel",
    base_prefix="model",
    layer="transformer_decoder",
    entries=(
        Entry(f"{_EMBED}/token_embedding/vars/0", "decoder.embed_tokens.weight"),
        Entry(f"{_EMBED}/position_embedding/vars/0", "decoder.embed_positions.weight", f"rows+{_OFFSET}"),
        Entry("layers/layer_normalization/vars/0", "decoder.final_layer_norm.weight"),
        Entry("layers/layer_normalization/vars/1", "decoder.final_layer_norm.bias"),
        *(
            Entry(f"{_ATTN}/{k}_dense/vars/{v}", f"decoder.layers.{{i}}.self_attn.{p}_proj.{w}", kind)
            for k, p in (("query", "q"), ("key", "k"), ("value", "v"))
            for v, w, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN}/output_dense/vars/0", "decoder.layers.{i}.self_attn.out_proj.weight", "heads_out"),
        Entry(f"{_ATTN}/output_dense/vars/1", "decoder.layers.{i}.self_attn.out_proj.bias"),
        Entry(f"{_ATTN}_norm/vars/0", "decoder.layers.{i}.self_attn_layer_norm.weight"),
        Entry(f"{_ATTN}_norm/vars/1", "decoder.layers.{i}.self_attn_layer_norm.bias"),
        Entry("_feedforward_layer_norm/vars/0", "decoder.layers.{i}.final_layer_norm.weight"),
        Entry("_feedforward_layer_norm/vars/1", "decoder.layers.{i}.final_layer_norm.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", "decoder.layers.{i}.fc1.weight", "dense"),
        Entry("_feedforward_intermediate_dense/vars/1", "decoder.layers.{i}.fc1.bias"),
        Entry("_feedforward_output_dense/vars/0", "decoder.layers.{i}.fc2.weight", "dense"),
        Entry("_feedforward_output_dense/vars/1", "decoder.layers.{i}.fc2.bias"),
    ),
    config=_to_transformers,
    tokenizer="GPT2Tokenizer",
    vocabulary="bpe",
    tasks={"OPTCausalLM": "OPTForCausalLM"},
    generates=True,
    writing=Writing("keras_hub.src.models.opt", _to_keras, ("CausalLM",), tokenizer="OPTTokenizer"),
    # the embeddings (TokenAndPositionEmbedding and its two tables), then KerasHub's TransformerDecoder blocks
    lora=LoraOrder(
        3,
        (
            None,  # the decoder block
            None,  # feedforward_layer_norm
            LoraSite("feedforward_output_dense", "decoder.layers.{i}.fc2"),
            LoraSite("feedforward_intermediate_dense", "decoder.layers.{i}.fc1"),
            None,  # self_attention_layer_norm
            None,  # self_attention
            LoraSite("attention_output", "decoder.layers.{i}.self_attn.out_proj", "q"),
            LoraSite("value", "decoder.layers.{i}.self_attn.v_proj", "kv"),
            LoraSite("key", "decoder.layers.{i}.self_attn.k_proj", "kv"),
            LoraSite("query", "decoder.layers.{i}.self_attn.q_proj", "q"),
        ),
        ("num_hidden_layers", "num_attention_heads", "num_attention_heads"),
    ),
)
