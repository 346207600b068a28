"""Write Keras weight files with the real writers (Keras 3, tf-keras) for the h5 reader tests.

Each writer returns the files it wrote and, for every dataset it expects, the value
taken from the live model, with the file-name -> variable mapping pinned by hand
(from the variables' own attribute names, not from the reader).  TensorFlow, Keras
and tf-keras are imported inside the functions; the caller imports torch first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Written:
    """Files written by one writer and what they must contain."""

    files: dict[str, Path]
    expected: dict[str, np.ndarray]  # dataset path -> value from the live model
    paths: dict[str, str] = field(default_factory=dict)  # dataset path -> expected record.path
    facts: dict[str, Any] = field(default_factory=dict)


def _np(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy())


def _keras3() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if not keras.__version__.startswith("3."):
        raise RuntimeError(f"expected Keras 3, got {keras.__version__}")
    return keras


def keras3_model(out: Path) -> Written:
    """A functional Keras 3 model with multi-variable and non-trainable layers, one Adam step."""
    keras = _keras3()
    layers = keras.layers
    keras.utils.set_random_seed(1)
    tokens = keras.Input((6,), dtype="int32", name="tok")
    x = layers.Embedding(10, 4, name="emb")(tokens)
    x = layers.LSTM(3, return_sequences=True, name="lstm")(x)
    x = layers.GRU(3, return_sequences=True, name="gru")(x)
    x = layers.LayerNormalization(name="layer_normalization")(x)
    x = layers.Reshape((6, 3, 1))(x)
    x = layers.Conv2D(2, 3, padding="same", name="conv2d")(x)
    x = layers.BatchNormalization(name="batch_normalization")(x)
    x = layers.Flatten()(x)
    y = layers.Dense(2, name="dense")(x)
    model = keras.Model(tokens, y, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse", run_eagerly=True)
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 10, (4, 6)), rng.random((4, 2)), batch_size=4, epochs=1, verbose=0)
    files = {"keras": out / "k3.keras", "weights": out / "k3.weights.h5"}
    model.save(files["keras"])
    model.save_weights(files["weights"])

    get = model.get_layer
    # Keras 3 groups by *attribute path*: `layers/<snake_case(class name)>` (not the
    # layer name: Embedding "emb" -> layers/embedding), RNN cells under `/cell`.
    owners = {
        "layers/embedding": get("emb"),
        "layers/lstm/cell": get("lstm").cell,
        "layers/gru/cell": get("gru").cell,
        "layers/layer_normalization": get("layer_normalization"),
        "layers/conv2d": get("conv2d"),
        "layers/batch_normalization": get("batch_normalization"),
        "layers/dense": get("dense"),
    }
    expected: dict[str, np.ndarray] = {}
    for group, layer in owners.items():
        for i, variable in enumerate(layer.weights):
            expected[f"{group}/vars/{i}"] = _np(variable)
    optimizer_names = [v.name for v in model.optimizer.variables]
    for i, variable in enumerate(model.optimizer.variables):
        expected[f"optimizer/vars/{i}"] = _np(variable)
    facts = {
        "optimizer_names": optimizer_names,
        "weight_names": {g: [v.name for v in layer.weights] for g, layer in owners.items()},
        "n_model_weights": len(model.weights),
        "keras_version": keras.__version__,
    }
    return Written(files, expected, facts=facts)


def keras3_half(out: Path, dtype: str) -> Written:
    """A Keras 3 model whose layers compute and store in ``dtype`` (bfloat16/float16)."""
    keras = _keras3()
    layers = keras.layers
    keras.utils.set_random_seed(2)
    d0 = layers.Dense(3, dtype=dtype, name="d0")
    bn = layers.BatchNormalization(dtype=dtype, name="bn")
    ln = layers.LayerNormalization(dtype=dtype, name="ln")
    d1 = layers.Dense(2, dtype=dtype, name="d1")
    model = keras.Sequential([keras.Input((4,)), d0, bn, ln, d1], name=f"{dtype}_model")
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse", run_eagerly=True)
    rng = np.random.default_rng(1)
    model.fit(rng.random((4, 4)), rng.random((4, 2)), batch_size=4, epochs=1, verbose=0)
    files = {"weights": out / f"{dtype}.weights.h5", "keras": out / f"{dtype}.keras"}
    model.save_weights(files["weights"])
    model.save(files["keras"])
    # Groups are snake_case class names, deduplicated with _1 (the second Dense).
    owners = {
        "layers/dense": d0,
        "layers/batch_normalization": bn,
        "layers/layer_normalization": ln,
        "layers/dense_1": d1,
    }
    expected: dict[str, np.ndarray] = {}
    for group, layer in owners.items():
        for i, variable in enumerate(layer.weights):
            expected[f"{group}/vars/{i}"] = _np(variable)
    for i, variable in enumerate(model.optimizer.variables):
        expected[f"optimizer/vars/{i}"] = _np(variable)
    return Written(files, expected, facts={"variable_dtypes": {v.dtype for v in model.weights}})


def keras3_legacy_h5(out: Path) -> Written:
    """Keras 3 ``model.save("x.h5")``: the Keras 2 layout, weight names = variable paths."""
    keras = _keras3()
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name="dense"), keras.layers.BatchNormalization(name="bn")],
        name="seq",
    )
    # Named explicitly: Keras 3 numbers auto-named optimizers (adam_3) per process.
    model.compile(optimizer=keras.optimizers.Adam(name="adam"), loss="mse", run_eagerly=True)
    model.fit(np.ones((2, 3)), np.ones((2, 2)), verbose=0)
    path = out / "k3_legacy.h5"
    model.save(path)
    expected: dict[str, np.ndarray] = {}
    paths: dict[str, str] = {}
    for layer in model.layers:
        for variable in layer.weights:
            name = f"model_weights/{layer.name}/{variable.path}"
            expected[name] = _np(variable)
            paths[name] = variable.path
    for variable in model.optimizer.variables:
        expected[f"optimizer_weights/{variable.path}"] = _np(variable)
    return Written({"h5": path}, expected, paths)


def tf_keras_model(out: Path) -> Written:
    """The same kind of model with tf-keras (Keras 2): full ``save("m.h5")`` and ``save_weights("w.h5")``."""
    import tensorflow as tf
    import tf_keras

    layers = tf_keras.layers
    tf.random.set_seed(4)
    tokens = tf_keras.Input((6,), dtype="int32", name="tok")
    x = layers.Embedding(10, 4, name="emb")(tokens)
    x = layers.LSTM(3, return_sequences=True, name="lstm")(x)
    x = layers.GRU(3, return_sequences=True, name="gru")(x)
    x = layers.LayerNormalization(name="layer_normalization")(x)
    x = layers.Reshape((6, 3, 1))(x)
    x = layers.Conv2D(2, 3, padding="same", name="conv2d")(x)
    x = layers.BatchNormalization(name="batch_normalization")(x)
    x = layers.Flatten()(x)
    y = layers.Dense(2, name="dense")(x)
    model = tf_keras.Model(tokens, y, name="tiny")
    model.compile(optimizer=tf_keras.optimizers.Adam(), loss="mse", run_eagerly=True)
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 10, (4, 6)), rng.random((4, 2)), batch_size=4, epochs=1, verbose=0)
    files = {"full": out / "m.h5", "weights": out / "w.h5", "keras": out / "m.keras"}
    model.save(files["full"])
    model.save_weights(files["weights"])
    model.save(files["keras"])  # tf-keras 2.13+ writes the same zip archive as Keras 3
    expected: dict[str, np.ndarray] = {}
    paths: dict[str, str] = {}
    weights_only: dict[str, np.ndarray] = {}
    for layer in model.layers:
        # Keras 2: group = layer name, dataset = the TF variable name (with ":0").
        for variable, value in zip(layer.weights, layer.get_weights(), strict=True):
            expected[f"model_weights/{layer.name}/{variable.name}"] = value
            weights_only[f"{layer.name}/{variable.name}"] = value
            paths[f"model_weights/{layer.name}/{variable.name}"] = variable.name.removesuffix(":0")
            paths[f"{layer.name}/{variable.name}"] = variable.name.removesuffix(":0")
    for variable in model.optimizer.variables:
        expected[f"optimizer_weights/{variable.name}"] = _np(variable)
        paths[f"optimizer_weights/{variable.name}"] = variable.name.removesuffix(":0")
    facts = {
        "dense_weights": model.get_layer("dense").get_weights(),
        "weights_only": weights_only,
        "optimizer_names": [v.name for v in model.optimizer.variables],
        "keras_version": tf_keras.__version__,
    }
    return Written(files, expected, paths, facts)


def hf_tf_layout(out: Path) -> Written:
    """A subclassed tf-keras model laid out like transformers' TFBertModel, saved as tf_model.h5.

    Layer names and nesting follow transformers (TFBertModel "tf_bert_model" ->
    TFBertMainLayer "bert" -> "embeddings" / "encoder" -> "layer_._{i}" ->
    "attention" -> "self" -> "query"/"key"/"value"), so the real writer produces
    weight names like ``tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0``.
    """
    import tensorflow as tf
    import tf_keras

    layers = tf_keras.layers

    class SelfAttention(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.query = layers.Dense(4, name="query")
            self.key = layers.Dense(4, name="key")
            self.value = layers.Dense(4, name="value")

        def call(self, x: Any) -> Any:
            return self.query(x) + self.key(x) + self.value(x)

    class Attention(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.self_attention = SelfAttention(name="self")
            self.LayerNorm = layers.LayerNormalization(name="LayerNorm")

        def call(self, x: Any) -> Any:
            return self.LayerNorm(self.self_attention(x))

    class BertLayer(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.attention = Attention(name="attention")

        def call(self, x: Any) -> Any:
            return self.attention(x)

    class Encoder(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.layer = [BertLayer(name=f"layer_._{i}") for i in range(2)]

        def call(self, x: Any) -> Any:
            for block in self.layer:
                x = block(x)
            return x

    class Embeddings(layers.Layer):
        def build(self, input_shape: Any) -> None:
            # transformers creates its embedding matrices inside a name scope.
            with tf.name_scope("word_embeddings"):
                self.weight = self.add_weight(name="weight", shape=(10, 4))
            super().build(input_shape)

        def call(self, ids: Any) -> Any:
            return tf.gather(self.weight, ids)

    class MainLayer(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.embeddings = Embeddings(name="embeddings")
            self.encoder = Encoder(name="encoder")

        def call(self, ids: Any) -> Any:
            return self.encoder(self.embeddings(ids))

    class TFBertModel(tf_keras.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.bert = MainLayer(name="bert")

        def call(self, ids: Any) -> Any:
            return self.bert(ids)

    tf.random.set_seed(5)
    model = TFBertModel(name="tf_bert_model")
    model(tf.constant([[1, 2, 3]]))
    path = out / "tf_model.h5"
    model.save_weights(path)  # .h5 suffix: the Keras 2 HDF5 writer
    expected = {f"bert/{v.name}": _np(v) for v in model.weights}
    paths = {f"bert/{v.name}": v.name.removesuffix(":0") for v in model.weights}
    return Written({"h5": path}, expected, paths, {"model": model, "keras_version": tf_keras.__version__})


def tf_keras_chunked(out: Path) -> Written:
    """A layer whose ``weight_names`` exceed HDF5's 64 KiB attribute limit, so tf-keras
    splits it into ``weight_names0``, ``weight_names1``."""
    import tf_keras

    class Many(tf_keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.many = [
                self.add_weight(name=f"w{i:03d}_" + "x" * 140, shape=(1,), initializer="ones") for i in range(480)
            ]

        def call(self, x: Any) -> Any:
            return x + self.many[0]

    tokens = tf_keras.Input((1,))
    model = tf_keras.Model(tokens, Many(name="many")(tokens))
    path = out / "chunked.h5"
    model.save_weights(path)
    layer = model.get_layer("many")
    expected = {f"many/{v.name}": value for v, value in zip(layer.weights, layer.get_weights(), strict=True)}
    return Written({"h5": path}, expected)


def keras3_sharded(out: Path) -> Written:
    """Keras 3 ``save_weights("x.weights.json", max_shard_size=GB)``: an index plus shard files."""
    keras = _keras3()
    keras.utils.set_random_seed(6)
    d0 = keras.layers.Dense(100, name="d0")
    d1 = keras.layers.Dense(100, name="d1")
    model = keras.Sequential([keras.Input((100,)), d0, d1], name="sharded")
    path = out / "s.weights.json"
    model.save_weights(path, max_shard_size=0.00005)  # ~52 KiB: one 40 KiB kernel per shard
    owners = {"layers/dense": d0, "layers/dense_1": d1}
    expected = {f"{group}/vars/{i}": _np(v) for group, layer in owners.items() for i, v in enumerate(layer.weights)}
    shards = sorted(out.glob("s_*.weights.h5"))
    return Written({"index": path, **{s.name: s for s in shards}}, expected)
