"""FNet: ``FNetBackbone`` <-> ``FNetModel``, ``FNetTextClassifier`` <-> ``FNetForSequenceClassification``.

Fourier mixing has no weights (each block's only tensors are its norms and feed-forward); neither library takes a
padding mask, so padding mixes into every token alike on both sides.  The pooler is the backbone's ``pooled_dense``.
"""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require, text_classifier

_EPSILON = 1e-12  # KerasHub's FNet layer norms


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "fnet",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",  # KerasHub's FNet feed-forward: the tanh form of gelu
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": c.get("num_segments", 4),
        "layer_norm_eps": _EPSILON,
        "use_tpu_fourier_optimizations": False,
        "pad_token_id": 3,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", "gelu_new", "KerasHub's FNet feed-forward computes the tanh form of gelu"),
            ("layer_norm_eps", _EPSILON, "KerasHub's FNet layer norms use 1e-12"),
        ),
    )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "num_segments": c.get("type_vocab_size", 4),
    }


def _notes(c: Config) -> list[str]:
    if not c.get("use_tpu_fourier_optimizations"):
        return []
    return [
        "use_tpu_fourier_optimizations: transformers mixes by DFT matrix products, KerasHub by an FFT (the same "
        "transform, rounded differently)"
    ]


_WB = ((0, "weight"), (1, "bias"))
_STEM = "encoder.layer.{i}"
FNET = Family(
    backbone="FNetBackbone",
    model_type="fnet",
    base_class="FNetModel",
    base_prefix="fnet",
    layer="f_net_encoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry("layers/position_embedding/vars/0", "embeddings.position_embeddings.weight"),
        Entry("layers/embedding/vars/0", "embeddings.token_type_embeddings.weight"),
        *(Entry(f"layers/layer_normalization/vars/{v}", f"embeddings.LayerNorm.{p}") for v, p in _WB),
        Entry("layers/dense/vars/0", "embeddings.projection.weight", "dense"),
        Entry("layers/dense/vars/1", "embeddings.projection.bias"),
        Entry("layers/dense_1/vars/0", "pooler.dense.weight", "dense"),
        Entry("layers/dense_1/vars/1", "pooler.dense.bias"),
        *(Entry(f"_mixing_layer_norm/vars/{v}", f"{_STEM}.fourier.output.LayerNorm.{p}") for v, p in _WB),
        Entry("_intermediate_dense/vars/0", f"{_STEM}.intermediate.dense.weight", "dense"),
        Entry("_intermediate_dense/vars/1", f"{_STEM}.intermediate.dense.bias"),
        Entry("_output_dense/vars/0", f"{_STEM}.output.dense.weight", "dense"),
        Entry("_output_dense/vars/1", f"{_STEM}.output.dense.bias"),
        *(Entry(f"_output_layer_norm/vars/{v}", f"{_STEM}.output.LayerNorm.{p}") for v, p in _WB),
    ),
    config=_to_transformers,
    tasks={"FNetTextClassifier": "FNetForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.f_net",
        _to_keras,
        ("MaskedLM", "TextClassifier"),
        task_configs={"FNetTextClassifier": text_classifier},
        notes=_notes,
        files={"FNetBackbone": "f_net_backbone"},
    ),
)
