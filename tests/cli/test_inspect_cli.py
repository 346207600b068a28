"""`bridge inspect` through CliRunner: tables, JSON, filters, stats, errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_inspect_example_table(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "format: tf-checkpoint (tensorflow)" in out
    assert "bert/encoder/layer_{0..1}" in out
    assert "optimizer state by slot" in out and "adam_m" in out and "adam_v" in out
    assert "global_step = " in out


def test_inspect_example_json_lists_every_tensor(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE / "bert_model.ckpt"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["format"] == "tf-checkpoint"
    names = {t["name"]: t for t in payload["tensors"]}
    assert names["bert/embeddings/word_embeddings"]["dtype"] == "float32"
    assert names["bert/embeddings/word_embeddings/adam_m"]["kind"] == "optimizer"
    assert names["bert/embeddings/word_embeddings/adam_m"]["slot_of"] == "bert/embeddings/word_embeddings"
    assert names["global_step"]["kind"] == "counter"
    totals = payload["summary"]
    assert totals["optimizer"]["tensors"] == 2 * totals["model"]["tensors"]


def test_inspect_filter_and_stats(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE), "--filter", "pooler/dense", "--stats", "--json"])
    assert result.exit_code == 0, result.output
    tensors = json.loads(result.output)["tensors"]
    assert {t["name"] for t in tensors} == {
        "bert/pooler/dense/kernel",
        "bert/pooler/dense/bias",
        "bert/pooler/dense/kernel/adam_m",
        "bert/pooler/dense/kernel/adam_v",
        "bert/pooler/dense/bias/adam_m",
        "bert/pooler/dense/bias/adam_v",
    }
    stats = {t["name"]: t["stats"] for t in tensors}
    kernel = stats["bert/pooler/dense/kernel"]
    assert kernel["nan"] == 0 and kernel["inf"] == 0 and kernel["min"] < kernel["mean"] < kernel["max"]


def test_inspect_every_tensor_table(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE), "--all", "--filter", "^bert/pooler"])
    assert result.exit_code == 0
    assert "bert/pooler/dense/kernel  " in result.output


def test_missing_path_is_exit_2_without_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["inspect", str(tmp_path / "missing.ckpt")])
    assert result.exit_code == 2
    assert "Checkpoint not found" in result.output and "missing.ckpt" in result.output
    assert "Traceback" not in result.output


def test_bad_filter_is_exit_2(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE), "--filter", "("])
    assert result.exit_code == 2
    assert "Invalid --filter pattern" in result.output


def test_unknown_format_name_is_exit_2(runner):
    result = runner.invoke(cli, ["inspect", str(EXAMPLE), "--format", "onnx"])
    assert result.exit_code == 2 and "Known formats" in result.output


def test_formats_json(runner):
    result = runner.invoke(cli, ["formats", "--json"])
    assert result.exit_code == 0
    names = [f["name"] for f in json.loads(result.output)]
    assert names[:2] == ["tf-checkpoint", "saved-model"] and "safetensors" in names


@pytest.mark.slow
def test_tf2_object_checkpoint_is_grouped_by_readable_path(tf, runner, tmp_path):
    import keras

    layers = [keras.Input((8,)), keras.layers.Dense(4, name="hidden"), keras.layers.Dense(2, name="out")]
    model = keras.Sequential(layers)
    model.compile("adam", "mse")
    model.fit(np.ones((4, 8)), np.ones((4, 2)), verbose=0)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))
    result = runner.invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "style: object-based" in result.output
    rows = [line.split()[0] for line in result.output.splitlines() if line.startswith("sequential/")]
    assert rows == ["sequential/hidden", "sequential/out"]
    assert "momentum" in result.output and "velocity" in result.output


def test_an_internal_error_is_exit_3_with_one_paragraph(runner, monkeypatch):
    """A bug (here: the planner raising something no code path expects) is not reported as bad input."""
    import importlib

    def broken(*args, **kwargs):
        raise RuntimeError("planner exploded")

    monkeypatch.setattr(importlib.import_module("bridge.commands.check"), "run_check", broken)
    result = runner.invoke(cli, ["check", str(EXAMPLE), "--to", "pytorch"])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: planner exploded" in result.output and "--debug" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(RuntimeError):
        runner.invoke(cli, ["--debug", "check", str(EXAMPLE), "--to", "pytorch"], catch_exceptions=False)
