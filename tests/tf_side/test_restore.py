"""`bridge unused FILE.py:FACTORY --checkpoint CKPT` for Keras: checked against tf.train.Checkpoint.read itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.unused.render import render_restore

TF_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "tf_models.py"
TINY_BERT = Path(__file__).resolve().parents[2] / "examples" / "tiny-bert" / "bert_model.ckpt"


@pytest.fixture(scope="module")
def models(tf_models):
    return tf_models


@pytest.fixture(scope="module")
def trained(models, tf, tmp_path_factory):
    """keras_classifier trained one Adam step, saved with tf.train.Checkpoint(model=..., optimizer=...)."""
    import keras

    model, batch = models.keras_classifier()
    optimizer = keras.optimizers.Adam(0.01)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(batch)))
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path_factory.mktemp("k") / "ckpt"))


def _read(tf, model, path):
    """TF's own verdict: (every model variable restored?, every checkpoint value consumed?)."""
    status = tf.train.Checkpoint(model=model).read(path)
    verdicts = []
    for check in (status.assert_existing_objects_matched, status.assert_consumed):
        try:
            check()
            verdicts.append(True)
        except AssertionError:
            verdicts.append(False)
    status.expect_partial()
    return tuple(verdicts)


def test_same_model_only_optimizer_leftovers(models, trained, tf):
    model, batch = models.keras_classifier()
    report = bridge.checkpoint_vs_model(model, trained, batch=batch)
    assert report.root == "model" and report.matched == report.total == 4
    kinds = {i.kind for i in report.items}
    assert kinds == {"optimizer", "counter", "bookkeeping"}
    # Adam's m and v for 4 variables + learning rate; `iterations` is the counter
    assert len(report.by_kind("optimizer")) == 9 and len(report.by_kind("counter")) == 1
    assert report.expect_partial_safe and report.exit_code == 0
    assert _read(tf, model, trained) == (True, False)  # TF: everything restored, checkpoint not consumed


def test_renamed_layer_is_a_model_leftover_with_did_you_mean(models, trained, tf):
    model, batch = models.keras_classifier_renamed()
    report = bridge.checkpoint_vs_model(model, trained, batch=batch)
    leftovers = {i.path: i.did_you_mean for i in report.by_kind("model_leftover")}
    assert leftovers == {"model/head/_kernel": "classifier/kernel", "model/head/bias": "classifier/bias"}
    missing = {i.name: i.did_you_mean for i in report.by_kind("missing")}
    assert missing == {"classifier/kernel": "model/head/_kernel", "classifier/bias": "model/head/bias"}
    assert "renamed or removed layer" in report.by_kind("model_leftover")[0].hint
    assert not report.expect_partial_safe and report.exit_code == 1
    assert _read(tf, model, trained) == (False, False)  # TF too: the classifier was not restored


def test_wider_head_is_a_shape_mismatch(models, trained, tf):
    model, batch = models.keras_classifier_wider()
    report = bridge.checkpoint_vs_model(model, trained, batch=batch)
    [kernel, bias] = report.by_kind("shape_mismatch")
    assert (kernel.shape, kernel.model_shape, bias.shape, bias.model_shape) == ((8, 2), (8, 3), (2,), (3,))
    assert report.exit_code == 1
    with pytest.raises(ValueError):  # TF refuses the restore
        tf.train.Checkpoint(model=model).read(trained).expect_partial()


