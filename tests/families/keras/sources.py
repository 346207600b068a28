"""Keras sources written by the real writers (Keras 3, tf-keras, tf.train.Checkpoint), once per session.

The fixture is registered in ``tests/conftest.py`` so that every test directory shares the one session instance."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def _randomize(model: Any, seed: int) -> None:
    """Non-trivial values everywhere (BatchNorm statistics included), so that a wrong mapping shows."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
            if "variance" in v.path
            else rng.standard_normal(w.shape).astype(w.dtype) * 0.5
            for v, w in zip(model.weights, model.get_weights(), strict=True)
        ]
    )


@pytest.fixture(scope="session")
def keras_sources(tf, tmp_path_factory) -> dict[str, Path]:
    """The convnet in every Keras source format (Keras 3 ``model.export()`` and tf-keras ``tf.saved_model.save``
    SavedModels included), the GRU and stacked-RNN models, the bidirectional RNN in every format, the
    self-attention model (Keras 3 files, a TF2 checkpoint), and the twins file beside them (relative paths in
    reports)."""
    import keras
    import tf_keras

    from tests.families.keras import twins

    # Keras names layers from process-wide counters (dense, dense_1, ...): start them afresh, so that the
    # names in these files (and in the golden reports) do not depend on which tests ran before.
    keras.utils.clear_session()
    tf_keras.backend.clear_session()
    out = tmp_path_factory.mktemp("keras-sources")
    shutil.copy(HERE / "twins.py", out / "twins.py")
    m = twins.keras_convnet()
    _randomize(m, 0)
    m.save(out / "convnet.keras")
    m.save_weights(out / "convnet.weights.h5")
    tf.train.Checkpoint(model=m).save(str(out / "tf2" / "ckpt"))
    m.export(out / "convnet_export", verbose=False)  # a SavedModel for serving: each variable saved twice
    legacy = twins.tf_keras_convnet()
    legacy.set_weights(m.get_weights())
    legacy.save(out / "convnet_full.h5")
    legacy.save_weights(out / "convnet_weights.h5")
    tf.train.Checkpoint(model=legacy).save(str(out / "tf2legacy" / "ckpt"))
    tf.saved_model.save(legacy, str(out / "convnet_savedmodel_legacy"))
    s = twins.keras_seq()
    _randomize(s, 1)
    s.save(out / "seq.keras")
    s.save_weights(out / "seq.weights.h5")
    st = twins.keras_stacked()
    _randomize(st, 2)
    st.save_weights(out / "stacked.weights.h5")
    b = twins.keras_birnn()
    _randomize(b, 3)
    b.save(out / "birnn.keras")
    b.save_weights(out / "birnn.weights.h5")
    tf.train.Checkpoint(model=b).save(str(out / "birnn_tf2" / "ckpt"))
    b.export(out / "birnn_export", verbose=False)
    legacy_b = twins.tf_keras_birnn()
    legacy_b.set_weights(b.get_weights())
    legacy_b.save(out / "birnn_full.h5")
    tf.train.Checkpoint(model=legacy_b).save(str(out / "birnn_tf2legacy" / "ckpt"))
    a = twins.keras_attention()
    _randomize(a, 4)
    a.save(out / "attention.keras")
    a.save_weights(out / "attention.weights.h5")
    tf.train.Checkpoint(model=a).save(str(out / "attention_tf2" / "ckpt"))
    return {
        "dir": out,
        "keras": out / "convnet.keras",
        "weights": out / "convnet.weights.h5",
        "tf2": out / "tf2" / "ckpt-1",
        "tf2-legacy": out / "tf2legacy" / "ckpt-1",
        "export": out / "convnet_export",
        "saved-model-legacy": out / "convnet_savedmodel_legacy",
        "h5-full": out / "convnet_full.h5",
        "h5-weights": out / "convnet_weights.h5",
        "seq-keras": out / "seq.keras",
        "seq-weights": out / "seq.weights.h5",
        "stacked-weights": out / "stacked.weights.h5",
        "birnn-weights": out / "birnn.weights.h5",
        "birnn-keras": out / "birnn.keras",
        "birnn-tf2": out / "birnn_tf2" / "ckpt-1",
        "birnn-export": out / "birnn_export",
        "birnn-h5-full": out / "birnn_full.h5",
        "birnn-tf2-legacy": out / "birnn_tf2legacy" / "ckpt-1",
        "attention-keras": out / "attention.keras",
        "attention-weights": out / "attention.weights.h5",
        "attention-tf2": out / "attention_tf2" / "ckpt-1",
    }
