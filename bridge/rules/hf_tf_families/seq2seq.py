"""Decoders and encoder-decoders of transformers' TF layout."""

from __future__ import annotations

from bridge.rules.hf_tf_families import Family

FAMILIES = (
    Family(
        "gpt2",
        "transformer",
        ("GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification"),
        heads=("score",),
        # Conv1D: the weight is [in, out] on both sides (no transpose); the bias is stored [1, out]
        rules=((r"(c_attn|c_proj|c_fc)/bias", "{}.bias", "squeeze(0)"),),
    ),
)  # fmt: skip
