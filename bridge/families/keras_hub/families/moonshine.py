"""Moonshine: ``MoonshineBackbone`` <-> ``MoonshineModel``, ``MoonshineAudioToText`` <->
``MoonshineForConditionalGeneration``.  Raw audio through three convolutions (the first without bias, then tanh and
a one-group norm; gelu after the other two), encoder blocks with a gelu feed-forward, decoder blocks with a SwiGLU
one (value half first, gated half second on both sides), bias-free layer norms, partial interleaved rotary
embeddings and logits from the tied token table.  KerasHub saves each stack's rotary frequencies as a variable:
computed into the preset, no tensor in transformers.  Refused: padded head sizes, attention biases, grouped
key-value heads, encoder and decoder head counts that differ (transformers 5 builds the decoder with the
encoder's: its attention layers write their head count into the shared config), a feed-forward not a whole multiple
of the hidden size, a SwiGLU encoder or gelu decoder, untied logits, and a rotary width KerasHub rounds down (an odd
``head_dim * partial_rotary_factor``)."""

from __future__ import annotations

from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, refuse, require

_SIDES = ("encoder", "decoder")
_ACTIVATIONS = {"encoder": "gelu", "decoder": "silu"}  # transformers' fixed feed-forwards, KerasHub's defaults
_SWIGLU = {"encoder": False, "decoder": True}


