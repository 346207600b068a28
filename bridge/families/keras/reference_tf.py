"""The Keras half of the Keras pack's forward check: a Keras model with given weights, and its output.

Verification only.  A ``.keras`` archive and a Keras 2 full-model ``.h5`` build themselves
(``safe_mode`` on: no Lambda code runs); weights-only files need the model from a factory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import MissingDependency, UsageError


def keras_model(weights: Path, fmt: str, layout: str | None, factory: str | None, option: str) -> Any:
    """The Keras model holding the weights of ``weights`` (format ``fmt``); ``option`` is the command-line option
    that gives ``factory`` (``--source-model`` or ``--target``, by the side the Keras model is on)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
    except ImportError as e:
        raise MissingDependency("Keras is needed for the forward check", hint="pip install tensorflow") from e
    if factory is None:
        if fmt == "keras":
            return keras.saving.load_model(weights, compile=False, safe_mode=True)
        if fmt == "keras-h5" and layout == "keras2-full":
            import tf_keras

            return tf_keras.models.load_model(weights, compile=False)
        # Only a .keras archive and a full Keras 2 .h5 hold the model's code; the rest are its weights alone.
        what = {
            "saved-model": "A SavedModel's variables do not rebuild its Keras model",
            "tf-checkpoint": "A TF checkpoint holds values only, not the Keras model that wrote it",
        }.get(fmt, "A weights-only Keras file cannot build its model")
        raise UsageError(what, path=weights, hint=f"Pass {option} FILE.py:FACTORY returning the Keras model")
    from bridge.core.factory import KERAS_MODEL_CONTRACT, load_factory

    model = load_factory(factory, KERAS_MODEL_CONTRACT)()
    if fmt in ("tf-checkpoint", "saved-model"):
        _restore(model, weights, fmt, option)
    else:
        model.load_weights(weights)
    return model


def _restore(model: Any, weights: Path, fmt: str, option: str) -> None:
    """Restore a TF2 checkpoint or SavedModel into ``model`` by TF's own object-graph walk; every model
    variable must find its value (a restore that matches nothing would silently keep the initial values)."""
    import tensorflow as tf

    prefix = str(weights / "variables" / "variables" if fmt == "saved-model" else weights)
    hint = f"Pass {option} FILE.py:FACTORY building the model that wrote it"
    names = [name for name, _ in tf.train.list_variables(prefix)]
    if fmt == "tf-checkpoint":
        root = tf.train.Checkpoint(model=model)  # tf.train.Checkpoint(model=...).save
    elif any(name.startswith("_all_variables/") for name in names):
        # Keras 3 model.export(): the root lists the model's variables in order (`variables/N`), not its layers.
        listed = sum(re.fullmatch(r"variables/\d+/\.ATTRIBUTES/VARIABLE_VALUE", name) is not None for name in names)
        if listed != len(model.variables):
            raise UsageError(
                "The Keras model does not match the exported variables",
                path=weights,
                detail=f"the export lists {listed} variables, the model has {len(model.variables)}",
                hint=hint,
            )
        root = tf.train.Checkpoint(variables=list(model.variables))
    else:
        root = tf.train.Checkpoint(root=model)  # tf.saved_model.save(model): the model is the root
    try:
        status = root.read(prefix)  # read, not restore: no save_counter of its own left to match
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise UsageError(
            "The Keras model does not match the checkpoint",
            path=weights,
            detail=str(e).splitlines()[0][:300],
            hint=hint,
        ) from e
    status.expect_partial()  # optimizer state and counters are not the model's


def keras_input(model: Any, seed: int, batch: int) -> np.ndarray:
    """A seeded input of the model's (single) input shape: token ids below the smallest vocabulary
    for integer inputs, standard normal floats otherwise."""
    spec = model.inputs[0]
    shape = (batch, *[d or 4 for d in tuple(spec.shape)[1:]])
    rng = np.random.default_rng(seed)
    if "int" in str(spec.dtype):
        vocab = min((layer.input_dim for layer in model.layers if hasattr(layer, "input_dim")), default=2)
        return rng.integers(0, vocab, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(np.float32)


def keras_output(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))
