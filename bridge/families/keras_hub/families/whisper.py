"""Whisper: ``WhisperBackbone`` <-> ``WhisperModel`` (the input convolutions turned to torch's ``[out, in, width]``;
keys without a bias, as in transformers; blocks named as BART's)."""

from __future__ import annotations

from bridge.families.keras_hub.families.bart import (
    DECODER_COUNTS,
    ENCODER_LORA_NAMES,
    LORA_BACKEND,
    attention_entries,
    decoder_lora_block,
    feedforward_entries,
    same_sizes,
)
from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    LoraStack,
    Stack,
    Writing,
    require,
    transformer_encoder_lora,
)

_SPECIAL = {"pad_token_id": 50256, "bos_token_id": 50257, "eos_token_id": 50257}
_START = 50258  # <|startoftranscript|>


def _to_transformers(c: Config) -> Config:
    vocabulary = c["vocabulary_size"]
    return {
        "model_type": "whisper",
        "vocab_size": vocabulary,
        "num_mel_bins": c.get("num_mels", 80),
        "d_model": c["hidden_dim"],
        "encoder_layers": c["num_layers"],
        "decoder_layers": c["num_layers"],
        "encoder_attention_heads": c["num_heads"],
        "decoder_attention_heads": c["num_heads"],
        "encoder_ffn_dim": c["intermediate_dim"],
        "decoder_ffn_dim": c["intermediate_dim"],
        # the second convolution halves the frames: the encoder's position table has half as many rows
        "max_source_positions": c.get("max_encoder_sequence_length", 3000) // 2,
        "max_target_positions": c.get("max_decoder_sequence_length", 448),
        "activation_function": "gelu",
        "dropout": c.get("dropout", 0.0),
        "scale_embedding": False,
        "tie_word_embeddings": True,
        # OpenAI's special tokens where the vocabulary has them (a smaller one: none; transformers needs a start id)
        **{k: (v if v < vocabulary else None) for k, v in _SPECIAL.items()},
        "decoder_start_token_id": min(_START, vocabulary - 1),
    }


def _to_keras(c: Config) -> Config:
    same_sizes(c, "WhisperBackbone")
    require(
        c,
        (
            ("activation_function", "gelu", "KerasHub Whisper's feedforward computes the exact gelu"),
            ("scale_embedding", False, "KerasHub Whisper does not scale its embeddings"),
            ("tie_word_embeddings", True, "KerasHub Whisper's logits reuse the token embeddings"),
        ),
    )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["encoder_layers"],
        "num_heads": c["encoder_attention_heads"],
        "hidden_dim": c["d_model"],
        "intermediate_dim": c["encoder_ffn_dim"],
        "num_mels": c.get("num_mel_bins", 80),
        "dropout": c.get("dropout", 0.0),
        # the frames before the second convolution halves them: twice the encoder's position rows
        "max_encoder_sequence_length": 2 * c.get("max_source_positions", 1500),
        "max_decoder_sequence_length": c.get("max_target_positions", 448),
    }


WHISPER = Family(
    backbone="WhisperBackbone",
    model_type="whisper",
    base_class="WhisperModel",
    base_prefix="model",
    layer="whisper_encoder",
    entries=(
        Entry("layers/conv1d/vars/0", "encoder.conv1.weight", "conv1d"),
        Entry("layers/conv1d/vars/1", "encoder.conv1.bias"),
        Entry("layers/conv1d_1/vars/0", "encoder.conv2.weight", "conv1d"),
        Entry("layers/conv1d_1/vars/1", "encoder.conv2.bias"),
        Entry("layers/position_embedding/vars/0", "encoder.embed_positions.weight"),
        Entry("layers/token_and_position_embedding/token_embedding/vars/0", "decoder.embed_tokens.weight"),
        Entry("layers/token_and_position_embedding/position_embedding/vars/0", "decoder.embed_positions.weight"),
        Entry("layers/layer_normalization/vars/0", "encoder.layer_norm.weight"),
        Entry("layers/layer_normalization/vars/1", "encoder.layer_norm.bias"),
        Entry("layers/layer_normalization_1/vars/0", "decoder.layer_norm.weight"),
        Entry("layers/layer_normalization_1/vars/1", "decoder.layer_norm.bias"),
        *attention_entries("_self_attention_layer", "encoder.layers.{i}.self_attn", key_bias=False),
        *feedforward_entries("encoder.layers.{i}"),
    ),
    stacks=(
        Stack(
            "whisper_decoder",
            (
                *attention_entries("_self_attention_layer", "decoder.layers.{i}.self_attn", key_bias=False),
                *attention_entries("_cross_attention_layer", "decoder.layers.{i}.encoder_attn", key_bias=False),
                *feedforward_entries("decoder.layers.{i}"),
            ),
        ),
    ),
    config=_to_transformers,
    tasks={},
    writing=Writing("keras_hub.src.models.whisper", _to_keras, ()),
    lora=transformer_encoder_lora(
        3,  # the two input convolutions, the encoder's position embedding
        "encoder.layers.{i}.",
        ENCODER_LORA_NAMES,
        ("encoder_layers", "encoder_attention_heads", "encoder_attention_heads"),
        # the encoder's norm, the decoder's token and position embeddings (their layer and its two sublayers);
        # the TensorFlow backend's order (the torch backend numbers the decoder's embeddings among encoder blocks)
        (LoraStack(4, decoder_lora_block("decoder.layers.{i}.", "encoder_attn"), DECODER_COUNTS),),
        backend=LORA_BACKEND,
    ),
)
