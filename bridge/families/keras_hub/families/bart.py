"""BART: ``BartBackbone`` <-> ``BartModel``, ``BartSeq2SeqLM`` <-> ``BartForConditionalGeneration`` (encoder and
decoder blocks are two layer classes; transformers' position tables keep two leading rows KerasHub lacks)."""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    LoraSite,
    LoraStack,
    Stack,
    Writing,
    refuse,
    require,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "bart",
        "vocab_size": c["vocabulary_size"],
        "d_model": c["hidden_dim"],
        "encoder_layers": c["num_layers"],
        "decoder_layers": c["num_layers"],
        "encoder_attention_heads": c["num_heads"],
        "decoder_attention_heads": c["num_heads"],
        "encoder_ffn_dim": c["intermediate_dim"],
        "decoder_ffn_dim": c["intermediate_dim"],
        "max_position_embeddings": c.get("max_sequence_length", 1024),
        "activation_function": "gelu",  # KerasHub BART: keras.activations.gelu, the exact form
        "dropout": c.get("dropout", 0.1),
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
    }


def same_sizes(c: Config, family: str) -> None:
    """Refuse an encoder-decoder config whose encoder and decoder differ in size: KerasHub's take one of each."""
    for key in ("layers", "attention_heads", "ffn_dim"):
        if c.get(f"encoder_{key}") != c.get(f"decoder_{key}"):
            raise refuse(
                c,
                f"encoder_{key} {c.get(f'encoder_{key}')}, decoder_{key} {c.get(f'decoder_{key}')}",
                f"KerasHub's {family} has encoder and decoder of one size",
            )


def _to_keras(c: Config) -> Config:
    same_sizes(c, "BartBackbone")
    require(
        c,
        (
            ("activation_function", "gelu", "KerasHub BART's feedforward computes the exact gelu"),
            ("scale_embedding", False, "KerasHub BART does not scale its embeddings"),
            ("tie_word_embeddings", True, "KerasHub BART's logits reuse the token embeddings"),
            ("normalize_before", False, "KerasHub BART's blocks normalize after attention (post-norm)"),
            ("add_final_layer_norm", False, "KerasHub BART has no final layer norm"),
        ),
    )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["encoder_layers"],
        "num_heads": c["encoder_attention_heads"],
        "hidden_dim": c["d_model"],
        "intermediate_dim": c["encoder_ffn_dim"],
        "dropout": c.get("dropout", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 1024),
    }


def attention_entries(keras: str, torch: str, *, key_bias: bool = True) -> tuple[Entry, ...]:
    """A KerasHub attention layer and its norm as a transformers BART-style one (``q_proj`` ... ``out_proj``);
    without ``key_bias``, keys without a bias on both sides (Whisper's)."""
    return (
        *(
            Entry(f"{keras}/{k}_dense/vars/{v}", f"{torch}.{k[0]}_proj.{p}", kind)
            for k in ("query", "key", "value")
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
            if key_bias or k != "key" or v == 0
        ),
        Entry(f"{keras}/output_dense/vars/0", f"{torch}.out_proj.weight", "heads_out"),
        Entry(f"{keras}/output_dense/vars/1", f"{torch}.out_proj.bias"),
        Entry(f"{keras}_norm/vars/0", f"{torch}_layer_norm.weight"),
        Entry(f"{keras}_norm/vars/1", f"{torch}_layer_norm.bias"),
    )


def feedforward_entries(stem: str) -> tuple[Entry, ...]:
    """A KerasHub block's feedforward and its norm as transformers' ``fc1``, ``fc2``, ``final_layer_norm``."""
    return (
        Entry("_feedforward_intermediate_dense/vars/0", f"{stem}.fc1.weight", "dense"),
        Entry("_feedforward_intermediate_dense/vars/1", f"{stem}.fc1.bias"),
        Entry("_feedforward_output_dense/vars/0", f"{stem}.fc2.weight", "dense"),
        Entry("_feedforward_output_dense/vars/1", f"{stem}.fc2.bias"),
        Entry("_feedforward_layer_norm/vars/0", f"{stem}.final_layer_norm.weight"),
        Entry("_feedforward_layer_norm/vars/1", f"{stem}.final_layer_norm.bias"),
    )


