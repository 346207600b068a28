"""ESM-2: ``ESMBackbone`` (``ESM2Backbone``) <-> ``EsmModel``, rotary position embeddings.

transformers 5 saves each block's ``LayerNorm`` as ``gamma``/``beta`` and its rotary inverse frequencies (one
buffer, which KerasHub recomputes) under a ``*`` name; it reads both spellings.  ``EsmModel``'s pooler and contact
head are parts KerasHub has no counterpart for.  Absolute position tables (ESM-1) are not this family: KerasHub
reads row ``pad_token_id + t`` for token ``t`` where transformers reads row ``pad_token_id + 1 + t``.
"""

from __future__ import annotations

from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Computed, Config, Entry, Family, Writing, refuse, require

_THETA = 10000  # KerasHub's ``max_wavelength`` default, transformers' ``rope_theta``


def _to_transformers(c: Config) -> Config:
    checks = (
        ("position_embedding_type", "rotary", "transformers reads an absolute table one row later than KerasHub"),
        ("activation", "gelu", "EsmModel's feed-forward computes the exact gelu"),
        ("use_bias", True, "EsmModel's dense layers have biases"),
    )
    for key, want, why in checks:
        if c.get(key, want) != want:
            raise UsageError(
                "This ESMBackbone has no transformers EsmModel counterpart",
                detail=f"{key} {c[key]}",
                hint=why,
            )
    return {
        "model_type": "esm",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "attention_probs_dropout_prob": c.get("dropout", 0.1),
        "max_position_embeddings": c.get("max_sequence_length", 1024),
        "rope_theta": float(c.get("max_wavelength", _THETA)),
        "layer_norm_eps": c.get("layer_norm_eps", 1e-12),
        "position_embedding_type": "rotary",
        "emb_layer_norm_before": bool(c.get("use_pre_layer_norm", False)),
        "token_dropout": False,  # KerasHub does not rescale the embeddings
        "pad_token_id": c.get("pad_token_id", 0),
    }


def _to_keras(c: Config) -> Config:
    position = c.get("position_embedding_type", "absolute")
    if position != "rotary":
        raise refuse(c, f"position_embedding_type {position}", "KerasHub reads an absolute table one row earlier")
    require(
        c,
        (
            ("is_folding_model", False, "ESMFold is not an ESMBackbone"),
            ("is_decoder", False, "ESMBackbone is an encoder"),
            ("add_cross_attention", False, "ESMBackbone has no cross-attention"),
        ),
        unset_ok=True,
    )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_wavelength": c.get("rope_theta", _THETA),
        "use_bias": True,
        "activation": "gelu",
        "layer_norm_eps": c.get("layer_norm_eps", 1e-12),
        "use_pre_layer_norm": bool(c.get("emb_layer_norm_before")),
        "position_embedding_type": "rotary",
        "max_sequence_length": c.get("max_position_embeddings", 1026),
        "pad_token_id": c.get("pad_token_id") or 0,
    }


def _notes(c: Config) -> list[str]:
    if not c.get("token_dropout"):
        return []
    return [
        "token_dropout: transformers scales the embeddings by 0.88 / (1 - the share of <mask> tokens) and zeroes "
        "<mask> tokens' embeddings; KerasHub's ESMBackbone does neither, so its forward differs from the source's "
        "(the weights are written exactly)"
    ]


def _inverse_frequencies(keras: Config, shape: tuple[int, ...]) -> Any:
    """transformers' rotary ``inv_freq`` of this config, as its ``EsmRotaryEmbedding`` computes it (float32)."""
    import numpy as np

    dim = 2 * shape[0]
    theta = float(keras.get("max_wavelength", _THETA))
    return (1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))).astype(np.float32)


def _embedding_norm(keras: Config) -> tuple[Entry, ...]:
    """The embeddings' layer norm where the config has it, called first (so the output norm is then ``_1``)."""
    final = "encoder.emb_layer_norm_after"
    if not keras.get("use_pre_layer_norm", False):
        return tuple(Entry(f"layers/layer_normalization/vars/{v}", f"{final}.{p}") for v, p in _WB)
    return (
        *(Entry(f"layers/layer_normalization/vars/{v}", f"embeddings.layer_norm.{p}") for v, p in _WB),
        *(Entry(f"layers/layer_normalization_1/vars/{v}", f"{final}.{p}") for v, p in _WB),
    )


_WB = ((0, "weight"), (1, "bias"))
_STEM = "encoder.layer.{i}"
_ATTENTION = (("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"))
ESM = Family(
    backbone="ESMBackbone",
    model_type="esm",
    base_class="EsmModel",
    base_prefix="esm",
    layer="esm_encoder",
    entries=(
        Entry("layers/embedding/vars/0", "embeddings.word_embeddings.weight"),
        *(
            Entry(f"attention_layer/{k}_dense/vars/{v}", f"{_STEM}.{name}.{p}", "dense" if v == 0 else "same")
            for k, name in (*_ATTENTION, ("o", "attention.output.dense"))
            for v, p in _WB
        ),
        *(Entry(f"attention_norm/vars/{v}", f"{_STEM}.attention.LayerNorm.{p}") for v, p in _WB),
        *(
            Entry(f"feedforward_{k}_dense/vars/{v}", f"{_STEM}.{name}.dense.{p}", "dense" if v == 0 else "same")
            for k, name in (("intermediate", "intermediate"), ("output", "output"))
            for v, p in _WB
        ),
        *(Entry(f"feedforward_norm/vars/{v}", f"{_STEM}.LayerNorm.{p}") for v, p in _WB),
    ),
    config=_to_transformers,
    writing=Writing("keras_hub.src.models.esm", _to_keras, ("MaskedLM", "TextClassifier"), notes=_notes),
    variant=_embedding_norm,
    saved=((r"\.LayerNorm\.weight$", ".LayerNorm.gamma"), (r"\.LayerNorm\.bias$", ".LayerNorm.beta")),
    computed=(
        Computed("rotary_embeddings.inv_freq", _inverse_frequencies, "rotary inverse frequencies KerasHub computes"),
    ),
    unkept=(
        (r"pooler\.dense\.(weight|bias)", "pooler: EsmModel's pooled output, ESMBackbone has none"),
        (r"contact_head\.regression\.(weight|bias)", "contact head: KerasHub has no contact prediction"),
    ),
)
