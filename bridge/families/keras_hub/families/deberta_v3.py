"""DeBERTa-v3: ``DebertaV3Backbone`` <-> ``DebertaV2Model`` (DeBERTa-v3's transformers class),
``DebertaV3TextClassifier`` <-> ``DebertaV2ForSequenceClassification``.

KerasHub's backbone is DeBERTa-v3's one shape: no absolute positions and no token types, relative attention over
``2 * bucket_size`` log buckets (transformers' ``position_buckets``) in both directions (``c2p`` and ``p2c``), one
relative table normed once and shared by every layer's query and key projections (``share_att_key``), exact gelu,
layer norms of 1e-7.  A transformers config of another shape (DeBERTa-v2's ``conv_kernel_size``, absolute positions)
is refused by name.
"""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    bert_layer_tail,
    refuse,
    require,
    text_classifier,
    transformer_encoder_lora,
)


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "deberta-v2",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "attention_probs_dropout_prob": c.get("dropout", 0.1),
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": 0,
        "layer_norm_eps": 1e-7,
        "relative_attention": True,
        "max_relative_positions": -1,
        "position_buckets": c.get("bucket_size", 256),
        "position_biased_input": False,
        "pos_att_type": ["p2c", "c2p"],
        "share_att_key": True,
        "norm_rel_ebd": "layer_norm",
        "pad_token_id": 0,
        "pooler_hidden_act": "gelu",
        "pooler_dropout": 0,
    }


def _to_keras(c: Config) -> Config:
    checks = (
        ("relative_attention", True, "KerasHub DeBERTa-v3 has relative attention"),
        ("position_biased_input", False, "KerasHub DeBERTa-v3 adds no absolute positions"),
        ("type_vocab_size", 0, "KerasHub DeBERTa-v3 has no token types"),
        ("share_att_key", True, "KerasHub DeBERTa-v3 projects the relative table with the layer's query and key"),
        ("norm_rel_ebd", "layer_norm", "KerasHub DeBERTa-v3 norms its relative table"),
        ("hidden_act", "gelu", "KerasHub DeBERTa-v3's feed-forward uses exact gelu"),
        ("layer_norm_eps", 1e-7, "KerasHub DeBERTa-v3's layer norms use 1e-7"),
        ("conv_kernel_size", 0, "KerasHub DeBERTa-v3 has no convolution layer (DeBERTa-v2's)"),
    )
    require(c, checks, unset_ok=True)
    if sorted(c.get("pos_att_type") or []) != ["c2p", "p2c"]:
        raise refuse(c, f"pos_att_type {c.get('pos_att_type')}", "KerasHub DeBERTa-v3 attends c2p and p2c")
    max_relative = c.get("max_relative_positions", -1)
    if max_relative not in (-1, c.get("max_position_embeddings", 512)) or (c.get("position_buckets") or 0) <= 0:
        raise refuse(c, "max_relative_positions / position_buckets", "KerasHub buckets max_position_embeddings")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "bucket_size": c["position_buckets"],
    }


def _classifier(c: Config) -> Config:
    """``DebertaV3TextClassifier``: a gelu ``pooled_dense`` (transformers' ``pooler.dense``) then the logits."""
    if c.get("pooler_hidden_act", "gelu") != "gelu":
        raise refuse(c, f"pooler_hidden_act {c['pooler_hidden_act']}", "KerasHub's pooled Dense uses gelu")
    return text_classifier(c) | {"hidden_dim": c.get("pooler_hidden_size") or c["hidden_size"]}


def _layer() -> list[Entry]:
    attn = "_self_attention_layer"
    stem = "encoder.layer.{i}"
    out: list[Entry] = []
    for k in ("query", "key", "value"):
        out.append(Entry(f"{attn}/_{k}_dense/vars/0", f"{stem}.attention.self.{k}_proj.weight", "heads_in"))
        out.append(Entry(f"{attn}/_{k}_dense/vars/1", f"{stem}.attention.self.{k}_proj.bias", "heads_bias"))
    out.append(Entry(f"{attn}/_output_dense/vars/0", f"{stem}.attention.output.dense.weight", "dense"))
    out.append(Entry(f"{attn}/_output_dense/vars/1", f"{stem}.attention.output.dense.bias"))
    out.extend(bert_layer_tail(stem))
    return out


DEBERTA_V3 = Family(
    backbone="DebertaV3Backbone",
    model_type="deberta-v2",
    base_class="DebertaV2Model",
    base_prefix="deberta",
    layer="disentangled_attention_encoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
        Entry("layers/relative_embedding/vars/0", "encoder.rel_embeddings.weight"),
        Entry("layers/relative_embedding/layer_norm/vars/0", "encoder.LayerNorm.weight"),
        Entry("layers/relative_embedding/layer_norm/vars/1", "encoder.LayerNorm.bias"),
        *_layer(),
    ),
    config=_to_transformers,
    tasks={"DebertaV3TextClassifier": "DebertaV2ForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "pooler.dense.weight", "dense"),
        Entry("layers/dense/vars/1", "pooler.dense.bias"),
        Entry("layers/dense_1/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense_1/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.deberta_v3",
        _to_keras,
        ("MaskedLM", "TextClassifier"),
        task_configs={"DebertaV3TextClassifier": _classifier},
        tokenizer="DebertaV3Tokenizer",
    ),
    tokenizer="DebertaV2Tokenizer",
    vocabulary="spm",
    # the token table, its norm, the relative embeddings and their norm, then the blocks (whose query and key
    # layers project the relative embeddings too, in both libraries)
    lora=transformer_encoder_lora(
        4,
        "encoder.layer.{i}.",
        {
            "query": "attention.self.query_proj",
            "key": "attention.self.key_proj",
            "value": "attention.self.value_proj",
            "output": "attention.output.dense",
            "ffn_in": "intermediate.dense",
            "ffn_out": "output.dense",
        },
        ("num_hidden_layers", "num_attention_heads", "num_attention_heads"),
    ),
)
