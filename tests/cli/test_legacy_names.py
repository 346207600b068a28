"""pytorch-pretrained-bert saved LayerNorm parameters as `gamma`/`beta`: read as `weight`/`bias`, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli


@pytest.fixture(scope="module")
def legacy_bin(torch, tmp_path_factory) -> Path:
    """A tiny BertForPreTraining state dict with the legacy LayerNorm names, written by torch.save."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    state = transformers.BertForPreTraining(config).state_dict()
    legacy = {}
    for name, value in state.items():
        if ".LayerNorm." in name:
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[name] = value
    folder = tmp_path_factory.mktemp("legacy")
    torch.save(legacy, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(config.to_json_string())
    return folder / "pytorch_model.bin"


def _check(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.output)


def test_legacy_names_to_tensorflow(legacy_bin):
    code, plan = _check(str(legacy_bin), "--to", "tensorflow")
    assert code == 0, plan["notes"]
    pairs = {m["source"]: m["target"] for m in plan["matched"]}
    assert pairs["bert.embeddings.LayerNorm.gamma"] == "bert/embeddings/LayerNorm/gamma"
    assert pairs["bert.encoder.layer.1.output.LayerNorm.beta"] == "bert/encoder/layer_1/output/LayerNorm/beta"
    assert any("legacy `gamma`/`beta`" in n for n in plan["notes"])


def test_legacy_names_to_the_transformers_class_loads_cleanly(legacy_bin, tmp_path):
    import transformers

    code, plan = _check(str(legacy_bin), "--to", "pytorch", "--target", "BertModel")
    assert code == 0, plan["notes"]
    assert {"bert.embeddings.LayerNorm.gamma": "embeddings.LayerNorm.weight"}.items() <= {
        m["source"]: m["target"] for m in plan["matched"]
    }.items()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["convert", str(legacy_bin), "--to", "pytorch", "--target", "BertModel", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    written = json.loads((out / "config.json").read_text())
    assert written["hidden_act"] == "gelu" and written["architectures"] == ["BertModel"]  # its own config, kept
    _, info = transformers.BertModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_verify_pytorch_to_pytorch_is_values_only(legacy_bin, tmp_path):
    out = tmp_path / "out"
    CliRunner().invoke(cli, ["convert", str(legacy_bin), "--to", "pytorch", "--target", "BertModel", "-o", str(out)])
    result = CliRunner().invoke(cli, ["verify", str(legacy_bin), str(out), "--json"])
    report = json.loads(result.output)
    # BertModel, chosen, has no pre-training heads: every value is exact, and verify fails on the heads left out
    assert result.exit_code == 1 and not report["ok"] and report["values"]["bit_exact"] == 39
    assert report["plan_gaps"] and all("not in the output" in g for g in report["plan_gaps"])
    assert report["outputs"] == [] and any("same framework" in n for n in report["notes"])
