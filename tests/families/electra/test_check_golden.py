"""`bridge check` on a google-research/electra pretraining checkpoint (TF Saver;
tests/families/electra/make_fixtures.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("target", ["ElectraForPreTraining", "ElectraModel", "ElectraForMaskedLM"])
def test_electra_pretraining_checkpoint(golden, target):
    args = ["check", "tests/fixtures/electra-tf1", "--to", "pytorch", "--target", target]
    out = golden(f"check_electra_{target}.txt", args, 0)
    assert "rules: electra" in out and "verdict: OK" in out
    network = "generator" if target == "ElectraForMaskedLM" else "discriminator"
    assert f"the target takes the {network}" in out
