"""`bridge check` on a google-research BERT pretraining checkpoint (TF Saver, Adam slots)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = "examples/tiny-bert"


@pytest.mark.parametrize(
    "target", ["BertForPreTraining", "BertModel", "BertForSequenceClassification", "BertForMaskedLM"]
)
def test_bert_checkpoint_against_transformers_classes(golden, target):
    out = golden(f"check_tiny_bert_{target}.txt", ["check", EXAMPLE, "--to", "pytorch", "--target", target], 0)
    assert "verdict: OK" in out
    assert "optimizer state (adam_m)" in out and "global_step" in out


def test_default_target_keeps_every_head(golden):
    out = golden("check_tiny_bert_default.txt", ["check", EXAMPLE, "--to", "pytorch"], 0)
    assert "target: transformers BertForPreTraining" in out
    assert "cls.predictions.decoder.weight = bert.embeddings.word_embeddings.weight" in out


def test_json_names_every_parameter_source(golden):
    out = golden("check_tiny_bert_default.json", ["check", EXAMPLE, "--to", "pytorch", "--json"], 0)
    plan = json.loads(out)
    assert plan["ok"] is True
    assert set(plan) >= {"matched", "unused", "missing", "mismatched", "tied"}
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    assert sources["bert.encoder.layer.1.attention.self.query.weight"] == (
        "bert/encoder/layer_1/attention/self/query/kernel",
        "transpose",
    )
    # Already [out, in] in TF (matmul with transpose_b=True): copied as is.
    assert sources["cls.seq_relationship.weight"] == ("cls/seq_relationship/output_weights", "identity")
    optimizer = [u for u in plan["unused"] if u["kind"] == "optimizer"]
    assert len(optimizer) == 2 * len(plan["matched"]) and all(u["expected"] for u in optimizer)
    assert [u["name"] for u in plan["unused"] if u["kind"] == "counter"] == ["global_step"]


def test_wrong_hidden_size_is_exit_1_naming_the_shapes(golden, tmp_path):
    config = json.loads(Path(EXAMPLE, "bert_config.json").read_text())
    config["hidden_size"] = 32
    path = tmp_path / "wrong_config.json"
    path.write_text(json.dumps(config))
    from click.testing import CliRunner

    from bridge.cli import cli

    result = CliRunner().invoke(cli, ["check", EXAMPLE, "--to", "pytorch", "--config", str(path), "--json"])
    assert result.exit_code == 1
    plan = json.loads(result.output)
    assert plan["ok"] is False
    bad = {m["target"]: m for m in plan["mismatched"]}
    query = bad["bert.encoder.layer.0.attention.self.query.weight"]
    assert (query["source_shape"], query["target_shape"]) == ([16, 16], [32, 32])
    text = CliRunner().invoke(cli, ["check", EXAMPLE, "--to", "pytorch", "--config", str(path)]).output
    assert "MISMATCHED shapes:" in text and "verdict: GAPS" in text
    assert "bert/embeddings/word_embeddings [64, 16] -> bert.embeddings.word_embeddings.weight [64, 32]" in text


def test_inferred_config_says_what_it_assumed(tmp_path):
    import shutil

    from click.testing import CliRunner

    from bridge.cli import cli

    for f in ("bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"):
        shutil.copy(f"{EXAMPLE}/{f}", tmp_path / f)
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--to", "pytorch", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["target"]["config"]["num_hidden_layers"] == 2
    assert plan["target"]["config"]["hidden_size"] == 16
    assert any("num_attention_heads assumed" in n for n in plan["notes"])


def test_bad_map_is_exit_2():
    from click.testing import CliRunner

    from bridge.cli import cli

    result = CliRunner().invoke(cli, ["check", EXAMPLE, "--to", "pytorch", "--map", "no-equals-sign"])
    assert result.exit_code == 2 and "Bad --map" in result.output


def test_user_map_rule_wins(tmp_path):
    from click.testing import CliRunner

    from bridge.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "check",
            EXAMPLE,
            "--to",
            "pytorch",
            "--json",
            "--map",
            r"cls/seq_relationship/output_weights=cls.seq_relationship.weight@transpose",
        ],
    )
    plan = json.loads(result.output)
    # The user's rule is tried first: transposing the [2, 16] tensor gives [16, 2], reported, not forced.
    assert result.exit_code == 1
    [bad] = plan["mismatched"]
    assert (bad["source"], bad["target"], bad["transform"]) == (
        "cls/seq_relationship/output_weights",
        "cls.seq_relationship.weight",
        "transpose",
    )
    assert (bad["source_shape"], bad["target_shape"]) == ([2, 16], [2, 16])
