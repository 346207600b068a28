"""`bridge check` on google-research/albert checkpoints (TF Saver; tests/families/albert/make_fixtures.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("target", ["AlbertForPreTraining", "AlbertModel", "AlbertForMaskedLM"])
def test_albert_pretraining_checkpoint(golden, target):
    args = ["check", "tests/fixtures/albert-tf1", "--to", "pytorch", "--target", target]
    out = golden(f"check_albert_{target}.txt", args, 0)
    assert "rules: albert" in out and "verdict: OK" in out
    assert "optimizer state (adam_m)" in out and "global_step" in out


def test_albert_hub_classifier(golden):
    out = golden(
        "check_albert_hub_classifier.txt", ["check", "tests/fixtures/albert-hub-classifier-tf1", "--to", "pytorch"], 0
    )
    assert "target: transformers AlbertForSequenceClassification" in out
    assert "module/bert/encoder/transformer/group_{0..1}/inner_group_{0..1}/LayerNorm_1/gamma" in out
