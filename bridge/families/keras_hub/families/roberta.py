"""RoBERTa and XLM-RoBERTa: ``RobertaBackbone`` / ``XLMRobertaBackbone`` <-> ``RobertaModel`` /
``XLMRobertaModel``, their text classifiers <-> ``*ForSequenceClassification``.

transformers' position table has two leading rows more than KerasHub's (positions start after the padding id 1, so
real tokens read rows 2 on; rows 0-1 are read only at padding positions) and a one-row token-type table KerasHub
lacks (RoBERTa has no segments; converted checkpoints hold zeros there).
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.families.keras_hub.families.bert import BERT_LORA_NAMES, MHA_COUNTS
from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    Writing,
    bert_layer,
    require,
    text_classifier,
    transformer_encoder_lora,
)

_OFFSET = 2  # transformers' position rows ahead of the first real token: padding_idx (1) + 1


def _to_transformers(model_type: str) -> Callable[[Config], Config]:
    def convert(c: Config) -> Config:
        return {
            "model_type": model_type,
            "vocab_size": c["vocabulary_size"],
            "hidden_size": c["hidden_dim"],
            "num_hidden_layers": c["num_layers"],
            "num_attention_heads": c["num_heads"],
            "intermediate_size": c["intermediate_dim"],
            "hidden_act": "gelu",
            "max_position_embeddings": c.get("max_sequence_length", 512) + _OFFSET,
            "type_vocab_size": 1,
            "hidden_dropout_prob": c.get("dropout", 0.1),
            "attention_probs_dropout_prob": c.get("dropout", 0.1),
            "layer_norm_eps": 1e-5,
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
        }

    return convert


def _to_keras(c: Config) -> Config:
    checks = (
        ("position_embedding_type", "absolute", "KerasHub RoBERTa has absolute position embeddings"),
        ("hidden_act", "gelu", "KerasHub RoBERTa's feed-forward uses exact gelu"),
        ("layer_norm_eps", 1e-5, "KerasHub RoBERTa's layer norms use 1e-5"),
        ("type_vocab_size", 1, "KerasHub RoBERTa has no token types"),
        ("pad_token_id", 1, "KerasHub RoBERTa's positions start two rows in (padding id 1)"),
    )
    require(c, checks)
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 514) - _OFFSET,
    }


def _classifier(c: Config) -> Config:
    """``*TextClassifier``: a tanh ``pooled_dense`` of ``hidden_size`` then the logits (transformers'
    ``classifier.dense`` and ``classifier.out_proj``)."""
    return text_classifier(c) | {"hidden_dim": c["hidden_size"]}


def _notes(c: Config) -> list[str]:
    return [
        f"position rows 0-{_OFFSET - 1} (read only at padding positions) are not kept by KerasHub: written back "
        "as zeros"
    ]


def _entries() -> tuple[Entry, ...]:
    out = [
        Entry("layers/token_and_position_embedding/token_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry(
            "layers/token_and_position_embedding/position_embedding/vars/0",
            "embeddings.position_embeddings.weight",
            f"rows+{_OFFSET}",
        ),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
    ]
    out.extend(bert_layer())
    return tuple(out)


_TASK_ENTRIES = (
    Entry("layers/dense/vars/0", "classifier.dense.weight", "dense"),
    Entry("layers/dense/vars/1", "classifier.dense.bias"),
    Entry("layers/dense_1/vars/0", "classifier.out_proj.weight", "dense"),
    Entry("layers/dense_1/vars/1", "classifier.out_proj.bias"),
)
_TOKEN_TYPES = (("embeddings.token_type_embeddings.weight", "token types: KerasHub RoBERTa adds none (zeros)"),)


def _family(prefix: str, model_type: str, module: str, transformers: str, tokenizer: str) -> Family:
    return Family(
        backbone=f"{prefix}Backbone",
        model_type=model_type,
        base_class=f"{transformers}Model",
        base_prefix="roberta",
        layer="transformer_encoder",
        entries=_entries(),
        config=_to_transformers(model_type),
        tasks={f"{prefix}TextClassifier": f"{transformers}ForSequenceClassification"},
        task_entries=_TASK_ENTRIES,
        tokenizer=f"{transformers}Tokenizer" if tokenizer else "",
        vocabulary=tokenizer,
        writing=Writing(
            f"keras_hub.src.models.{module}",
            _to_keras,
            ("MaskedLM", "TextClassifier"),
            task_configs={f"{prefix}TextClassifier": _classifier},
            notes=_notes,
            tokenizer=f"{prefix}Tokenizer" if tokenizer else "",
        ),
        zeros=_TOKEN_TYPES,
        lora=transformer_encoder_lora(4, "encoder.layer.{i}.", BERT_LORA_NAMES, MHA_COUNTS),
        unkept=(
            (
                r"pooler\.dense\.(weight|bias)",
                f"pooler: {transformers}Model's pooled output, {prefix}Backbone has none",
            ),
        ),
    )


ROBERTA = _family("Roberta", "roberta", "roberta", "Roberta", "bpe")
# XLM-R's SentencePiece ids are shifted fairseq's way by both libraries' tokenizers alike.
XLM_ROBERTA = _family("XLMRoberta", "xlm-roberta", "xlm_roberta", "XLMRoberta", "sentencepiece_bpe")
