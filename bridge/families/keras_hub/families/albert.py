"""ALBERT: ``AlbertBackbone`` <-> ``AlbertModel``, ``AlbertTextClassifier`` <-> ``AlbertForSequenceClassification``.

The embeddings are ``embedding_dim`` wide and projected to the hidden size (transformers'
``encoder.embedding_hidden_mapping_in``); the stored layers are the groups, each shared by ``num_layers /
num_groups`` of the computed ones.  Every released ALBERT has one layer per group (``inner_group_num`` 1), the only
shape written: KerasHub's ``transformer_encoder_<g>`` is transformers' ``albert_layer_groups.<g>.albert_layers.0``.
"""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    bert_embeddings,
    refuse,
    require,
    text_classifier,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    if c.get("num_inner_repetitions", 1) != 1:
        raise refuse(c, f"num_inner_repetitions {c['num_inner_repetitions']}", "one layer per group is converted")
    return {
        "model_type": "albert",
        "vocab_size": c["vocabulary_size"],
        "embedding_size": c["embedding_dim"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_hidden_groups": c.get("num_groups", 1),
        "inner_group_num": 1,
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",  # KerasHub ALBERT uses the tanh approximation (gelu_approximate)
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": c.get("num_segments", 2),
        "hidden_dropout_prob": c.get("dropout", 0.0),
        "attention_probs_dropout_prob": c.get("dropout", 0.0),
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }


def _to_keras(c: Config) -> Config:
    checks = (
        ("position_embedding_type", "absolute", "KerasHub ALBERT has absolute position embeddings"),
        ("hidden_act", "gelu_new", "KerasHub ALBERT computes the tanh form of gelu (gelu_new)"),
        ("layer_norm_eps", 1e-12, "KerasHub ALBERT's layer norms use 1e-12"),
        ("inner_group_num", 1, "one layer per group is written (as every released ALBERT has)"),
    )
    require(c, checks)
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "embedding_dim": c["embedding_size"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "num_groups": c.get("num_hidden_groups", 1),
        "num_inner_repetitions": 1,
        "dropout": c.get("attention_probs_dropout_prob", 0.0),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "num_segments": c.get("type_vocab_size", 2),
    }


def _layer() -> list[Entry]:
    attn = "_self_attention_layer"
    stem = "encoder.albert_layer_groups.{i}.albert_layers.0"
    out: list[Entry] = []
    for k in ("query", "key", "value"):
        out.append(Entry(f"{attn}/{k}_dense/vars/0", f"{stem}.attention.{k}.weight", "heads_in"))
        out.append(Entry(f"{attn}/{k}_dense/vars/1", f"{stem}.attention.{k}.bias", "heads_bias"))
    out.append(Entry(f"{attn}/output_dense/vars/0", f"{stem}.attention.dense.weight", "heads_out"))
    out.append(Entry(f"{attn}/output_dense/vars/1", f"{stem}.attention.dense.bias"))
    for source, target in (
        (f"{attn}_norm", "attention.LayerNorm"),
        ("_feedforward_layer_norm", "full_layer_layer_norm"),
    ):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    for source, target in (("_feedforward_intermediate_dense", "ffn"), ("_feedforward_output_dense", "ffn_output")):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight", "dense"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    return out


ALBERT = Family(
    backbone="AlbertBackbone",
    model_type="albert",
    base_class="AlbertModel",
    base_prefix="albert",
    layer="transformer_encoder",
    entries=(
        *bert_embeddings(),
        Entry("layers/dense/vars/0", "encoder.embedding_hidden_mapping_in.weight", "dense"),
        Entry("layers/dense/vars/1", "encoder.embedding_hidden_mapping_in.bias"),
        Entry("layers/dense_1/vars/0", "pooler.weight", "dense"),
        Entry("layers/dense_1/vars/1", "pooler.bias"),
        *_layer(),
    ),
    layers_key="num_groups",
    config=_to_transformers,
    tokenizer="AlbertTokenizer",
    vocabulary="sentencepiece",
    tasks={"AlbertTextClassifier": "AlbertForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.albert",
        _to_keras,
        ("MaskedLM", "TextClassifier"),
        task_configs={"AlbertTextClassifier": text_classifier},
        tokenizer="AlbertTokenizer",
    ),
    # One stored layer per group, computed by every layer of its group in both libraries: a Keras LoRA on group g's
    # layer is PEFT's on albert_layer_groups.g (shared the same way), so both convert exactly.  Three embedding
    # tables, their norm and the projection come first.
    lora=transformer_encoder_lora(
        5,
        "encoder.albert_layer_groups.{i}.albert_layers.0.",
        {
            "query": "attention.query",
            "key": "attention.key",
            "value": "attention.value",
            "output": "attention.dense",
            "ffn_in": "ffn",
            "ffn_out": "ffn_output",
        },
        ("num_hidden_groups", "num_attention_heads", "num_attention_heads"),
    ),
)
