"""Text encoders of transformers' TF layout (BERT-like stacks and their task heads)."""

from __future__ import annotations

from bridge.rules.hf_tf_families import Family

FAMILIES = (
    Family(
        "distilbert",
        "distilbert",
        ("DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
         "DistilBertForTokenClassification", "DistilBertForQuestionAnswering", "DistilBertForMultipleChoice"),
        heads=("pre_classifier", "classifier", "qa_outputs", "vocab_transform", "vocab_layer_norm", "vocab_projector"),
    ),
    Family(
        "roberta",
        "roberta",
        ("RobertaModel", "RobertaForMaskedLM", "RobertaForCausalLM", "RobertaForSequenceClassification",
         "RobertaForTokenClassification", "RobertaForQuestionAnswering", "RobertaForMultipleChoice"),
        heads=("lm_head", "classifier", "qa_outputs"),
    ),
)  # fmt: skip
