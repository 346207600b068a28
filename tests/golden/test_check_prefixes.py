"""`bridge check` on PyTorch state dicts whose names do not line up with the target class.

Fixtures: ``tests/fixtures/make_prefix_cases.py`` (real torch/safetensors files from transformers 5 models).
"""

from __future__ import annotations

import json

import pytest

import bridge

from .conftest import REPO

ROBERTA = "tests/fixtures/roberta-no-prefix/model.safetensors"
DDP = "tests/fixtures/bert-ddp/pytorch_model.bin"
RELPOS = "tests/fixtures/bert-relpos/pytorch_model.bin"


def test_roberta_without_prefix_is_aligned_and_says_how(golden):
    out = golden(
        "check_roberta_no_prefix_RobertaForMaskedLM.txt",
        ["check", ROBERTA, "--to", "pytorch", "--target", "RobertaForMaskedLM"],
        0,
    )
    # The encoder gets `roberta.`; the LM head, already at the root of RobertaForMaskedLM, keeps its names.
    assert "aligned automatically: added prefix `roberta.` (the target wraps the base model): 37 of 42 names" in out
    assert "5 matched as they are" in out and "verdict: OK" in out


def test_roberta_without_prefix_explicit_flag_passes_too():
    plan = bridge.check(REPO / ROBERTA, to="pytorch", target="RobertaForMaskedLM", add_prefix="roberta.")
    assert plan.ok and plan.exit_code == 0
    targets = {m.source: m.target for m in plan.matched}
    query = "encoder.layer.0.attention.self.query.weight"
    assert targets[query] == "roberta." + query
    assert targets["lm_head.dense.weight"] == "lm_head.dense.weight"


def test_ddp_module_prefix_is_suspicious_and_names_the_flag(golden):
    out = golden(
        "check_bert_ddp_BertModel.json", ["check", DDP, "--to", "pytorch", "--target", "BertModel", "--json"], 1
    )
    plan = json.loads(out)
    assert plan["ok"] is False and len(plan["matched"]) == 0
    assert any(
        n == "suspicious: 39 of 39 model tensors unmatched: prefix mismatch? try --strip-prefix module."
        for n in plan["notes"]
    )


def test_ddp_with_strip_prefix_passes(golden):
    args = ["check", DDP, "--to", "pytorch", "--target", "BertModel", "--strip-prefix", "module."]
    out = golden("check_bert_ddp_BertModel_strip.txt", args, 0)
    assert "names aligned as asked: strip 'module.'" in out and "verdict: OK" in out


@pytest.mark.parametrize("target", ["BertModel", "BertForMaskedLM"])
def test_relative_position_keys_change_the_math(golden, target):
    out = golden(f"check_bert_relpos_{target}.txt", ["check", RELPOS, "--to", "pytorch", "--target", target], 1)
    assert "changes the model's math" in out and "verdict: GAPS" in out
    plan = bridge.check(REPO / RELPOS, to="pytorch", target=target)
    distance = [u for u in plan.unused if "distance_embedding" in u.name]
    assert len(distance) == 2 and not any(u.expected for u in distance)
    assert all("relative-position" in u.reason and "compute something else" in u.reason for u in distance)
    # Everything else lines up: the distance embeddings are the only gaps (the pooler of an MLM state dict
    # is newly initialised in BertModel, as transformers does).
    assert [g.name for g in plan.gaps] == [u.name for u in distance]
