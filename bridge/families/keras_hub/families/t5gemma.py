"""T5Gemma: ``T5GemmaBackbone`` <-> ``T5GemmaModel``, ``T5GemmaSeq2SeqLM`` <-> ``T5GemmaForConditionalGeneration``.
Gemma 2 blocks (norms before and after attention and feed-forward, soft-capped attention logits, sliding and global
layers) in an encoder and a decoder of their own sizes, the decoder's blocks adding cross-attention; encoder and
decoder have token tables of their own, the decoder's reused for the logits when tied.  transformers nests the two
stacks' configs (``encoder`` / ``decoder``); KerasHub keeps one value of the keys both stacks share (the decoder's,
as its own importer reads them), so a model whose stacks differ in those is refused.  KerasHub's sliding layers
differ from transformers' past the window: its encoder does not slide at all (transformers: distance at most the
window) and its decoder sees one token more (distance at most the window; transformers: below it)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, refuse, require

_ACTIVATION = ("gelu_pytorch_tanh", "gelu_approximate")  # transformers' name, KerasHub's, of the tanh gelu
# module config keys KerasHub holds once for both stacks
_SHARED = (
    "rms_norm_eps",
    "query_pre_attn_scalar",
    "attention_bias",
    "hidden_activation",
    "sliding_window",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "rope_parameters",
    "dropout_rate",
    "attention_dropout",
    "vocab_size",
)
_TIED = "layers/reversible_embedding/vars/1"


def _module(c: Config, side: str, is_decoder: bool) -> Config:
    """transformers' ``T5GemmaModuleConfig`` of one stack of a ``T5GemmaBackbone`` config."""
    out = {
        "model_type": "t5_gemma_module",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c[f"{side}_hidden_dim"],
        "intermediate_size": c[f"{side}_intermediate_dim"],
        "num_hidden_layers": c[f"{side}_num_layers"],
        "num_attention_heads": c[f"{side}_num_attention_heads"],
        "num_key_value_heads": c[f"{side}_num_key_value_heads"],
        "head_dim": c[f"{side}_head_dim"],
        "layer_types": list(c[f"{side}_layer_types"]),
        "hidden_activation": _ACTIVATION[0],
        "rms_norm_eps": c.get("rms_norm_eps", 1e-6),
        "query_pre_attn_scalar": c.get("query_pre_attn_scalar", 1.0),
        "attention_bias": False,
        "sliding_window": c.get("sliding_window"),
        "attn_logit_softcapping": c.get("attn_logit_softcapping"),
        "final_logit_softcapping": c.get("final_logit_softcapping"),
        "rope_parameters": {"rope_type": "default", "rope_theta": c.get("rope_max_wavelength", 10000.0)},
        "dropout_rate": c.get("dropout_rate", 0.0),
        "attention_dropout": c.get("attention_dropout", 0.0),
        "initializer_range": c.get("initializer_range", 0.02),
        "is_decoder": is_decoder,
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
    }
    if is_decoder:
        out["cross_attention_hidden_size"] = c.get("cross_attention_hidden_size") or c["encoder_hidden_dim"]
    return out


def _to_transformers(c: Config) -> Config:
    if c.get("attention_bias") or c.get("hidden_activation", _ACTIVATION[1]) != _ACTIVATION[1]:
        raise refuse(
            {"model_type": "T5GemmaBackbone"},
            f"attention_bias {c.get('attention_bias')}, hidden_activation {c.get('hidden_activation')}",
            "Only bias-free attention and the tanh gelu are converted",
        )
    return {
        "model_type": "t5gemma",
        "encoder": _module(c, "encoder", False),
        "decoder": _module(c, "decoder", True),
        "vocab_size": c["vocabulary_size"],
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "is_encoder_decoder": True,
        "dropout_rate": c.get("dropout_rate", 0.0),
        "attention_dropout": c.get("attention_dropout", 0.0),
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "decoder_start_token_id": 2,
    }


def _side(c: Config, side: str) -> Config:
    module = c.get(side)
    if not isinstance(module, dict):
        raise refuse(c, f"{side} missing", "A T5Gemma config nests its encoder's and decoder's configs")
    return module


