"""`bridge unused FILE.py:FACTORY`: JSON shape, text report, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli

PT_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "pt_models.py"
BERT_DDP = Path(__file__).resolve().parents[1] / "fixtures" / "bert-ddp" / "pytorch_model.bin"


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


@pytest.mark.slow
def test_ddp_flag_shows_ddp_message(torch):
    pytest.importorskip("transformers")
    result = _run(f"{PT_MODELS}:bert_pooler", "--ddp", "--json")
    assert result.exit_code == 1, result.output
    ddp = json.loads(result.output)["ddp"]
    if ddp["error_kind"] in ("setup", "timeout"):
        pytest.skip(f"cannot run 2 gloo processes here: {ddp['message']}")
    assert ddp["raised"] is True and "Expected to have finished reduction" in ddp["message"]
    assert ddp["unused_names"] == ["pooler.dense.weight", "pooler.dense.bias"]


# --- a factory error states the calling command's contract ------------------------------------------------------

TINY_BERT = Path(__file__).resolve().parents[2] / "examples" / "tiny-bert"
TWIN = "def build_twin():\n    import torch\n    return torch.nn.Linear(2, 2)\n\n\nclass Helper:\n    pass\n"


def _check(*args: str):
    return CliRunner().invoke(cli, ["check", str(TINY_BERT), "--to", "pytorch", *args])


def test_unused_file_without_factory_names_it_with_unuseds_contract(tmp_path):
    (tmp_path / "train.py").write_text(TWIN)
    result = _run(str(tmp_path / "train.py"))
    assert result.exit_code == 2, result.output
    assert f"name the factory: {tmp_path / 'train.py'}:NAME" in result.output
    assert "`build_twin`, `Helper`" in result.output
    assert "(model, batch) or (model, batch, loss_fn)" in result.output and "Traceback" not in result.output


def test_check_target_typo_states_the_twins_contract(tmp_path, torch):
    (tmp_path / "twin.py").write_text(TWIN)
    result = _check("--target", f"{tmp_path / 'twin.py'}:build_twn")
    assert result.exit_code == 2, result.output
    assert "no callable `build_twn` (did you mean `build_twin`?)" in result.output
    assert "torch.nn.Module" in result.output and "Keras model for --to tensorflow" in result.output
    assert "(model, batch)" not in result.output


def test_check_target_file_without_factory_says_name_it(tmp_path, torch):
    (tmp_path / "twin.py").write_text(TWIN)
    result = _check("--target", str(tmp_path / "twin.py"))
    assert result.exit_code == 2, result.output
    assert f"name the factory: {tmp_path / 'twin.py'}:NAME" in result.output and "`build_twin`" in result.output
    assert "torch.nn.Module" in result.output and "Not a checkpoint" not in result.output


@pytest.mark.parametrize("target", ["nothere/twin.py:build_twin", "nothere/model.safetensors", "nothere/dir"])
def test_check_target_missing_path_says_it_does_not_exist(tmp_path, target, torch):
    result = _check("--target", str(tmp_path / target))
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output and "Not a checkpoint" not in result.output
    assert "Unknown transformers class" not in result.output


def test_restore_of_a_file_of_another_config_promises_no_load(torch):
    """A model of hidden size 32 against a DDP file of hidden size 16: the keys line up once `module.` is stripped,
    but no tensor fits, so there is no code to run (load_state_dict would raise a size mismatch)."""
    args = ["unused", f"{PT_MODELS}:bert_pooler", "--checkpoint", str(BERT_DDP)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "restores 39 of 39" not in result.output and "load_state_dict({k.removeprefix" not in result.output
    assert "fix: none: with the keys aligned (`module.` stripped), no tensor has the model's shape" in result.output
    assert "build the model with the file's config" in result.output
    result = CliRunner().invoke(cli, [*args, "--json"])
    payload = json.loads(result.output)
    assert result.exit_code == 1 and payload["summary"]["restored"] == 0
    assert payload["fix"]["restored_after_fix"] == 0 and payload["fix"]["code"] == ""
    assert len(payload["fix"]["mismatched_after_fix"]) == 39
