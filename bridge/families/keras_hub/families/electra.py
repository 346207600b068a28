"""ELECTRA (the discriminator): ``ElectraBackbone`` <-> ``ElectraModel``.

KerasHub's backbone projects the embeddings to the hidden size where the two differ (transformers'
``embeddings_project``), which makes its pooled output's Dense ``dense_1`` then, else ``dense``; that pooled Dense
has no tensor in transformers (``ElectraModel`` has no pooler): dropped on the way in, zeros on the way out.
"""

from __future__ import annotations

from bridge.families.keras_hub.families.bert import BERT, BERT_LORA_NAMES, MHA_COUNTS
from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    bert_embeddings,
    require,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "electra",
        "vocab_size": c["vocab_size"],
        "embedding_size": c["embedding_dim"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",  # KerasHub ELECTRA uses the tanh approximation (gelu_approximate)
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": c.get("num_segments", 2),
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "attention_probs_dropout_prob": c.get("dropout", 0.1),
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }


def _to_keras(c: Config) -> Config:
    checks = (
        ("position_embedding_type", "absolute", "KerasHub ELECTRA has absolute position embeddings"),
        ("hidden_act", "gelu_new", "KerasHub ELECTRA computes the tanh form of gelu (gelu_new)"),
        ("layer_norm_eps", 1e-12, "KerasHub ELECTRA's layer norms use 1e-12"),
    )
    require(c, checks)
    return {
        "vocab_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "embedding_dim": c.get("embedding_size") or c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "num_segments": c.get("type_vocab_size", 2),
    }


def _projection_and_pooler(keras: Config) -> tuple[Entry, ...]:
    hidden = int(keras["hidden_dim"])
    projected = keras.get("embedding_dim", hidden) != hidden
    pooler = "layers/dense_1" if projected else "layers/dense"
    out = (
        Entry("layers/dense/vars/0", "embeddings_project.weight", "dense"),
        Entry("layers/dense/vars/1", "embeddings_project.bias"),
    )
    return (
        *(out if projected else ()),
        Entry(f"{pooler}/vars/0", "", shape=(hidden, hidden)),
        Entry(f"{pooler}/vars/1", "", shape=(hidden,)),
    )


ELECTRA = Family(
    backbone="ElectraBackbone",
    model_type="electra",
    base_class="ElectraModel",
    base_prefix="electra",
    layer="transformer_encoder",
    entries=(
        *bert_embeddings(),
        *(e for e in BERT.entries if "{i}" in e.target),  # BERT's encoder layers, named alike
    ),
    variant=_projection_and_pooler,
    config=_to_transformers,
    tokenizer="ElectraTokenizer",
    vocabulary="wordpiece",
    writing=Writing("keras_hub.src.models.electra", _to_keras, (), tokenizer="ElectraTokenizer"),
    # three embedding tables, their norm, the projection where the embeddings are narrower, then the blocks
    lora=transformer_encoder_lora(
        lambda c: 4 + (c.get("embedding_size", c["hidden_size"]) != c["hidden_size"]),
        "encoder.layer.{i}.",
        BERT_LORA_NAMES,
        MHA_COUNTS,
    ),
)
