"""`bridge unused` on real small Keras models (factories in tests/fixtures_unused/tf_models.py)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli

TF_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "tf_models.py"


@pytest.fixture(scope="module")
def models(tf_models):
    return tf_models


def _kinds(report):
    return {item.name: item.kind for item in report.items}


def test_branch_outside_the_loss_is_exactly_what_keras_warns_about(models, tf):
    import keras

    model, batch, loss_fn = models.keras_aux_branch()
    report = bridge.find_unused(model, batch, loss_fn)
    assert report.framework == "tensorflow"
    expected = {"aux_hidden/kernel", "aux_hidden/bias", "aux/kernel", "aux/bias"}
    assert _kinds(report) == dict.fromkeys(expected, "no_gradient")
    assert report.exit_code == 1
    # the GradientTape itself
    with tf.GradientTape() as tape:
        loss = loss_fn(model(batch, training=True), batch)
    grads = tape.gradient(loss, model.trainable_variables)
    assert {v.path for v, g in zip(model.trainable_variables, grads, strict=True) if g is None} == expected
    # Keras' own warning lists exactly the same variables, by path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_variables, strict=True))
    messages = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    listed = re.findall(r"'([^']+)'", messages[0].split("when minimizing")[0])
    assert set(listed) == {item.name for item in report.items} and len(listed) == len(report.items)


def test_fix_applied_silences_the_report(models):
    """Route the aux head into the loss (the hint) -> nothing unused."""
    import tensorflow as tf

    model, batch, _ = models.keras_aux_branch()
    report = bridge.find_unused(model, batch, lambda out, b: tf.reduce_mean(out[0]) + tf.reduce_mean(out[1]))
    assert report.items == [] and report.exit_code == 0


def test_layer_never_called_is_never_read_and_frozen_layer_is_frozen(models):
    model, batch = models.keras_never_called()
    report = bridge.find_unused(model, batch)
    assert _kinds(report) == {
        "spare_head/kernel": "never_read",
        "spare_head/bias": "never_read",
        "frozen_proj/kernel": "frozen",
        "frozen_proj/bias": "frozen",
    }
    assert {i.scope for i in report.items} == {"spare_head", "frozen_proj"}
    assert report.exit_code == 1


def test_all_used_is_exit_0(models):
    report = bridge.find_unused(*models.keras_all_used())
    assert report.items == [] and report.exit_code == 0


def test_tf_module_with_an_unused_variable(tf):
    class M(tf.Module):
        def __init__(self):
            super().__init__(name="m")
            self.w = tf.Variable(tf.ones((3,)), name="w")
            self.unused = tf.Variable(tf.ones((2,)), name="unused")

        def __call__(self, x):
            return tf.reduce_sum(x * self.w)

    report = bridge.find_unused(M(), tf.ones((3,)))
    assert _kinds(report) == {"unused": "never_read"}


def test_cli_json_for_keras(models):
    result = CliRunner().invoke(cli, ["unused", f"{TF_MODELS}:keras_aux_branch", "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["summary"]["framework"] == "tensorflow"
    assert {(u["name"], u["kind"]) for u in payload["unused"]} == {
        ("aux_hidden/kernel", "no_gradient"),
        ("aux_hidden/bias", "no_gradient"),
        ("aux/kernel", "no_gradient"),
        ("aux/bias", "no_gradient"),
    }
    assert CliRunner().invoke(cli, ["unused", f"{TF_MODELS}:keras_all_used"]).exit_code == 0
