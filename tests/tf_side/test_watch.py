"""In-the-loop answers for Keras: `bridge.keras.UnusedVariables` in `model.fit`, and `bridge.watch(model)` around a
custom `tf.GradientTape` loop, against `bridge.find_unused` (the factory form) on the same models."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.unused.render import render_unused

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tf_models):
    return tf_models


def _answer(report):
    return [(i.name, i.scope, i.kind, i.hint, i.numel) for i in report.items]


def test_fit_with_a_head_outside_the_loss_equals_find_unused_and_keras_warning(models, tf, capsys):
    model, _, _ = models.keras_aux_branch()
    model.compile(optimizer="sgd", loss=["mse", None])  # the aux head has no loss
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    callback = bridge.keras.UnusedVariables(batches=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])
    oracle = bridge.find_unused(*models.keras_aux_branch())
    assert _answer(callback.report) == _answer(oracle)
    assert {i.name for i in callback.report.items} == {"aux_hidden/kernel", "aux_hidden/bias", "aux/kernel", "aux/bias"}
    # Keras' own warning names the same variables
    said = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
    assert said
    named = set(re.findall(r"'([^']+)'", said[0]))
    assert {n.split("/", 1)[-1] if n.count("/") > 1 else n for n in named} == {i.name for i in oracle.items}
    printed = capsys.readouterr().err
    assert render_unused(callback.report).strip() in printed
    assert "after 3 batches" in printed
    # the optimizer is left as it was
    assert "apply" not in vars(model.optimizer) and "apply_gradients" not in vars(model.optimizer)


def test_fit_with_a_layer_never_called_and_a_frozen_one(models, tf):
    model, _ = models.keras_never_called()
    model.compile(optimizer="adam", loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 4), "float32")
    callback = bridge.keras.UnusedVariables(batches=2, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, batch_size=2, verbose=0, callbacks=[callback])
        # a second fit retraces the train step, so the callback sees its gradients again
        again = bridge.keras.UnusedVariables(batches=1, quiet=True)
        model.fit(x, y, batch_size=2, verbose=0, callbacks=[again])
    oracle = bridge.find_unused(*models.keras_never_called())
    assert _answer(callback.report) == _answer(oracle) == _answer(again.report)
    assert {i.kind for i in oracle.items} == {"never_read", "frozen"}


def test_custom_gradient_tape_loop_eager_and_traced(models, tf):
    model, batch, loss_fn = models.keras_aux_branch()
    import keras

    opt = keras.optimizers.SGD(0.01)
    variables = model.trainable_variables
    with bridge.watch(model, quiet=True) as eager:
        for _ in range(2):
            with tf.GradientTape() as tape:
                loss = loss_fn(model(batch, training=True), batch)
            grads = eager.gradients(tape.gradient(loss, variables), variables, tape=tape)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.apply_gradients(zip(grads, variables, strict=True))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = loss_fn(model(x, training=True), x)
        return traced.gradients(tape.gradient(loss, variables), variables)

    with bridge.watch(model, quiet=True) as traced:
        for _ in range(3):
            step(batch)
    oracle = bridge.find_unused(*models.keras_aux_branch())
    assert _answer(eager.report) == _answer(traced.report) == _answer(oracle)
    assert eager.report.steps == 2 and traced.report.steps == 1  # one trace


def test_never_read_needs_the_tape_eagerly(models, tf):
    model, batch = models.keras_never_called()
    variables = model.trainable_variables
    with bridge.watch(model, quiet=True) as w:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(batch))
        w.gradients(tape.gradient(loss, variables), variables, tape=tape)
    assert _answer(w.report) == _answer(bridge.find_unused(*models.keras_never_called()))


def test_import_bridge_keras_stays_light():
    probe = "import sys, bridge, bridge.keras; print([m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
