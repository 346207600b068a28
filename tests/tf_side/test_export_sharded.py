"""The TF1 checkpoint writer with ``max_shard_size``: N data files laid out as TF's sharded Saver writes them."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np

import bridge
from bridge.core.model import array_record
from bridge.core.outputs import OutTensor, plan_shards
from tf_side.bundle.write import write_tf1_checkpoint

LIMIT = 600
VALUES = {  # name order: a, b (600 B) | c (2000 B, over the limit: alone) | d, e, f (504 B) | g
    "a/kernel": np.arange(100, dtype=np.float32).reshape(10, 10) / 7,
    "b/bias": np.linspace(-1, 1, 50, dtype=np.float32),
    "c/table": np.arange(500, dtype=np.float32).reshape(50, 10) * 0.5,
    "d/f16": np.linspace(-2, 2, 100).astype(np.float16),
    "e/bf16": np.linspace(-3, 3, 100).astype(ml_dtypes.bfloat16),
    "f/step": np.array(7, dtype=np.int64),
    "f/ints": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
    "g/last": np.ones((4, 4), dtype=np.float64),
}


def _tensors() -> list[OutTensor]:
    records = [array_record(name, value) for name, value in VALUES.items()]
    return [OutTensor(r.name, r.shape, r.dtype, r.numpy) for r in records]


def _same(got: np.ndarray, want: np.ndarray) -> None:
    if want.dtype == ml_dtypes.bfloat16:
        np.testing.assert_array_equal(np.asarray(got).view(np.uint16), want.view(np.uint16))
    else:
        np.testing.assert_array_equal(got, want, strict=True)


def test_cuts_in_name_order_and_a_big_tensor_gets_its_own_shard():
    shards = plan_shards(sorted(_tensors(), key=lambda t: t.name), LIMIT)
    assert [[t.name for t in s] for s in shards] == [
        ["a/kernel", "b/bias"],
        ["c/table"],
        ["d/f16", "e/bf16", "f/ints", "f/step"],
        ["g/last"],
    ]


def test_bytes_equal_tensorflows_sharded_saver(tf, tmp_path):
    """One device per shard: TF's sharded Saver then writes the same N files, byte for byte."""
    (tmp_path / "ours").mkdir()
    ours = write_tf1_checkpoint(tmp_path / "ours" / "model.ckpt", _tensors(), max_shard_size=LIMIT)
    shards = plan_shards(sorted(_tensors(), key=lambda t: t.name), LIMIT)
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        variables = {}
        for device, shard in enumerate(shards):
            with v1.device(f"/cpu:{device}"):
                for t in shard:
                    variables[t.name] = v1.Variable(tf.constant(VALUES[t.name]), name=f"v{len(variables)}")
        saver = v1.train.Saver(var_list=variables, sharded=True)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": len(shards)})) as session:
            session.run(v1.global_variables_initializer())
            (tmp_path / "tf").mkdir()
            prefix = Path(saver.save(session, str(tmp_path / "tf" / "model.ckpt"), write_meta_graph=False))
    assert [p.name for p in ours] == ["model.ckpt.index"] + [f"model.ckpt.data-{k:05d}-of-00004" for k in range(4)]
    for path in ours:
        assert path.read_bytes() == (prefix.parent / path.name).read_bytes(), path.name


def test_every_value_read_back_by_tensorflow(tf, tmp_path):
    prefix = tmp_path / "model.ckpt"
    paths = write_tf1_checkpoint(prefix, _tensors(), max_shard_size=LIMIT)
    assert len(paths) == 5
    reader = tf.train.load_checkpoint(str(prefix))
    assert reader.get_variable_to_shape_map().keys() == VALUES.keys()
    for name, value in VALUES.items():
        _same(reader.get_tensor(name), value)
    v1 = tf.compat.v1
    with tf.Graph().as_default():  # a Saver restore, as a TF1 training script would load it
        variables = {
            name: v1.Variable(tf.zeros(value.shape, dtype=tf.as_dtype(value.dtype)), name=f"v{i}")
            for i, (name, value) in enumerate(VALUES.items())
        }
        with v1.Session() as session:
            v1.train.Saver(var_list=variables).restore(session, str(prefix))
            for name, value in VALUES.items():
                _same(session.run(variables[name]), value)
    with bridge.load(prefix) as ckpt:
        for name, value in VALUES.items():
            _same(ckpt[name].numpy(), value)


def test_no_limit_writes_one_shard_as_before(tmp_path):
    paths = write_tf1_checkpoint(tmp_path / "model.ckpt", _tensors())
    assert [p.name for p in paths] == ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]