def _to_keras(c: Config) -> Config:
    enc, dec = _side(c, "encoder"), _side(c, "decoder")
    for key in _SHARED:
        if enc.get(key) != dec.get(key):
            raise refuse(
                c,
                f"encoder {key} {enc.get(key)}, decoder {key} {dec.get(key)}",
                "KerasHub's T5Gemma holds one value of it for both stacks",
            )
    rope = dec.get("rope_parameters") or {"rope_type": "default", "rope_theta": dec.get("rope_theta", 10000.0)}
    require(
        {"model_type": "t5gemma", **dec, "rope_type": rope.get("rope_type", "default")},
        (
            ("attention_bias", False, "KerasHub's T5Gemma attention converts bias-free"),
            ("hidden_activation", _ACTIVATION[0], "KerasHub's T5Gemma feed-forward computes the tanh gelu"),
            ("rope_type", "default", "KerasHub's T5Gemma rotates by the plain rotary base"),
        ),
    )
    cross = dec.get("cross_attention_hidden_size") or enc["hidden_size"]
    if cross != enc["hidden_size"]:
        raise refuse(c, f"cross_attention_hidden_size {cross}", "KerasHub's cross-attention reads the encoder's states")
    return {
        "vocabulary_size": dec["vocab_size"],
        **{
            f"{side}_{keras}": module[key]
            for side, module in (("encoder", enc), ("decoder", dec))
            for keras, key in (
                ("hidden_dim", "hidden_size"),
                ("intermediate_dim", "intermediate_size"),
                ("num_layers", "num_hidden_layers"),
                ("num_attention_heads", "num_attention_heads"),
                ("num_key_value_heads", "num_key_value_heads"),
                ("head_dim", "head_dim"),
                ("layer_types", "layer_types"),
            )
        },
        "dropout_rate": dec.get("dropout_rate", 0.0),
        "rms_norm_eps": dec.get("rms_norm_eps", 1e-6),
        "query_pre_attn_scalar": dec.get("query_pre_attn_scalar", 1.0),
        "attention_bias": False,
        "hidden_activation": _ACTIVATION[1],
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "initializer_range": dec.get("initializer_range", 0.02),
        "attention_dropout": dec.get("attention_dropout", 0.0),
        "sliding_window": dec.get("sliding_window"),
        "cross_attention_hidden_size": cross,
        "attn_logit_softcapping": dec.get("attn_logit_softcapping"),
        "final_logit_softcapping": dec.get("final_logit_softcapping"),
        "rope_max_wavelength": rope.get("rope_theta", 10000.0),
    }


def _notes(c: Config) -> list[str]:
    window = _side(c, "decoder").get("sliding_window")
    return [
        f"KerasHub's T5Gemma computes its sliding layers as transformers does on sequences up to {window} tokens "
        "only: past them its encoder attends to every token and its decoder to one token more"
    ]


def _attention(keras: str, torch: str) -> tuple[Entry, ...]:
    return (
        *(
            Entry(f"{keras}/{k}_dense/vars/0", f"{torch}.{k[0]}_proj.weight", "heads_in")
            for k in ("query", "key", "value")
        ),
        Entry(f"{keras}/output_dense/vars/0", f"{torch}.o_proj.weight", "heads_out"),
    )


def _block(stem: str, norms: tuple[str, ...]) -> tuple[Entry, ...]:
    return (
        *_attention("self_attn", f"{stem}.self_attn"),
        *(Entry(f"mlp/{p}/vars/0", f"{stem}.mlp.{p}.weight", "dense") for p in ("gate_proj", "up_proj", "down_proj")),
        *(Entry(f"{n}/vars/0", f"{stem}.{n}.weight") for n in norms),
    )


_NORMS = (
    "pre_self_attn_layernorm",
    "post_self_attn_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
)
_CROSS_NORMS = ("pre_cross_attn_layernorm", "post_cross_attn_layernorm")

T5GEMMA = Family(
    backbone="T5GemmaBackbone",
    model_type="t5gemma",
    base_class="T5GemmaModel",
    base_prefix="model",
    layer="t5_gemma_encoder_layer",
    entries=(
        Entry("layers/embedding/vars/0", "encoder.embed_tokens.weight"),
        Entry("layers/reversible_embedding/vars/0", "decoder.embed_tokens.weight"),
        Entry(_TIED, "lm_head.out_proj.weight", "dense"),
        Entry("layers/rms_normalization/vars/0", "encoder.norm.weight"),
        Entry("layers/rms_normalization_1/vars/0", "decoder.norm.weight"),
    ),
    stacks=(
        Stack(
            "t5_gemma_encoder_layer",
            _block("encoder.layers.{i}", _NORMS),
            count_key="encoder_num_layers",
            head_dim_key="encoder_head_dim",
        ),
        Stack(
            "t5_gemma_decoder_layer",
            (
                *_block("decoder.layers.{i}", _NORMS + _CROSS_NORMS),
                *_attention("cross_attn", "decoder.layers.{i}.cross_attn"),
            ),
            count_key="decoder_num_layers",
            head_dim_key="decoder_head_dim",
        ),
    ),
    config=_to_transformers,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"T5GemmaSeq2SeqLM": "T5GemmaForConditionalGeneration"},
    layers_key="encoder_num_layers",
    writing=Writing(
        "keras_hub.src.models.t5gemma",
        _to_keras,
        ("Seq2SeqLM",),
        tied_path=_TIED,
        notes=_notes,
        tokenizer="T5GemmaTokenizer",
        files={"T5GemmaSeq2SeqLM": "t5gemma_seq_2_seq_lm", "T5GemmaBackbone": "t5gemma_backbone"},
    ),
)
