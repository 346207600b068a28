"""BERT: ``BertBackbone`` <-> ``BertModel``, ``BertTextClassifier`` <-> ``BertForSequenceClassification``."""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    bert_embeddings,
    bert_layer,
    refuse,
    text_classifier,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "bert",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",  # KerasHub BERT uses the tanh approximation (gelu_approximate)
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": c.get("num_segments", 2),
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "attention_probs_dropout_prob": c.get("dropout", 0.1),
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }


def _to_keras(c: Config) -> Config:
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise refuse(c, f"position_embedding_type {c['position_embedding_type']}", "KerasHub BERT has absolute ones")
    if float(c.get("layer_norm_eps", 1e-12)) != 1e-12:
        raise refuse(c, f"layer_norm_eps {c['layer_norm_eps']}", "KerasHub BERT's layer norms use 1e-12")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "num_segments": c.get("type_vocab_size", 2),
    }


def _notes(c: Config) -> list[str]:
    act = c.get("hidden_act")
    if act in ("gelu_new", "gelu_pytorch_tanh", None):
        return []
    return [
        f"hidden_act {act}: KerasHub BERT computes the tanh form of gelu (gelu_new), about 1e-3 apart in a "
        "forward pass; the values are written exactly"
    ]


# transformers' modules of a BERT-shaped encoder block (RoBERTa's and ELECTRA's are named alike)
BERT_LORA_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "output": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}
MHA_COUNTS = ("num_hidden_layers", "num_attention_heads", "num_attention_heads")
BERT = Family(
    backbone="BertBackbone",
    model_type="bert",
    base_class="BertModel",
    base_prefix="bert",
    layer="transformer_encoder",
    entries=(
        *bert_embeddings(),
        Entry("layers/dense/vars/0", "pooler.dense.weight", "dense"),
        Entry("layers/dense/vars/1", "pooler.dense.bias"),
        *bert_layer(),
    ),
    config=_to_transformers,
    tokenizer="BertTokenizer",
    vocabulary="wordpiece",
    tasks={"BertTextClassifier": "BertForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.bert",
        _to_keras,
        ("MaskedLM", "TextClassifier", "TextEmbedder"),
        task_configs={"BertTextClassifier": text_classifier},
        notes=_notes,
        tokenizer="BertTokenizer",
    ),
    lora=transformer_encoder_lora(4, "encoder.layer.{i}.", BERT_LORA_NAMES, MHA_COUNTS),
)