def test_cli_json_and_exit_codes(models, trained):
    ok = CliRunner().invoke(cli, ["unused", f"{TF_MODELS}:keras_classifier", "--checkpoint", trained, "--json"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.output)
    assert payload["missing"] == [] and payload["summary"]["expect_partial_safe"] is True
    assert {u["kind"] for u in payload["leftovers"]} == {"optimizer", "counter", "bookkeeping"}

    bad = CliRunner().invoke(cli, ["unused", f"{TF_MODELS}:keras_classifier_renamed", "--checkpoint", trained])
    assert bad.exit_code == 1, bad.output
    assert "model/head/_kernel [8, 2]" in bad.output and "did you mean `model/classifier/_kernel" in bad.output
    assert "status.expect_partial(): NOT safe" in bad.output


def test_name_based_checkpoint_is_exit_2(models):
    result = CliRunner().invoke(cli, ["unused", f"{TF_MODELS}:keras_classifier", "--checkpoint", str(TINY_BERT)])
    assert result.exit_code == 2, result.output
    assert "Not an object-based checkpoint" in result.output and "tf.train.Checkpoint" in result.output


@pytest.fixture(scope="module")
def keras3_files(models, tmp_path_factory):
    """keras_classifier fitted one step, saved by Keras 3 as `.weights.h5` and as a `.keras` archive."""
    model, batch = models.keras_classifier()
    model.compile(optimizer="adam", loss="mse")
    model.fit(batch, model(batch), epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp("k3files")
    model.save_weights(folder / "model.weights.h5")
    model.save(folder / "model.keras")
    return folder


def _keras3_load(model, path):
    """Keras' own verdict on a weights file: None when load_weights takes it, else its error."""
    try:
        model.load_weights(path)
    except ValueError as e:
        return str(e)
    return None


@pytest.mark.parametrize("name", ["model.weights.h5", "model.keras"])
def test_keras3_files_same_model(models, keras3_files, name):
    model, batch = models.keras_classifier()
    report = bridge.checkpoint_vs_model(model, keras3_files / name, batch=batch)
    assert report.matched == report.total == 4
    assert {i.kind for i in report.items} <= {"optimizer", "counter"} and report.exit_code == 0
    assert _keras3_load(model, keras3_files / name) is None


@pytest.mark.parametrize("name", ["model.weights.h5", "model.keras"])
def test_keras3_files_renamed_layer(models, keras3_files, name):
    model, batch = models.keras_classifier_renamed()
    report = bridge.checkpoint_vs_model(model, keras3_files / name, batch=batch)
    leftovers = {i.name: i.did_you_mean for i in report.by_kind("model_leftover")}
    missing = {i.name: i.did_you_mean for i in report.by_kind("missing")}
    # a subclassed model: Keras keys its weights by attribute (`head`), as the file shows
    assert set(leftovers) == {"head/vars/0", "head/vars/1"}
    assert set(missing) == {"classifier/vars/0", "classifier/vars/1"}
    assert leftovers["head/vars/0"] == "classifier/vars/0" and report.exit_code == 1
    assert report.framework == "keras"
    assert "load_weights ignores it silently" in report.by_kind("model_leftover")[0].hint
    assert _keras3_load(model, keras3_files / name) is not None  # Keras refuses it too


def test_keras3_file_wider_head(models, keras3_files):
    model, batch = models.keras_classifier_wider()
    report = bridge.checkpoint_vs_model(model, keras3_files / "model.weights.h5", batch=batch)
    assert {i.name for i in report.by_kind("shape_mismatch")} == {"head/vars/0", "head/vars/1"}
    assert report.exit_code == 1
    assert _keras3_load(model, keras3_files / "model.weights.h5") is not None


# --- the report names the call that restores as found, and what model.load_weights does instead -----------------


def _weights(model):
    return [v.numpy().copy() for v in model.weights]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_child_checkpoint_names_checkpoint_read_and_load_weights_fails(models, trained, tf):
    """tf.train.Checkpoint(model=m).write: the report's call restores; Keras 3's load_weights cannot read it."""
    saved, batch = models.keras_classifier()
    saved(batch)
    tf.train.Checkpoint(model=saved).read(trained).expect_partial()
    model, batch = models.keras_classifier()
    report = bridge.checkpoint_vs_model(model, trained, batch=batch)
    assert report.call == f"tf.train.Checkpoint(model=model).read({trained!r})"
    status = eval(report.call, {"tf": tf, "model": model})  # noqa: S307 - the report's code, run as written
    status.assert_existing_objects_matched()
    assert _same(_weights(model), _weights(saved))
    assert report.other is not None and report.other.call == f"model.load_weights({trained!r})"
    assert report.other.restored == 0 and "File format not supported" in report.other.why
    with pytest.raises(ValueError, match="File format not supported"):
        model.load_weights(trained)  # Keras 3's own answer


def test_root_checkpoint_for_keras3_is_checkpoint_of_the_model(models, tf, tmp_path):
    saved, batch = models.keras_classifier()
    saved(batch)
    path = tf.train.Checkpoint(saved).write(str(tmp_path / "root"))
    model, batch = models.keras_classifier()
    report = bridge.checkpoint_vs_model(model, path, batch=batch)
    assert report.root == "" and report.call == f"tf.train.Checkpoint(model).read({path!r})" and report.ok
    eval(report.call, {"tf": tf, "model": model}).assert_consumed()  # noqa: S307
    assert _same(_weights(model), _weights(saved))


def _tf_keras_model(tf_keras, seed: int):
    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,)), tf_keras.layers.Dense(2)])
    return model


