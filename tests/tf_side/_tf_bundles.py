"""Writers of small real TensorFlow checkpoints for the bundle reader's tests.

Each function takes the imported ``tensorflow`` module (tests get it from the ``tf``
fixture, which imports torch first) and a directory, writes with TF's own savers, and
returns what the test should open.  Values are tiny and deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

LONG = bytes(range(256)) + b"x" * 44  # 300 bytes: a two-byte varint length


def tf1_values() -> dict[str, np.ndarray]:
    """One variable per dtype, scoped names, BERT-style slots and a global step."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4, 4)).astype(np.float32)
    return {
        "bert/embeddings/word_embeddings": rng.standard_normal((7, 4)).astype(np.float32),
        "bert/encoder/layer_0/attention/self/query/kernel": kernel,
        "bert/encoder/layer_0/attention/self/query/kernel/adam_m": kernel * 0.1,
        "bert/encoder/layer_0/attention/self/query/kernel/adam_v": kernel**2,
        "global_step": np.array(20, np.int64),
        "dtypes/float16": rng.standard_normal((3, 2)).astype(np.float16),
        "dtypes/bfloat16": rng.standard_normal((5,)).astype(ml_dtypes.bfloat16),
        "dtypes/float64": np.array([np.pi, -0.0, 1e300, np.inf], np.float64),
        "dtypes/int8": np.array([-128, -1, 0, 127], np.int8),
        "dtypes/int16": np.array([-32768, 7, 32767], np.int16),
        "dtypes/int32": np.arange(-3, 9, dtype=np.int32).reshape(3, 4),
        "dtypes/int64": np.array([-(2**63), 2**40, 2**63 - 1], np.int64),
        "dtypes/uint8": np.arange(0, 256, 51, dtype=np.uint8),
        "dtypes/bool": np.array([[True, False, True]]),
        "dtypes/complex64": np.array([1 + 2j, -3.5j, 0], np.complex64),
        "dtypes/complex128": np.array([[1e-300 + 2j]], np.complex128),
        "strings/scalar": np.array(b"hello", dtype=object),
        "strings/vector": np.array([b"", b"a", LONG, "ünï".encode()], dtype=object),
        "strings/matrix": np.array([[b"ab", b""], [b"c" * 130, b"d"]], dtype=object),
        "scalar": np.array(1.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
    }


def write_tf1(tf: Any, directory: Path) -> Path:
    """A TF1 name-based checkpoint by ``tf.compat.v1.train.Saver``."""
    v1 = tf.compat.v1
    values = tf1_values()
    with tf.Graph().as_default():
        variables = {
            name: v1.Variable(tf.constant(value), name=f"v{i}") for i, (name, value) in enumerate(values.items())
        }
        saver = v1.train.Saver(var_list=variables)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return Path(saver.save(session, str(directory / "model.ckpt"), write_meta_graph=False))


def write_partitioned(tf: Any, directory: Path) -> Path:
    """Partitioned variables (``fixed_size_partitioner``) along axis 0 and axis 1.

    20000 rows split in 3 puts slice starts at 6667 and 13334: two- and three-byte
    OrderedCode numbers in the slice keys.
    """
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.get_variable(
            "part/emb",
            shape=(200, 3),
            initializer=v1.random_normal_initializer(seed=1),
            partitioner=v1.fixed_size_partitioner(3),
        )
        v1.get_variable(
            "part/big",
            shape=(20000,),
            dtype=tf.int32,
            initializer=v1.random_uniform_initializer(0, 1000, seed=2),
            partitioner=v1.fixed_size_partitioner(3),
        )
        v1.get_variable(
            "part/cols",
            shape=(4, 6),
            dtype=tf.float64,
            initializer=v1.random_normal_initializer(seed=3),
            partitioner=v1.fixed_size_partitioner(2, axis=1),
        )
        v1.get_variable("plain", shape=(2,), initializer=v1.ones_initializer())
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return Path(saver.save(session, str(directory / "model.ckpt"), write_meta_graph=False))


def write_many(tf: Any, directory: Path, count: int = 400, length: int = 700) -> Path:
    """Long, hardly prefix-sharing names: an index larger than one 256 KiB block."""
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        variables = {f"{i:04d}/" + "w" * length: v1.Variable(np.float32(i), name=f"v{i}") for i in range(count)}
        saver = v1.train.Saver(var_list=variables)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return Path(saver.save(session, str(directory / "many"), write_meta_graph=False))


def write_sharded(tf: Any, directory: Path) -> Path:
    """A TF2 checkpoint split over several data files by ``MaxShardSizePolicy``."""
    values = {f"v{i}": tf.Variable(np.arange(64, dtype=np.float32) * (i + 1)) for i in range(5)}
    values["names"] = tf.Variable(np.array([b"alpha", b"beta", LONG], dtype=object))
    checkpoint = tf.train.Checkpoint(**values)
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=300)
    options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
    return Path(checkpoint.write(str(directory / "sharded"), options=options))


def _train_one_step(keras: Any, optimizer: Any) -> Any:
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="dense"), keras.layers.Dense(2, name="out")]
    )
    model.compile(optimizer=optimizer, loss="mse")
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    model.fit(x, np.ones((4, 2), np.float32), epochs=1, batch_size=4, verbose=0)
    return model


def write_keras(tf: Any, keras: Any, optimizer: Any, directory: Path) -> tuple[Path, Any]:
    """A one-step-trained Keras model saved by ``tf.train.Checkpoint(model=, optimizer=).save``."""
    model = _train_one_step(keras, optimizer)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    return Path(checkpoint.save(str(directory / "ckpt"))), model


def write_saved_model(tf: Any, directory: Path) -> Path:
    """``tf.saved_model.save`` of a plain ``tf.Module``."""

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
            self.b = tf.Variable(np.zeros(3, np.float64), name="b")
            self.steps = tf.Variable(np.int64(7), name="steps")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return x @ self.w

    target = directory / "saved_model"
    tf.saved_model.save(Affine(), str(target))
    return target
