"""The neutral model, dtype vocabulary, errors and scope folding: no framework needed."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from bridge.core import dtypes
from bridge.core.errors import BridgeError, CheckpointNotFound, TensorNotFound
from bridge.core.model import Checkpoint, array_record
from bridge.core.naming import classify_tf_name, classify_torch_name
from bridge.core.scopes import fold, scope_of


def _ckpt() -> Checkpoint:
    return Checkpoint(
        [
            array_record("bert/embeddings/word_embeddings", np.arange(12, dtype=np.float32).reshape(3, 4)),
            array_record("bert/pooler/dense/bias", np.zeros(4, dtype=ml_dtypes.bfloat16)),
        ],
        format="test",
        path="/tmp/x",
        framework="tensorflow",
    )


def test_checkpoint_is_an_ordered_mapping_with_lazy_values():
    ckpt = _ckpt()
    assert list(ckpt) == ["bert/embeddings/word_embeddings", "bert/pooler/dense/bias"]
    rec = ckpt["bert/embeddings/word_embeddings"]
    assert (rec.shape, rec.dtype, rec.nbytes, rec.numel) == ((3, 4), "float32", 48, 12)
    np.testing.assert_array_equal(rec.numpy(), np.arange(12, dtype=np.float32).reshape(3, 4))
    assert ckpt["bert/pooler/dense/bias"].dtype == "bfloat16"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(TensorNotFound) as err:
        _ckpt()["bert/embeddings/word_embedding"]
    message = str(err.value)
    assert message == (
        "No such tensor in '/tmp/x' for tensor `bert/embeddings/word_embedding`. "
        "Did you mean `bert/embeddings/word_embeddings`?"
    )
    assert isinstance(err.value, KeyError)


def test_duplicate_names_are_refused():
    rec = array_record("a", np.zeros(1))
    with pytest.raises(ValueError, match="duplicate"):
        Checkpoint([rec, rec], format="t", path="p", framework="f")


@pytest.mark.parametrize(
    "name",
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ],
)
def test_dtype_vocabulary_round_trips(name):
    assert dtypes.dtype_name(dtypes.numpy_dtype(name)) == name
    assert dtypes.itemsize(name) == dtypes.numpy_dtype(name).itemsize


def test_string_dtype():
    assert dtypes.dtype_name(np.array([b"a"], dtype=object).dtype) == "string"
    assert dtypes.itemsize("string") is None


def test_error_template_names_file_tensor_and_fix():
    err = CheckpointNotFound(
        "Missing data shard",
        path="m.ckpt.data-00001-of-00002",
        tensor="w",
        detail="the index lists 2 shards",
        hint="Copy every .data-* file",
    )
    assert str(err) == (
        "Missing data shard in 'm.ckpt.data-00001-of-00002' for tensor `w`: "
        "the index lists 2 shards. Copy every .data-* file."
    )
    assert isinstance(err, FileNotFoundError) and isinstance(err, BridgeError)
    assert err.exit_code == 2


@pytest.mark.parametrize(
    ("name", "kind", "slot_of", "slot"),
    [
        ("bert/encoder/layer_0/output/dense/kernel", "model", None, None),
        (
            "bert/encoder/layer_0/output/dense/kernel/adam_m",
            "optimizer",
            "bert/encoder/layer_0/output/dense/kernel",
            "adam_m",
        ),
        ("dense/kernel/Adam_1", "optimizer", "dense/kernel", "Adam_1"),
        ("beta1_power", "optimizer", None, None),
        ("global_step", "counter", None, None),
        ("_CHECKPOINTABLE_OBJECT_GRAPH", "metadata", None, None),
        ("adam_m", "model", None, None),  # a bare name is a variable, not a slot
        # Mesh TensorFlow's Adafactor (T5): the slot is a suffix of the variable's own name.
        (
            "encoder/block_000/layer_000/SelfAttention/q_slot_vc",
            "optimizer",
            "encoder/block_000/layer_000/SelfAttention/q",
            "slot_vc",
        ),
        (
            "decoder/block_001/layer_002/DenseReluDense/wi_0/kernel_slot_vr",
            "optimizer",
            "decoder/block_001/layer_002/DenseReluDense/wi_0/kernel",
            "slot_vr",
        ),
        ("encoder/rms_norm/scale_slot_v", "optimizer", "encoder/rms_norm/scale", "slot_v"),
        ("shared/embedding_slot_m", "optimizer", "shared/embedding", "slot_m"),
        ("encoder/block_000/layer_000/SelfAttention/q_slot", "model", None, None),
    ],
)
def test_classify_tf_names(name, kind, slot_of, slot):
    tag = classify_tf_name(name)
    assert (tag.kind, tag.slot_of, tag.slot_name) == (kind, slot_of, slot)


def test_classify_torch_names():
    assert classify_torch_name("optimizer.state.0.exp_avg").kind == "optimizer"
    assert classify_torch_name("optimizer.state.0.exp_avg").slot_name == "exp_avg"
    assert classify_torch_name("encoder.layer.0.weight").kind == "model"
    assert classify_torch_name("epoch").kind == "counter"


def test_scope_and_fold():
    names = [f"bert/encoder/layer_{i}/attention/self/query/kernel" for i in range(12)]
    scopes = [scope_of(n, 3) for n in names]
    assert scopes[0] == "bert/encoder/layer_0"
    assert list(fold(scopes)) == ["bert/encoder/layer_{0..11}"]
    assert list(fold(["encoder.layer.0", "encoder.layer.2"])) == ["encoder.layer.{0,2}"]
    assert scope_of("bias", 3) == "(root)"
    # Names with a number that is not a sibling index stay apart.
    assert sorted(fold(["dense", "dense_1"])) == ["dense", "dense_1"]
