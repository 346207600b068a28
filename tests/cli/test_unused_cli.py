"""`bridge unused FILE.py:FACTORY`: JSON shape, text report, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli

PT_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "pt_models.py"


def _run(*args: str):
    return CliRunner().invoke(cli, ["unused", *args])


def test_json_for_never_read_position_embeddings_exit_1(torch):
    result = _run(f"{PT_MODELS}:relative_position", "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert [(u["name"], u["kind"]) for u in payload["unused"]] == [
        ("embeddings.position_embeddings.weight", "never_read")
    ]
    row = payload["unused"][0]
    assert set(row) >= {"name", "scope", "kind", "hint"}
    assert payload["summary"]["framework"] == "pytorch"
    assert payload["summary"]["counts"]["never_read"] == 1 and payload["summary"]["ok"] is False


def test_text_groups_the_encoder_with_one_hint(torch):
    result = _run(f"{PT_MODELS}:encoder_discarded")
    assert result.exit_code == 1, result.output
    assert "no_gradient (24 parameters)" in result.output
    assert "  encoder: 24 parameters" in result.output
    assert result.output.count("fix: ") == 1
    assert "computed but discarded" in result.output


def test_frozen_only_is_exit_0(torch):
    result = _run(f"{PT_MODELS}:frozen_encoder", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {u["kind"] for u in payload["unused"]} == {"frozen"}


def test_steps_option_finds_sometimes(torch):
    result = _run(f"{PT_MODELS}:layer_drop", "--steps", "4", "--json")
    assert result.exit_code == 1, result.output
    assert {u["kind"] for u in json.loads(result.output)["unused"]} == {"sometimes"}


def test_bert_pooler_hint_in_cli(torch):
    pytest.importorskip("transformers")
    result = _run(f"{PT_MODELS}:bert_pooler")
    assert result.exit_code == 1, result.output
    assert "pooler: 2 parameters" in result.output and "add_pooling_layer=False" in result.output
    assert _run(f"{PT_MODELS}:bert_fixed").exit_code == 0


@pytest.mark.parametrize(
    "spec, words",
    [
        ("no_colon_here", "Bad factory spec"),
        ("missing_file.py:build", "Factory file not found"),
        (f"{PT_MODELS}:no_such_factory", "Factory not found"),
    ],
)
def test_bad_input_is_exit_2(spec, words):
    result = _run(spec)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_factory_returning_garbage_is_exit_2(tmp_path):
    (tmp_path / "f.py").write_text("def build():\n    return 42\n")
    result = _run(f"{tmp_path / 'f.py'}:build")
    assert result.exit_code == 2 and "Bad factory result" in result.output


def test_factory_file_that_fails_to_import_is_exit_2(tmp_path):
    (tmp_path / "f.py").write_text("raise RuntimeError('boom')\n")
    result = _run(f"{tmp_path / 'f.py'}:build")
    assert result.exit_code == 2 and "boom" in result.output


def test_non_model_is_exit_2(tmp_path):
    (tmp_path / "f.py").write_text("def build():\n    return object(), None\n")
    result = _run(f"{tmp_path / 'f.py'}:build")
    assert result.exit_code == 2 and "Not a model" in result.output


def test_ddp_flag_shows_ddp_message(torch):
    pytest.importorskip("transformers")
    result = _run(f"{PT_MODELS}:bert_pooler", "--ddp", "--json")
    assert result.exit_code == 1, result.output
    ddp = json.loads(result.output)["ddp"]
    if ddp["error_kind"] in ("setup", "timeout"):
        pytest.skip(f"cannot run 2 gloo processes here: {ddp['message']}")
    assert ddp["raised"] is True and "Expected to have finished reduction" in ddp["message"]
    assert ddp["unused_names"] == ["pooler.dense.weight", "pooler.dense.bias"]
