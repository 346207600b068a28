"""Training bookkeeping written by real Keras (compiled metrics' total/count, a Dropout's seed state) is its own
kind, never a model tensor: ``inspect`` groups and explains it, ``check``/``convert`` neither demand nor write it.
Every "(root)" row of ``inspect`` says what it is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridge.cli import cli
from tests.tf_side._tf_bundles import write_saved_model

TWIN = """
def build():
    import torch

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.out = torch.nn.Linear(3, 2)

    return Twin()
"""


def _fit_one_step(keras, *layers):
    model = keras.Sequential([keras.Input((3,)), *layers, keras.layers.Dense(2, name="out")])
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    model.fit(x, np.ones((4, 2), np.float32), epochs=1, batch_size=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def tf_keras_saved(tf, tmp_path_factory) -> Path:
    """A compiled tf-keras model (loss and accuracy metrics), one step trained, as ``tf.saved_model.save``,
    ``model.save(dir)`` and a ``.keras`` archive write it; the PyTorch twin beside them."""
    import tf_keras

    out = tmp_path_factory.mktemp("tf-keras-metrics")
    model = _fit_one_step(tf_keras)
    tf.saved_model.save(model, str(out / "saved_model"))
    model.save(out / "model_save", save_format="tf")
    model.save(out / "model.keras")
    (out / "twin.py").write_text(TWIN)
    return out


def _inspect_json(path: Path) -> dict:
    result = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("written_by", ["saved_model", "model_save", "model.keras"])
def test_metric_counters_are_their_own_kind_in_json(tf_keras_saved, written_by):
    payload = _inspect_json(tf_keras_saved / written_by)
    kinds = {t.get("path") or t["name"]: t["kind"] for t in payload["tensors"]}
    metrics = sorted(name for name, kind in kinds.items() if kind == "metric")
    assert len(metrics) == 4  # loss mean and accuracy, each a total and a count
    assert all("metrics/" in name for name in metrics)
    assert sorted(name for name, kind in kinds.items() if kind == "model") in (
        ["out/bias", "out/kernel"],  # the SavedModel's readable paths
        ["layers/dense/vars/0", "layers/dense/vars/1"],  # the .keras archive's
    )
    assert payload["summary"]["metric"]["tensors"] == 4
    assert "compiled Keras metrics" in payload["kinds"]["metric"] and "not model weights" in payload["kinds"]["metric"]
    assert sorted(payload["bookkeeping"]["metric"]) == metrics
    assert all(isinstance(v, float) for v in payload["bookkeeping"]["metric"].values())


def test_inspect_text_groups_metrics_and_has_no_unexplained_root(tf_keras_saved):
    result = CliRunner().invoke(cli, ["inspect", str(tf_keras_saved / "saved_model")])
    assert result.exit_code == 0, result.output
    model_table = result.output.split("model tensors by scope", 1)[1].split("\n\n", 1)[0]
    assert "metrics" not in model_table and "(root)" not in model_table
    assert [line.split()[0] for line in model_table.splitlines()[1:]] == ["out"]
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("metric: 4 tensors, running totals"))
    assert "keras_api/metrics/0/count = 4.0" in lines[header + 1]
    assert "saved twice" not in result.output  # two metrics' `count` are distinct variables, not copies


def test_every_root_row_says_what_it_is(tf, tmp_path):
    """A ``tf.Module`` whose variables are its own attributes: readable names without a scope."""
    result = CliRunner().invoke(cli, ["inspect", str(write_saved_model(tf, tmp_path))])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("(root)")]
    assert len(rows) == 2, result.output  # the table's row and the line that explains it
    assert rows[1] == "(root): 3 model tensors at the top level (a name without a scope): b, steps, w"


def test_check_convert_verify_to_pytorch_neither_demand_nor_write_metrics(tf_keras_saved, tmp_path, torch):
    target = f"{tf_keras_saved / 'twin.py'}:build"
    source = str(tf_keras_saved / "saved_model")
    result = CliRunner().invoke(cli, ["check", source, "--to", "pytorch", "--target", target, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    metric = [u for u in plan["unused"] if "keras_api/metrics/" in u["name"]]
    assert len(metric) == 4 and all(u["expected"] and "compiled metric" in u["reason"] for u in metric)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["convert", source, "--to", "pytorch", "--target", target, "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = _inspect_json(out)
    assert {t["name"] for t in written["tensors"]} == {"out.weight", "out.bias"}
    result = CliRunner().invoke(cli, ["verify", source, str(out), "--target", target])
    assert result.exit_code == 0, result.output
    assert "values: 2/2 tensors bit-exact" in result.output and "keras_api" not in result.output
    # the forward check needs the Keras model; the note says why a SavedModel alone cannot give it
    assert "A SavedModel's variables do not rebuild its Keras model" in result.output
    assert "weights-only Keras file" not in result.output


def test_keras3_export_seed_state_is_rng_not_model(tf, tmp_path):
    import keras

    model = _fit_one_step(keras, keras.layers.Dense(4, name="hidden"), keras.layers.Dropout(0.1))
    model.export(tmp_path / "export", verbose=False)
    payload = _inspect_json(tmp_path / "export")
    rng = [t for t in payload["tensors"] if t["kind"] == "rng"]
    # Keras numbers a seed generator after others made in the same process (seed_generator_130 under xdist)
    assert [re.sub(r"_\d+/", "/", t["path"]) for t in rng] == ["seed_generator/seed_generator_state"]
    assert not any("seed_generator" in (t.get("path") or t["name"]) for t in payload["tensors"] if t["kind"] == "model")
    assert "seed_generator" in payload["kinds"]["rng"]
