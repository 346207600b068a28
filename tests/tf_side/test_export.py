"""The native TF1 checkpoint writer: byte-identical to TF's Saver, and read back by TensorFlow."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import bridge
from bridge.core.model import array_record
from bridge.core.outputs import OutTensor
from tf_side.bundle.write import write_tf1_checkpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-bert"


def test_bytes_equal_what_tensorflow_saver_wrote(tmp_path):
    with bridge.load(EXAMPLE) as ckpt:
        tensors = [OutTensor(r.name, r.shape, r.dtype, r.numpy) for r in ckpt.values()]
        write_tf1_checkpoint(tmp_path / "bert_model.ckpt", tensors)
    for suffix in (".index", ".data-00000-of-00001"):
        ours, tfs = tmp_path / f"bert_model.ckpt{suffix}", EXAMPLE / f"bert_model.ckpt{suffix}"
        assert ours.read_bytes() == tfs.read_bytes()


VALUES = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "f16": np.linspace(-2, 2, 5).astype(np.float16),
    "bf16": np.linspace(-2, 2, 5).astype(ml_dtypes.bfloat16),
    "f64": np.array([1e-300, np.pi]),
    "i64": np.array([[-(2**40), 7]], dtype=np.int64),
    "i32": np.array([1, -2, 3], dtype=np.int32),
    "u8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "strings": np.array([b"", b"a", b"x" * 300], dtype=object),
    "scope/nested/kernel": np.ones((3, 3), dtype=np.float32),
}


def test_every_dtype_is_read_back_by_tensorflow_and_by_us(tf, tmp_path):
    records = [array_record(name, value) for name, value in VALUES.items()]
    tensors = [OutTensor(r.name, r.shape, r.dtype, r.numpy) for r in records]
    prefix = tmp_path / "all.ckpt"
    write_tf1_checkpoint(prefix, tensors)
    reader = tf.train.load_checkpoint(str(prefix))
    assert set(reader.get_variable_to_shape_map()) == set(VALUES)
    for name, value in VALUES.items():
        got = reader.get_tensor(name)
        if value.dtype == object:
            assert list(got.reshape(-1)) == list(value.reshape(-1))
        elif value.dtype == ml_dtypes.bfloat16:
            np.testing.assert_array_equal(np.asarray(got).view(np.uint16), value.view(np.uint16))
        else:
            np.testing.assert_array_equal(got, value, strict=True)
    with bridge.load(prefix) as ckpt:
        for name, value in VALUES.items():
            got = ckpt[name].numpy()
            if value.dtype == object:
                assert list(got.reshape(-1)) == list(value.reshape(-1))
            else:
                assert got.dtype == value.dtype
                np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("count", [1, 17, 3000])
def test_many_tensors_span_blocks_and_restarts(tf, tmp_path, count):
    # 3000 long names overflow one 256 KiB index data block: exercises separators and restarts.
    names = [f"scope_{i % 7}/layer_{i}/" + "w" * 80 for i in range(count)]
    tensors = [
        OutTensor(n, (2,), "float32", (lambda i=i: np.array([i, -i], dtype=np.float32))) for i, n in enumerate(names)
    ]
    prefix = tmp_path / "many.ckpt"
    write_tf1_checkpoint(prefix, tensors)
    reader = tf.train.load_checkpoint(str(prefix))
    assert len(reader.get_variable_to_shape_map()) == count
    np.testing.assert_array_equal(reader.get_tensor(names[-1]), [count - 1, -(count - 1)])
    with bridge.load(prefix) as ckpt:
        assert list(ckpt) == sorted(names)