def test_tf_keras_save_weights_is_load_weights(tf, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    saved = _tf_keras_model(tf_keras, 1)
    saved.save_weights(str(tmp_path / "weights"))
    model = _tf_keras_model(tf_keras, 2)
    report = bridge.checkpoint_vs_model(model, tmp_path / "weights")
    where = str(tmp_path / "weights")
    assert report.root == "" and report.call == f"model.load_weights({where!r})" and report.other is None
    assert report.ok and report.matched == report.total == 4
    eval(report.call, {"model": model}).assert_existing_objects_matched()  # noqa: S307
    assert _same(_weights(model), _weights(saved))


def test_tf_keras_child_checkpoint_load_weights_restores_nothing(tf, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    saved = _tf_keras_model(tf_keras, 1)
    path = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))
    model = _tf_keras_model(tf_keras, 2)
    report = bridge.checkpoint_vs_model(model, path)
    assert report.root == "model" and report.call == f"tf.train.Checkpoint(model=model).read({path!r})"
    assert report.other.call == f"model.load_weights({path!r})" and report.other.restored == 0
    text = render_restore(report)
    assert f"`model.load_weights({path!r})` restores nothing here" in text
    before = _weights(model)
    with pytest.raises(AssertionError, match="Nothing except the root object matched"):
        model.load_weights(path)  # tf-keras itself: nothing restored
    assert _same(_weights(model), before)
    eval(report.call, {"tf": tf, "model": model}).assert_existing_objects_matched()  # noqa: S307
    assert _same(_weights(model), _weights(saved))


def test_other_dtype_is_a_mismatch_tf_refuses(tf, tmp_path):
    """tf.train.Checkpoint's restore does not cast: a float64 value for a float32 variable is a mismatch, not a
    restored variable (TensorFlow raises on it)."""

    class Model(tf.Module):
        def __init__(self, dtype):
            super().__init__()
            self.kernel = tf.Variable(np.ones((2, 3), dtype))
            self.bias = tf.Variable(np.zeros((3,), np.float32))

    path = tf.train.Checkpoint(model=Model(np.float64)).write(str(tmp_path / "ckpt"))
    model = Model(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        tf.train.Checkpoint(model=model).read(path).assert_existing_objects_matched()
    report = bridge.checkpoint_vs_model(model, path)
    [mismatch] = report.by_kind("shape_mismatch")
    assert mismatch.name == "model/kernel/.ATTRIBUTES/VARIABLE_VALUE" and "float64" in mismatch.hint
    assert report.matched == 1 and report.total == 2 and report.exit_code == 1
    assert "restores 1 of 2 as is" in render_restore(report)
