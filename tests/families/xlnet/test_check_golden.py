"""`bridge check` on zihangdai/xlnet TF1 checkpoints (TF Saver, AdamWeightDecay slots): the plan, explained."""

from __future__ import annotations

import pytest

PRETRAIN = "tests/fixtures/xlnet-tf1/pretrain"
REGRESSION = "tests/fixtures/xlnet-tf1/regression"


def test_pretraining_checkpoint_default_target(golden):
    out = golden("check_xlnet_pretrain_default.txt", ["check", PRETRAIN, "--to", "pytorch"], 0)
    assert "target: transformers XLNetLMHeadModel" in out
    assert "lm_loss.weight = transformer.word_embedding.weight" in out
    assert "[row(1)]" in out and "optimizer state (adam_m)" in out and "global_step" in out


@pytest.mark.parametrize("target", ["XLNetForSequenceClassification", "XLNetModel"])
def test_fine_tuned_checkpoint(golden, target):
    out = golden(
        f"check_xlnet_regression_{target}.txt", ["check", REGRESSION, "--to", "pytorch", "--target", target], 0
    )
    assert "verdict: OK" in out
    if target == "XLNetModel":
        assert "sequence summary (sequnece_summary) dropped" in out
    else:
        assert "transformer.mask_emb [1, 1, 8]: expected: mask_emb" in out