def _rotary_width(hidden: int, heads: int, factor: float) -> int:
    """transformers' rotated channels per head (KerasHub rounds the same product down to an even count)."""
    return int((hidden // heads) * factor)


def _inverse_frequencies(keras: Config, shape: tuple[int, ...]) -> Any:
    """A stack's rotary frequencies as KerasHub's ``MoonshineRotaryEmbedding`` computes them (float32)."""
    import numpy as np

    half = shape[0]
    exponents = np.arange(0, half, dtype=np.float32) / np.float32(half)
    return (np.float32(1.0) / np.power(np.float32(keras["rope_theta"]), exponents)).astype(np.float32)


def _rotary_tables(keras: Config) -> tuple[Entry, ...]:
    return tuple(
        Entry(
            f"layers/moonshine_rotary_embedding{f'_{k}' if k else ''}/vars/0",
            "",
            shape=(
                _rotary_width(keras["hidden_dim"], keras[f"{side}_num_heads"], keras["partial_rotary_factor"]) // 2,
            ),
            computed=_inverse_frequencies,
        )
        for k, side in enumerate(_SIDES)
    )


def _unwritable(detail: str, hint: str) -> UsageError:
    return UsageError("This KerasHub Moonshine preset cannot be written for transformers", detail=detail, hint=hint)


def _to_transformers(c: Config) -> Config:
    hidden, factor = int(c["hidden_dim"]), float(c.get("partial_rotary_factor", 0.62))
    checks = (
        ("pad_head_dim_to_multiple_of", None, "Only presets whose heads are not padded convert"),
        ("attention_bias", False, "KerasHub's Moonshine attention has no bias"),
        ("filter_dim", hidden, "transformers' convolutions have as many filters as the hidden size"),
        *((f"{s}_use_swiglu_activation", _SWIGLU[s], f"transformers' {s} feed-forward is fixed") for s in _SIDES),
    )
    for key, want, hint in checks:
        if c.get(key, want) != want:
            raise _unwritable(f"{key} {c.get(key)}", hint)
    if c["decoder_num_heads"] != c["encoder_num_heads"]:
        raise _unwritable(
            f"decoder_num_heads {c['decoder_num_heads']}, encoder_num_heads {c['encoder_num_heads']}",
            "transformers' Moonshine builds its decoder with the encoder's head count",
        )
    for side in _SIDES:
        width = _rotary_width(hidden, c[f"{side}_num_heads"], factor)
        if width % 2:
            raise _unwritable(
                f"partial_rotary_factor {factor} ({width} rotated channels in the {side})",
                "KerasHub rounds an odd rotary width down, transformers does not",
            )
    return {
        "model_type": "moonshine",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": hidden,
        # KerasHub sizes its feed-forward by the expansion factor, not by intermediate_dim
        "intermediate_size": int(hidden * c.get("feedforward_expansion_factor", 4)),
        **{f"{s}_num_hidden_layers": c[f"{s}_num_layers"] for s in _SIDES},
        **{f"{s}_num_attention_heads": c[f"{s}_num_heads"] for s in _SIDES},
        **{f"{s}_num_key_value_heads": c[f"{s}_num_heads"] for s in _SIDES},
        **{f"{s}_hidden_act": _ACTIVATIONS[s] for s in _SIDES},
        "max_position_embeddings": c.get("max_position_embeddings", 2048),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": c.get("rope_theta", 10000.0),
            "partial_rotary_factor": factor,
        },
        "attention_bias": False,
        "attention_dropout": c.get("attention_dropout", 0.0),
        "initializer_range": c.get("initializer_range", 0.02),
        "tie_word_embeddings": True,
        "is_encoder_decoder": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
    }


def _to_keras(c: Config) -> Config:
    rope = c.get("rope_parameters") or {}
    hidden, intermediate = int(c["hidden_size"]), int(c["intermediate_size"])
    factor = float(rope.get("partial_rotary_factor") or c.get("partial_rotary_factor") or 0.9)
    require(
        {**c, "rope_type": rope.get("rope_type", "default")},
        (
            ("pad_head_dim_to_multiple_of", None, "KerasHub's padded heads are not transformers' padding"),
            ("attention_bias", False, "KerasHub's Moonshine attention converts bias-free"),
            *((f"{s}_hidden_act", _ACTIVATIONS[s], f"KerasHub's {s} feed-forward computes it") for s in _SIDES),
            ("tie_word_embeddings", True, "KerasHub's Moonshine logits reuse the token table"),
            ("rope_type", "default", "KerasHub's Moonshine rotates by the plain rotary base"),
        ),
    )
    if c["decoder_num_attention_heads"] != c["encoder_num_attention_heads"]:
        raise refuse(
            c,
            f"decoder_num_attention_heads {c['decoder_num_attention_heads']}",
            "transformers builds this decoder with the encoder's head count (its attention layers rewrite the shared "
            "config), so no model computes it",
        )
    for side in _SIDES:
        heads = c[f"{side}_num_attention_heads"]
        grouped = c.get(f"{side}_num_key_value_heads") or heads
        if grouped != heads:
            raise refuse(
                c, f"{side}_num_key_value_heads {grouped}", "KerasHub's Moonshine has no grouped key-value heads"
            )
        if _rotary_width(hidden, heads, factor) % 2:
            raise refuse(
                c,
                f"partial_rotary_factor {factor}",
                f"KerasHub rounds the {side}'s odd rotary width {_rotary_width(hidden, heads, factor)} down",
            )
    if intermediate % hidden:
        raise refuse(
            c, f"intermediate_size {intermediate}", "KerasHub sizes its feed-forward as a multiple of hidden_size"
        )
    return {
        "vocabulary_size": c["vocab_size"],
        "filter_dim": hidden,
        **{f"{s}_num_layers": c[f"{s}_num_hidden_layers"] for s in _SIDES},
        "hidden_dim": hidden,
        "intermediate_dim": intermediate,
        **{f"{s}_num_heads": c[f"{s}_num_attention_heads"] for s in _SIDES},
        "feedforward_expansion_factor": intermediate // hidden,
        **{f"{s}_use_swiglu_activation": _SWIGLU[s] for s in _SIDES},
        "max_position_embeddings": c.get("max_position_embeddings", 512),
        "pad_head_dim_to_multiple_of": None,
        "partial_rotary_factor": factor,
        "dropout": 0.0,
        "initializer_range": c.get("initializer_range", 0.02),
        "rope_theta": rope.get("rope_theta", 10000.0),
        "attention_bias": False,
        "attention_dropout": c.get("attention_dropout", 0.0),
    }


def _attention(keras: str, torch: str) -> tuple[Entry, ...]:
    return (
        *(
            Entry(f"{keras}/{k}_dense/vars/0", f"{torch}.{k[0]}_proj.weight", "heads_in")
            for k in ("query", "key", "value")
        ),
        Entry(f"{keras}/output_dense/vars/0", f"{torch}.o_proj.weight", "heads_out"),
    )


def _feedforward(keras: str, torch: str) -> tuple[Entry, ...]:
    return tuple(
        Entry(f"{keras}/dense_{n}/vars/{v}", f"{torch}.fc{n}.{p}", "dense" if v == 0 else "same")
        for n in (1, 2)
        for v, p in ((0, "weight"), (1, "bias"))
    )


def _norm(keras: str, torch: str) -> Entry:
    return Entry(f"{keras}/vars/0", f"{torch}.weight")


_ENCODER = "encoder.layers.{i}"
_DECODER = "decoder.layers.{i}"

MOONSHINE = Family(
    backbone="MoonshineBackbone",
    model_type="moonshine",
    base_class="MoonshineModel",
    base_prefix="model",
    layer="moonshine_encoder_block",
    entries=(
        Entry("layers/conv1d/vars/0", "encoder.conv1.weight", "conv1d"),
        Entry("layers/conv1d_1/vars/0", "encoder.conv2.weight", "conv1d"),
        Entry("layers/conv1d_1/vars/1", "encoder.conv2.bias"),
        Entry("layers/conv1d_2/vars/0", "encoder.conv3.weight", "conv1d"),
        Entry("layers/conv1d_2/vars/1", "encoder.conv3.bias"),
        Entry("layers/group_normalization/vars/0", "encoder.groupnorm.weight"),
        Entry("layers/group_normalization/vars/1", "encoder.groupnorm.bias"),
        Entry("layers/reversible_embedding/vars/0", "decoder.embed_tokens.weight"),
        Entry("layers/layer_normalization/vars/0", "encoder.layer_norm.weight"),
        Entry("layers/layer_normalization_1/vars/0", "decoder.norm.weight"),
    ),
    stacks=(
        Stack(
            "moonshine_encoder_block",
            (
                *_attention("self_attention_layer", f"{_ENCODER}.self_attn"),
                *_feedforward("feedforward", f"{_ENCODER}.mlp"),
                _norm("self_attention_layer_norm", f"{_ENCODER}.input_layernorm"),
                _norm("feedforward_layer_norm", f"{_ENCODER}.post_attention_layernorm"),
            ),
            count_key="encoder_num_layers",
            heads_key="encoder_num_heads",
        ),
        Stack(
            "moonshine_decoder_block",
            (
                *_attention("self_attention", f"{_DECODER}.self_attn"),
                *_attention("cross_attention", f"{_DECODER}.encoder_attn"),
                *_feedforward("ff", f"{_DECODER}.mlp"),
                _norm("norm1", f"{_DECODER}.input_layernorm"),
                _norm("norm2", f"{_DECODER}.post_attention_layernorm"),
                _norm("norm3", f"{_DECODER}.final_layernorm"),
            ),
            count_key="decoder_num_layers",
            heads_key="decoder_num_heads",
        ),
    ),
    config=_to_transformers,
    tasks={"MoonshineAudioToText": "MoonshineForConditionalGeneration"},
    generates=True,
    variant=_rotary_tables,
    layers_key="encoder_num_layers",
    writing=Writing(
        "keras_hub.src.models.moonshine",
        _to_keras,
        ("AudioToText",),
        files={"MoonshineBackbone": "moonshine_backbone", "MoonshineAudioToText": "moonshine_audio_to_text"},
    ),
)