def decoder_lora_block(stem: str, cross: str) -> tuple[LoraSite | None, ...]:
    """The LoRA order of a KerasHub ``TransformerDecoder`` block with cross-attention (BART's, Whisper's)."""

    def attention(torch: str) -> tuple[LoraSite, ...]:
        return (
            LoraSite("attention_output", f"{stem}{torch}.out_proj", "q"),
            *(LoraSite(k, f"{stem}{torch}.{k[0]}_proj", "q") for k in ("value", "key", "query")),
        )

    return (
        None,  # the decoder block
        None,  # feedforward_layer_norm
        LoraSite("feedforward_output_dense", stem + "fc2"),
        LoraSite("feedforward_intermediate_dense", stem + "fc1"),
        None,  # cross_attention_layer_norm
        None,  # cross_attention
        *attention(cross),
        None,  # self_attention_layer_norm
        None,  # self_attention
        *attention("self_attn"),
    )


ENCODER_LORA_NAMES = {n: f"self_attn.{n[0]}_proj" for n in ("query", "key", "value")} | {
    "output": "self_attn.out_proj",
    "ffn_in": "fc1",
    "ffn_out": "fc2",
}
LORA_BACKEND = (
    "KerasHub numbers this family's layers as declared on the TensorFlow backend only (on torch its decoder "
    "embeddings come earlier): save the adapter with KERAS_BACKEND=tensorflow"
)
DECODER_COUNTS = ("decoder_layers", "decoder_attention_heads", "decoder_attention_heads")

BART = Family(
    backbone="BartBackbone",
    model_type="bart",
    base_class="BartModel",
    base_prefix="model",
    layer="transformer_encoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "shared.weight"),
        Entry("layers/position_embedding/vars/0", "encoder.embed_positions.weight", "rows+2"),
        Entry("layers/position_embedding_1/vars/0", "decoder.embed_positions.weight", "rows+2"),
        Entry("layers/layer_normalization/vars/0", "encoder.layernorm_embedding.weight"),
        Entry("layers/layer_normalization/vars/1", "encoder.layernorm_embedding.bias"),
        Entry("layers/layer_normalization_1/vars/0", "decoder.layernorm_embedding.weight"),
        Entry("layers/layer_normalization_1/vars/1", "decoder.layernorm_embedding.bias"),
        *attention_entries("_self_attention_layer", "encoder.layers.{i}.self_attn"),
        *feedforward_entries("encoder.layers.{i}"),
    ),
    stacks=(
        Stack(
            "transformer_decoder",
            (
                *attention_entries("_self_attention_layer", "decoder.layers.{i}.self_attn"),
                *attention_entries("_cross_attention_layer", "decoder.layers.{i}.encoder_attn"),
                *feedforward_entries("decoder.layers.{i}"),
            ),
        ),
    ),
    config=_to_transformers,
    tokenizer="BartTokenizer",
    vocabulary="bpe",
    tasks={"BartSeq2SeqLM": "BartForConditionalGeneration"},
    zeros=(("final_logits_bias", "KerasHub's Seq2SeqLM adds no bias to its logits"),),
    writing=Writing(
        "keras_hub.src.models.bart",
        _to_keras,
        ("Seq2SeqLM",),
        files={"BartSeq2SeqLM": "bart_seq_2_seq_lm"},
    ),
    lora=transformer_encoder_lora(
        # the token embedding, the encoder's position embedding and norm; the decoder's two after the encoder
        # blocks (as the TensorFlow backend numbers them: the torch backend puts those two ahead of the encoder)
        3,
        "encoder.layers.{i}.",
        ENCODER_LORA_NAMES,
        ("encoder_layers", "encoder_attention_heads", "encoder_attention_heads"),
        (LoraStack(2, decoder_lora_block("decoder.layers.{i}.", "encoder_attn"), DECODER_COUNTS),),
        backend=LORA_BACKEND,
    ),
)
