"""`bridge check` on Mesh TensorFlow T5 checkpoints (TF sharded Saver, bf16, Adafactor slots)."""

from __future__ import annotations

import json

import pytest

V1_0, V1_1 = "tests/fixtures/t5-tf1/v1_0", "tests/fixtures/t5-tf1/v1_1"


@pytest.mark.parametrize(
    ("name", "source", "target"),
    [
        ("check_t5_v1_0_default.txt", V1_0, None),  # relu, tied, config from shapes
        ("check_t5_v1_1_default.txt", V1_1, None),  # gated-gelu, untied logits, operative_config.gin
        ("check_t5_v1_1_T5EncoderModel.txt", V1_1, "T5EncoderModel"),
    ],
)
def test_t5_plan_is_explained(golden, name, source, target):
    args = ["check", source, "--to", "pytorch"] + (["--target", target] if target else [])
    out = golden(name, args, 0)
    assert "rules: t5" in out and "verdict: OK" in out
    assert "optimizer state (slot_vc)" in out and "global_step" in out


def test_t5_plan_json_names_every_source(golden):
    plan = json.loads(golden("check_t5_v1_1_default.json", ["check", V1_1, "--to", "pytorch", "--json"], 0))
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    assert sources["lm_head.weight"] == ("decoder/logits/kernel", "transpose")
    assert sources["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] == (
        "encoder/block_000/layer_000/SelfAttention/relative_attention_bias",
        "transpose",
    )
    assert (
        sources["decoder.block.2.layer.1.EncDecAttention.o.weight"][0]
        == "decoder/block_002/layer_001/EncDecAttention/o"
    )
    optimizer = [u for u in plan["unused"] if u["kind"] == "optimizer"]
    assert optimizer and all(u["expected"] for u in optimizer)
    assert {m["dtype"] for m in plan["matched"]} == {"bfloat16"}
