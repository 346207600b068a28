"""Tied weights: a checkpoint whose values contradict its config's tying is flagged (exit 1)."""

from __future__ import annotations

import json

import bridge

from .conftest import REPO

UNTIED = "tests/fixtures/bert-untied/pytorch_model.bin"
TIED = "tests/fixtures/bert-relpos/pytorch_model.bin"  # a state dict of a tied model: shared storage


def test_decoder_differing_from_embeddings_contradicts_tie_word_embeddings(golden):
    out = golden("check_bert_untied_BertForMaskedLM.txt",
                 ["check", UNTIED, "--to", "pytorch", "--target", "BertForMaskedLM"], 1)  # fmt: skip
    assert "tied in the config (tie_word_embeddings) to `bert.embeddings.word_embeddings.weight`" in out
    plan = bridge.check(REPO / UNTIED, to="pytorch", target="BertForMaskedLM")
    assert [g.name for g in plan.gaps] == ["cls.predictions.decoder.weight"]
    # The decoder bias is a separate tensor with equal values: consistent with the tie, not flagged.
    assert "cls.predictions.decoder.bias" in {t.name for t in plan.tied} | {m.target for m in plan.matched}


def test_untied_config_accepts_the_same_file(tmp_path):
    config = json.loads((REPO / "tests/fixtures/bert-untied/config.json").read_text())
    config["tie_word_embeddings"] = False
    plan = bridge.check(REPO / UNTIED, to="pytorch", target="BertForMaskedLM", config=config)
    assert plan.ok
    assert {m.target: m.source for m in plan.matched}["cls.predictions.decoder.weight"] == (
        "cls.predictions.decoder.weight"
    )


def test_shared_storage_is_consistent_without_reading_values():
    plan = bridge.check(REPO / TIED, to="pytorch", target="BertForMaskedLM")
    assert not any("contradicts its config" in u.reason for u in plan.unused)
