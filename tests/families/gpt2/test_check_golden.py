"""`bridge check` on openai/gpt-2 TF1 checkpoints (TF Saver; one with Adam slots) against GPT2* classes."""

from __future__ import annotations

import json

import pytest

ADAM = "tests/fixtures/gpt2-tf1-adam"


def test_default_target_is_the_lm_head_model_tied_to_wte(golden):
    out = golden("check_gpt2_adam_default.txt", ["check", ADAM, "--to", "pytorch"], 0)
    assert "rules: openai-gpt2" in out and "target: transformers GPT2LMHeadModel" in out
    assert "lm_head.weight = transformer.wte.weight" in out
    assert "lose their leading axis (squeeze(0))" in out and "nothing is transposed" in out
    assert "[squeeze(0)]" in out and "optimizer state (Adam)" in out and "global_step" in out
    assert "verdict: OK" in out


@pytest.mark.parametrize("target", ["GPT2Model"])
def test_base_model_json(golden, target):
    out = golden(f"check_gpt2_adam_{target}.json", ["check", ADAM, "--to", "pytorch", "--target", target, "--json"], 0)
    plan = json.loads(out)
    assert plan["ok"] is True and plan["rules"] == "openai-gpt2"
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    assert sources["h.0.attn.c_attn.weight"] == ("model/h0/attn/c_attn/w", "squeeze(0)")
    assert sources["ln_f.weight"] == ("model/ln_f/g", "identity")
    assert not plan["tied"] and not plan["missing"]
