"""Tied weights: a checkpoint whose values contradict its config's tying is flagged (exit 1)."""

from __future__ import annotations

import json

import pytest

import bridge
from bridge.core.model import TensorRecord

from .conftest import REPO

UNTIED = "tests/fixtures/bert-untied/pytorch_model.bin"
TIED = "tests/fixtures/bert-relpos/pytorch_model.bin"  # a state dict of a tied model: shared storage


def test_decoder_differing_from_embeddings_contradicts_tie_word_embeddings(golden):
    out = golden(
        "check_bert_untied_BertForMaskedLM.txt", ["check", UNTIED, "--to", "pytorch", "--target", "BertForMaskedLM"], 1
    )
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


# PyTorch -> TF: both TF layouts store the masked-LM decoder as the word embeddings (one tensor).
@pytest.mark.parametrize("layout", ["google-bert", "hf-tf"])
def test_to_tensorflow_a_decoder_differing_from_embeddings_is_a_gap(golden, layout):
    out = golden(f"check_bert_untied_to_{layout}.txt", ["check", UNTIED, "--to", "tensorflow", "--target", layout], 1)
    assert (
        "! cls.predictions.decoder.weight [64, 16]: differs from `bert.embeddings.word_embeddings.weight` (max "
        f"abs diff 1): the target, {layout} TF layout"
    ) in out
    assert "verdict: GAPS" in out
    plan = bridge.check(REPO / UNTIED, to="tensorflow", target=layout)
    assert [g.name for g in plan.gaps] == ["cls.predictions.decoder.weight"]
    # An oracle for the figure: the two tensors as torch itself loads them.
    torch = pytest.importorskip("torch")
    state = torch.load(REPO / UNTIED, weights_only=True)
    diff = (state["cls.predictions.decoder.weight"] - state["bert.embeddings.word_embeddings.weight"]).abs().max()
    assert f"max abs diff {float(diff):.3g}" in plan.gaps[0].reason
    # The decoder bias is a separate tensor with equal bytes: a true tie, stored once.
    bias = next(u for u in plan.unused if u.name == "cls.predictions.decoder.bias")
    assert bias.expected and bias.reason == "tied to `cls.predictions.bias`: stored once on the target side"


@pytest.mark.parametrize("layout", ["google-bert", "hf-tf"])
def test_to_tensorflow_shared_storage_settles_a_tie_without_reading(monkeypatch, layout):
    read: list[str] = []
    original = TensorRecord.numpy

    def numpy(self):  # type: ignore[no-untyped-def]
        read.append(self.name)
        return original(self)

    monkeypatch.setattr(TensorRecord, "numpy", numpy)
    plan = bridge.check(REPO / TIED, to="tensorflow", target=layout)
    reasons = {u.name: u.reason for u in plan.unused}
    assert reasons["cls.predictions.decoder.weight"] == (
        "tied to `bert.embeddings.word_embeddings.weight`: stored once on the target side"
    )
    assert reasons["cls.predictions.decoder.bias"] == "tied to `cls.predictions.bias`: stored once on the target side"
    # the tie reads nothing; the padding-row report reads the word-embedding table, once
    assert read == ["bert.embeddings.word_embeddings.weight"]
