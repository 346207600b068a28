"""DistilBERT: ``DistilBertBackbone`` <-> ``DistilBertModel``, ``DistilBertTextClassifier`` <->
``DistilBertForSequenceClassification``."""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    refuse,
    text_classifier,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "distilbert",
        "vocab_size": c["vocabulary_size"],
        "dim": c["hidden_dim"],
        "n_layers": c["num_layers"],
        "n_heads": c["num_heads"],
        "hidden_dim": c["intermediate_dim"],
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "activation": "gelu",
        "dropout": c.get("dropout", 0.1),
        "attention_dropout": c.get("dropout", 0.1),
        "sinusoidal_pos_embds": False,
        "pad_token_id": 0,
    }


def _to_keras(c: Config) -> Config:
    if c.get("activation", "gelu") != "gelu":
        raise refuse(c, f"activation {c['activation']}", "KerasHub DistilBERT's feed-forward uses gelu")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["n_layers"],
        "num_heads": c["n_heads"],
        "hidden_dim": c["dim"],
        "intermediate_dim": c["hidden_dim"],
        "dropout": c.get("dropout", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
    }


def _classifier(c: Config) -> Config:
    """``DistilBertTextClassifier``: its ``pre_classifier`` is ``dim`` wide, its dropout ``seq_classif_dropout``."""
    return text_classifier(c) | {"hidden_dim": c["dim"], "dropout": c.get("seq_classif_dropout", 0.2)}


def _layer(stem: str) -> list[Entry]:
    """A KerasHub ``TransformerEncoder`` layer over DistilBERT's ``transformer.layer.{i}`` modules."""
    attn = "_self_attention_layer"
    names = {"query": "q_lin", "key": "k_lin", "value": "v_lin"}
    out: list[Entry] = []
    for k, name in names.items():
        out.append(Entry(f"{attn}/{k}_dense/vars/0", f"{stem}.attention.{name}.weight", "heads_in"))
        out.append(Entry(f"{attn}/{k}_dense/vars/1", f"{stem}.attention.{name}.bias", "heads_bias"))
    out.append(Entry(f"{attn}/output_dense/vars/0", f"{stem}.attention.out_lin.weight", "heads_out"))
    out.append(Entry(f"{attn}/output_dense/vars/1", f"{stem}.attention.out_lin.bias"))
    for source, target in ((f"{attn}_norm", "sa_layer_norm"), ("_feedforward_layer_norm", "output_layer_norm")):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    for source, target in (("_feedforward_intermediate_dense", "ffn.lin1"), ("_feedforward_output_dense", "ffn.lin2")):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight", "dense"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    return out


DISTILBERT = Family(
    backbone="DistilBertBackbone",
    model_type="distilbert",
    base_class="DistilBertModel",
    base_prefix="distilbert",
    layer="transformer_encoder",
    entries=(
        Entry("layers/token_and_position_embedding/token_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry("layers/token_and_position_embedding/position_embedding/vars/0", "embeddings.position_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
        *_layer("transformer.layer.{i}"),
    ),
    config=_to_transformers,
    tokenizer="DistilBertTokenizer",
    vocabulary="wordpiece",
    tasks={"DistilBertTextClassifier": "DistilBertForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "pre_classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "pre_classifier.bias"),
        Entry("layers/dense_1/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense_1/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.distil_bert",
        _to_keras,
        ("MaskedLM", "TextClassifier"),
        task_configs={"DistilBertTextClassifier": _classifier},
        tokenizer="DistilBertTokenizer",
    ),
    lora=transformer_encoder_lora(
        4,
        "transformer.layer.{i}.",
        {
            "query": "attention.q_lin",
            "key": "attention.k_lin",
            "value": "attention.v_lin",
            "output": "attention.out_lin",
            "ffn_in": "ffn.lin1",
            "ffn_out": "ffn.lin2",
        },
        ("n_layers", "n_heads", "n_heads"),
    ),
)
