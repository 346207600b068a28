"""The native tensor-bundle reader against checkpoints written by real TensorFlow.

Every checkpoint here is written by TF's own savers (or comes from third-party
repositories), then opened with ``bridge.load`` and compared with what TF itself
reports: ``tf.train.list_variables`` for names and shapes, the checkpoint reader's
dtype map, and ``get_tensor`` values bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from bridge.commands.inspect import inspect_checkpoint
from bridge.core import dtypes
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, UsageError
from bridge.report import render_inspect as render_text
from tests.conftest import REPO, read_variables_txt
from tests.tf_side import _tf_bundles as writers
from tf_side.bundle.locate import sniff_checkpoint, sniff_saved_model

# --- helpers ------------------------------------------------------------------------------


def assert_same(ours: np.ndarray, theirs: Any, name: str = "") -> None:
    """Equal bit for bit, same dtype and shape; strings as lists of bytes objects."""
    if isinstance(theirs, bytes):  # TF returns scalar strings as bytes
        theirs = np.array(theirs, dtype=object)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, name
    assert ours.dtype == theirs.dtype, (name, ours.dtype, theirs.dtype)
    if ours.dtype == object:
        assert all(isinstance(v, bytes) for v in ours.ravel()), name
        assert list(ours.ravel()) == list(theirs.ravel()), name
    elif ours.dtype == dtypes.numpy_dtype("bfloat16"):
        np.testing.assert_array_equal(ours.view(np.uint16), theirs.view(np.uint16), err_msg=name)
    else:
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
        assert ours.tobytes() == np.ascontiguousarray(theirs).tobytes(), name  # -0.0, NaN payloads


def assert_matches_tf(tf: Any, prefix: Path, ckpt: bridge.Checkpoint) -> None:
    """Names, shapes, dtypes and every value equal TensorFlow's own reader's."""
    listed = tf.train.list_variables(str(prefix))
    assert list(ckpt) == [name for name, _ in listed]
    reader = tf.train.load_checkpoint(str(prefix))
    tf_dtypes = reader.get_variable_to_dtype_map()
    for name, shape in listed:
        record = ckpt[name]
        assert record.shape == tuple(shape), name
        assert record.dtype == dtypes.dtype_name(tf_dtypes[name].as_numpy_dtype), name
        value = record.numpy()
        assert value.shape == record.shape
        assert_same(value, reader.get_tensor(name), name)


# --- checkpoints written by TensorFlow (session-scoped: TF is slow to start) ---------------


@pytest.fixture(scope="session")
def tf1_prefix(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return writers.write_tf1(tf, tmp_path_factory.mktemp("tf1"))


@pytest.fixture(scope="session")
def partitioned_prefix(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return writers.write_partitioned(tf, tmp_path_factory.mktemp("partitioned"))


@pytest.fixture(scope="session")
def sharded_prefix(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return writers.write_sharded(tf, tmp_path_factory.mktemp("sharded"))


@pytest.fixture(scope="session")
def many_prefix(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return writers.write_many(tf, tmp_path_factory.mktemp("many"))


@pytest.fixture(scope="session")
def saved_model_dir(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return writers.write_saved_model(tf, tmp_path_factory.mktemp("sm"))


@pytest.fixture(scope="session")
def keras3_checkpoint(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    keras = tf.keras
    return writers.write_keras(tf, keras, keras.optimizers.Adam(1e-3), tmp_path_factory.mktemp("k3"))


@pytest.fixture(scope="session")
def tf_keras(tf: Any) -> Any:
    return pytest.importorskip("tf_keras")


@pytest.fixture(scope="session")
def keras2_checkpoint(tf: Any, tf_keras: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    opt = tf_keras.optimizers.Adam(1e-3)
    return writers.write_keras(tf, tf_keras, opt, tmp_path_factory.mktemp("k2"))


@pytest.fixture(scope="session")
def keras2_legacy_checkpoint(tf: Any, tf_keras: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    opt = tf_keras.optimizers.legacy.Adam(1e-3)
    return writers.write_keras(tf, tf_keras, opt, tmp_path_factory.mktemp("k2legacy"))


def test_tf1_every_dtype_matches_tensorflow(tf: Any, tf1_prefix: Path) -> None:
    with bridge.load(tf1_prefix) as ckpt:
        assert ckpt.format == "tf-checkpoint"
        assert ckpt.framework == "tensorflow"
        assert ckpt.metadata["style"] == "name-based"
        assert_matches_tf(tf, tf1_prefix, ckpt)
        expected = writers.tf1_values()
        for name, value in expected.items():
            assert_same(ckpt[name].numpy(), value, name)
        assert {ckpt[name].dtype for name in ckpt} == {
            "float32",
            "float16",
            "bfloat16",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "bool",
            "complex64",
            "complex128",
            "string",
        }


def test_tf1_records_metadata(tf1_prefix: Path) -> None:
    with bridge.load(tf1_prefix) as ckpt:
        kernel = "bert/encoder/layer_0/attention/self/query/kernel"
        assert ckpt[kernel].kind == "model"
        assert ckpt[kernel + "/adam_m"].kind == "optimizer"
        assert ckpt[kernel + "/adam_m"].slot_of == kernel
        assert ckpt[kernel + "/adam_v"].slot_name == "adam_v"
        assert ckpt["global_step"].kind == "counter"
        assert ckpt["empty"].shape == (0, 3) and ckpt["empty"].nbytes == 0
        assert ckpt["scalar"].shape == ()
        assert ckpt[kernel].nbytes == 64
        assert ckpt[kernel].location.startswith("model.ckpt.data-00000-of-00001 @ ")
        assert ckpt.files == [f"{tf1_prefix}.index", f"{tf1_prefix}.data-00000-of-00001"]
        # nbytes of a string tensor is its stored size: varint lengths + 4-byte CRC + bytes.
        assert ckpt["strings/scalar"].nbytes == 1 + 4 + 5
        value = ckpt[kernel].numpy()
        value[0, 0] = 42.0  # a private copy: writable, and the file stays as it was
        assert ckpt[kernel].numpy()[0, 0] != 42.0


def test_open_reads_only_the_index(tf1_prefix: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tf_side.bundle import read

    reads: list[tuple[int, int]] = []
    original = read.Shards.view

    def spy(self: Any, shard: int, offset: int, size: int) -> np.ndarray:
        reads.append((shard, offset))
        return original(self, shard, offset, size)

    monkeypatch.setattr(read.Shards, "view", spy)
    with bridge.load(tf1_prefix) as ckpt:
        assert reads == []
        ckpt["scalar"].numpy()
        assert len(reads) == 1


def test_partitioned_variables_are_assembled(tf: Any, partitioned_prefix: Path) -> None:
    with bridge.load(partitioned_prefix) as ckpt:
        assert_matches_tf(tf, partitioned_prefix, ckpt)
        assert list(ckpt) == ["part/big", "part/cols", "part/emb", "plain"]
        assert ckpt["part/big"].shape == (20000,)
        assert ckpt["part/cols"].shape == (4, 6)
        assert ckpt["part/emb"].location.endswith("(+2 more slices)")
        assert ckpt["part/emb"].nbytes == 200 * 3 * 4


def test_multi_shard_checkpoint(tf: Any, sharded_prefix: Path) -> None:
    data_files = sorted(sharded_prefix.parent.glob(sharded_prefix.name + ".data-*"))
    assert len(data_files) > 1
    with bridge.load(sharded_prefix) as ckpt:
        assert ckpt.metadata["num_shards"] == len(data_files)
        assert ckpt.files[1:] == [str(p) for p in data_files]
        listed = tf.train.list_variables(str(sharded_prefix))
        assert list(ckpt) == [name for name, _ in listed]
        reader = tf.train.load_checkpoint(str(sharded_prefix))
        for name, shape in listed:
            assert ckpt[name].shape == tuple(shape)
            if name == "names/.ATTRIBUTES/VARIABLE_VALUE":
                # TF's own reader refuses sliced strings ("Dtype string not supported");
                # compare with what was saved.
                expected = np.array([b"alpha", b"beta", writers.LONG], dtype=object)
                assert_same(ckpt[name].numpy(), expected, name)
            else:
                assert_same(ckpt[name].numpy(), reader.get_tensor(name), name)
        # MaxShardSizePolicy splits single variables across files.
        assert "more slices" in ckpt["v4/.ATTRIBUTES/VARIABLE_VALUE"].location
        # Unnamed eager variables all have the full name "Variable": the object path is the readable one.
        assert ckpt["v4/.ATTRIBUTES/VARIABLE_VALUE"].path == "v4"


def test_index_of_several_blocks(tf: Any, many_prefix: Path) -> None:
    from tf_side.sstable import Table

    table = Table(many_prefix.with_name(many_prefix.name + ".index").read_bytes(), "many.index")
    index_block = table.read_block(*table.index_handle, what="index")
    assert len(list(table.iter_block(index_block, "index"))) > 1
    with bridge.load(many_prefix) as ckpt:
        assert len(ckpt) == 400
        assert_matches_tf(tf, many_prefix, ckpt)


def _check_slots(ckpt: bridge.Checkpoint, model: Any, slot_names: set[str]) -> None:
    model_records = ckpt.of_kind("model")
    assert len(model_records) == len(model.weights)
    assert sorted(r.path for r in model_records) == sorted(
        w.path if hasattr(w, "path") and "/" in w.path else w.name.split(":")[0] for w in model.weights
    )
    slots = ckpt.of_kind("optimizer")
    slots = [r for r in slots if r.slot_of is not None]
    assert len(slots) == 2 * len(model.weights)
    assert {r.slot_of for r in slots} == {r.name for r in model_records}
    assert {r.slot_name for r in slots} == slot_names
    for slot in slots:
        assert ckpt[slot.slot_of].shape == slot.shape
        assert ckpt[slot.slot_of].kind == "model"
    assert ckpt["save_counter/.ATTRIBUTES/VARIABLE_VALUE"].kind == "counter"
    assert ckpt["_CHECKPOINTABLE_OBJECT_GRAPH"].kind == "metadata"
    counters = {r.name for r in ckpt.of_kind("counter")}
    assert len(counters) == 2  # save_counter and the optimizer's iterations
    hyper = [r for r in ckpt.of_kind("optimizer") if r.slot_of is None]
    assert any("learning_rate" in r.name for r in hyper)


def test_tf2_keras3_object_graph(tf: Any, keras3_checkpoint: tuple[Path, Any]) -> None:
    prefix, model = keras3_checkpoint
    with bridge.load(prefix) as ckpt:
        assert ckpt.metadata["style"] == "object-based"
        assert_matches_tf(tf, prefix, ckpt)
        _check_slots(ckpt, model, {"momentum", "velocity"})
        # Keras 3 keys model weights through the optimizer's variable list; the graph
        # still tells them apart from slots.
        for record in ckpt.of_kind("model"):
            np.testing.assert_array_equal(
                record.numpy(), next(w.numpy() for w in model.weights if w.path == record.path)
            )


def test_tf2_keras2_object_graph(tf: Any, keras2_checkpoint: tuple[Path, Any]) -> None:
    prefix, model = keras2_checkpoint
    with bridge.load(prefix) as ckpt:
        assert_matches_tf(tf, prefix, ckpt)
        _check_slots(ckpt, model, {"momentum", "velocity"})
        kernel = "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
        assert ckpt[kernel].path == "dense/kernel"


def test_tf2_shared_variable_is_a_tie_stored_once(tf: Any, tmp_path: Path) -> None:
    """Object identity: one variable held by two modules is saved once; its other path is a tie."""
    emb = tf.Variable(np.arange(15, dtype=np.float32).reshape(5, 3), name="emb")
    root = tf.Module()
    root.enc, root.dec = tf.Module(), tf.Module()
    root.enc.embeddings, root.dec.output_kernel = emb, emb
    root.dec.bias = tf.Variable(np.zeros(3, np.float32), name="bias")
    prefix = tf.train.Checkpoint(model=root).write(str(tmp_path / "ckpt"))
    with bridge.load(prefix) as ckpt:
        assert_matches_tf(tf, prefix, ckpt)
        assert len(ckpt.of_kind("model")) == 2  # stored once, as TF lists it
        assert ckpt.tied == [("model/enc/embeddings", "model/dec/output_kernel")]
        text = render_text(inspect_checkpoint(ckpt))
    assert "tied (one storage, several names): model/enc/embeddings = model/dec/output_kernel" in text


def test_tf2_one_full_name_saved_twice_is_a_copy_only_when_the_bytes_agree(tf: Any, tmp_path: Path) -> None:
    """Keras' export saves each variable as two objects of one full name: the first in graph order keeps the
    full name as its path and the other is listed as its copy; holders that store different values stay apart."""
    root = tf.Module()
    root.a = tf.Variable(np.arange(6, dtype=np.float32), name="dense/kernel")
    root.b = tf.Variable(np.arange(6, dtype=np.float32), name="dense/kernel")  # same bytes: a second copy
    root.c = tf.Variable(np.zeros(3, np.float32), name="dense/bias")
    root.d = tf.Variable(np.ones(3, np.float32), name="dense/bias")  # same name, other value: not a copy
    prefix = tf.train.Checkpoint(model=root).write(str(tmp_path / "ckpt"))
    key = "model/{}/.ATTRIBUTES/VARIABLE_VALUE".format
    with bridge.load(prefix) as ckpt:
        assert_matches_tf(tf, prefix, ckpt)
        assert ckpt.metadata["copies"] == {key("b"): key("a")}
        assert [ckpt[key(x)].path for x in "abcd"] == ["dense/kernel", "model/b", "model/c", "model/d"]
        assert ckpt.tied == []  # two objects, stored twice: not one storage


def test_tf2_keras_checkpoints_have_no_false_ties(
    keras3_checkpoint: Any, keras2_checkpoint: Any, keras2_legacy_checkpoint: Any
) -> None:
    """Keras tracks a layer under several names and optimizers list every variable: neither is a tie."""
    for prefix, _ in (keras3_checkpoint, keras2_checkpoint, keras2_legacy_checkpoint):
        with bridge.load(prefix) as ckpt:
            assert ckpt.tied == []


def test_tf2_keras2_legacy_optimizer_slot_table(tf: Any, keras2_legacy_checkpoint: tuple[Path, Any]) -> None:
    prefix, model = keras2_legacy_checkpoint
    with bridge.load(prefix) as ckpt:
        assert_matches_tf(tf, prefix, ckpt)
        _check_slots(ckpt, model, {"m", "v"})
        slot = ckpt["model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"]
        assert slot.slot_of == "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
        assert slot.path == "Adam/dense/kernel/m"
        assert ckpt["optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"].kind == "counter"
        assert ckpt["optimizer/beta_1/.ATTRIBUTES/VARIABLE_VALUE"].kind == "optimizer"


def test_checkpoint_directory_uses_the_state_file(tf: Any, tmp_path: Path) -> None:
    checkpoint = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
    checkpoint.save(str(tmp_path / "ckpt"))
    checkpoint.v.assign([3.0, 4.0])
    latest = Path(checkpoint.save(str(tmp_path / "ckpt")))
    assert latest.name == "ckpt-2"
    assert sniff_checkpoint(tmp_path)
    with bridge.load(tmp_path) as ckpt:
        assert ckpt.metadata["prefix"] == str(latest)
        np.testing.assert_array_equal(ckpt["v/.ATTRIBUTES/VARIABLE_VALUE"].numpy(), [3.0, 4.0])


def test_saved_model(tf: Any, saved_model_dir: Path) -> None:
    assert sniff_saved_model(saved_model_dir)
    assert not sniff_checkpoint(saved_model_dir)
    with bridge.load(saved_model_dir) as ckpt:
        assert ckpt.format == "saved-model"
        assert ckpt.metadata["container"] == "saved-model"
        assert_matches_tf(tf, saved_model_dir / "variables" / "variables", ckpt)
        assert ckpt["w/.ATTRIBUTES/VARIABLE_VALUE"].path == "w"
        assert ckpt["b/.ATTRIBUTES/VARIABLE_VALUE"].dtype == "float64"
    with bridge.load(saved_model_dir, format="tf-checkpoint") as ckpt:  # its variables, as a checkpoint
        assert ckpt.format == "tf-checkpoint"
        assert "w/.ATTRIBUTES/VARIABLE_VALUE" in ckpt


def test_serving_base_path_reads_the_highest_version(tf: Any, tmp_path: Path) -> None:
    """TF Serving's layout (``model/<version>/saved_model.pb``): the version Serving would load, numerically."""
    base = tmp_path / "half_plus_two"
    for version, value in ((9, 1.0), (10, 2.0)):  # 10 > 9 as numbers, not as text
        module = tf.Module()
        module.w = tf.Variable(np.full(3, value, np.float32))
        tf.saved_model.save(module, str(base / str(version)))
    with bridge.load(base) as ckpt:
        assert ckpt.metadata["serving_version"].startswith("10 ")
        np.testing.assert_array_equal(ckpt["w/.ATTRIBUTES/VARIABLE_VALUE"].numpy(), np.full(3, 2.0, np.float32))


def test_third_party_serving_base_path(shared_fixtures: Path) -> None:
    base = shared_fixtures / "tfserving-testdata" / "saved_model_half_plus_two_tf2_cpu"
    with bridge.load(base) as ckpt:
        assert ckpt.metadata["serving_version"].startswith("00000123 ")
        assert {r.path for r in ckpt.of_kind("model")} == {"a", "b", "c"}


def test_hub_module_container(saved_model_dir: Path, tmp_path: Path) -> None:
    module = tmp_path / "module"
    shutil.copytree(saved_model_dir, module)
    (module / "tfhub_module.pb").write_bytes(b"")
    with bridge.load(module) as ckpt:
        assert ckpt.metadata["container"] == "tfhub-module"


def test_ways_to_name_a_checkpoint(tf1_prefix: Path) -> None:
    index = tf1_prefix.with_name(tf1_prefix.name + ".index")
    data = tf1_prefix.with_name(tf1_prefix.name + ".data-00000-of-00001")
    for path in (tf1_prefix, index, data, tf1_prefix.parent):
        assert sniff_checkpoint(path), path
        with bridge.load(path) as ckpt:
            assert ckpt.metadata["prefix"] == str(tf1_prefix)
    assert not sniff_saved_model(tf1_prefix.parent)


# --- third-party checkpoints -------------------------------------------------------------------

# (what to open, its VARIABLES.txt listing, the bundle prefix, the format)
THIRD_PARTY = [
    ("keras-bert-tiny-tf1/bert_model.ckpt", "keras-bert-tiny-tf1/bert_model.ckpt", "tf-checkpoint"),
    ("keras-gpt2-toy-tf1/model.ckpt", "keras-gpt2-toy-tf1/model.ckpt", "tf-checkpoint"),
    *[
        (f"keras-xlnet-tf1/{d}/xlnet_model.ckpt", f"keras-xlnet-tf1/{d}/xlnet_model.ckpt", "tf-checkpoint")
        for d in ("test_checkpoint_pre", "test_checkpoint_tune")
    ],
    ("tf2onnx-regression-tf1/model", "tf2onnx-regression-tf1/model", "tf-checkpoint"),
    *[
        (f"tfserving-testdata/{d}/00000123", f"tfserving-testdata/{d}/00000123/variables/variables", "saved-model")
        for d in ("saved_model_half_plus_two_cpu", "saved_model_half_plus_two_mkl", "saved_model_half_plus_two_tf2_cpu")
    ],
    ("tfjava-saved-model-using-python/model", "tfjava-saved-model-using-python/model/variables/variables",
     "saved-model"),
]  # fmt: skip
_IDS = [entry[0].split("/")[0] + "/" + entry[0].split("/")[-2] for entry in THIRD_PARTY]


@pytest.mark.parametrize(("target", "prefix", "fmt"), THIRD_PARTY, ids=_IDS)
def test_third_party_against_listing(shared_fixtures: Path, target: str, prefix: str, fmt: str) -> None:
    listing = read_variables_txt(shared_fixtures / f"{prefix}.VARIABLES.txt")
    with bridge.load(shared_fixtures / target) as ckpt:
        assert ckpt.format == fmt
        assert [(r.name, r.dtype, r.shape) for r in ckpt.values()] == listing
        for record in ckpt.values():
            value = record.numpy()  # checks every CRC
            assert value.shape == record.shape
            assert value.dtype == dtypes.numpy_dtype(record.dtype)


@pytest.mark.parametrize(("target", "prefix", "fmt"), THIRD_PARTY, ids=_IDS)
def test_third_party_against_tensorflow(tf: Any, shared_fixtures: Path, target: str, prefix: str, fmt: str) -> None:
    with bridge.load(shared_fixtures / target) as ckpt:
        assert_matches_tf(tf, shared_fixtures / prefix, ckpt)


def test_meta_file_names_its_bundle(shared_fixtures: Path) -> None:
    meta = shared_fixtures / "keras-bert-tiny-tf1" / "bert_model.ckpt.meta"
    assert sniff_checkpoint(meta)
    with bridge.load(meta) as ckpt:
        assert ckpt.metadata["prefix"] == str(meta.with_suffix(""))


def test_third_party_kinds(shared_fixtures: Path) -> None:
    with bridge.load(shared_fixtures / "keras-bert-tiny-tf1") as ckpt:  # the directory: one .index
        assert ckpt["global_step"].kind == "counter"
        assert ckpt["bert/pooler/dense/kernel/adam_m"].slot_of == "bert/pooler/dense/kernel"
        assert len(ckpt.of_kind("optimizer")) == 2 * len(ckpt.of_kind("model"))
    with bridge.load(shared_fixtures / "keras-gpt2-toy-tf1") as ckpt:  # the directory: state file
        assert ckpt.metadata["prefix"].endswith("keras-gpt2-toy-tf1/model.ckpt")
    tf2 = shared_fixtures / "tfserving-testdata/saved_model_half_plus_two_tf2_cpu/00000123"
    with bridge.load(tf2) as ckpt:  # its index's data block is Snappy-compressed
        assert ckpt["a/.ATTRIBUTES/VARIABLE_VALUE"].path == "a"
        assert ckpt["a/.ATTRIBUTES/VARIABLE_VALUE"].numpy() == np.float32(0.5)


# --- damaged checkpoints ----------------------------------------------------------------------


@pytest.fixture
def damaged(tf1_prefix: Path, tmp_path: Path) -> Path:
    """A private copy of the TF1 checkpoint, to damage."""
    for file in tf1_prefix.parent.glob(tf1_prefix.name + ".*"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path / tf1_prefix.name


def _index(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _data(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".data-00000-of-00001")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_missing_data_shard(damaged: Path) -> None:
    """The index alone still lists every variable (as tf.train.list_variables does), with a warning; reading fails."""
    _data(damaged).unlink()
    with bridge.load(damaged) as ckpt:
        assert "model.ckpt.data-00000-of-00001" in ckpt.warnings[0]
        assert "bert/encoder/layer_0/attention/self/query/kernel" in ckpt
        with pytest.raises(CheckpointNotFound) as info:
            ckpt["bert/encoder/layer_0/attention/self/query/kernel"].numpy()
    message = str(info.value)
    assert "Checkpoint data shard not found" in message
    assert "model.ckpt.data-00000-of-00001" in message
    assert "Copy every model.ckpt.data-*-of-00001 file beside the .index file" in message


def test_missing_index(damaged: Path) -> None:
    _index(damaged).unlink()
    assert sniff_checkpoint(damaged)  # its data file is there: ours to explain
    with pytest.raises(CheckpointNotFound, match=r"Checkpoint index not found in '.*model\.ckpt\.index'"):
        bridge.load(damaged)


def test_truncated_index(damaged: Path) -> None:
    index = _index(damaged)
    index.write_bytes(index.read_bytes()[:-30])
    with pytest.raises(CorruptCheckpoint) as info:
        bridge.load(damaged)
    assert str(info.value).startswith(f"Corrupt checkpoint index in '{index}': bad magic number")
    index.write_bytes(index.read_bytes()[:20])
    with pytest.raises(CorruptCheckpoint, match="fewer than the 48-byte table footer"):
        bridge.load(index)


def test_corrupted_index_byte(damaged: Path) -> None:
    _flip(_index(damaged), 40)
    with pytest.raises(CorruptCheckpoint) as info:
        bridge.load(damaged)
    message = str(info.value)
    assert f"'{_index(damaged)}'" in message
    assert "block checksum mismatch in the data block at offset 0" in message
    assert "copy or download the checkpoint again" in message


@pytest.fixture
def damaged_tf2(tf: Any, tmp_path: Path) -> Path:
    """A second bundle for the CRC check, written by TF2's object-based ``tf.train.Checkpoint``: float32 and float64
    matrices of other shapes and values than the TF1 fixture's."""
    rng = np.random.default_rng(11)
    kernel = tf.Variable(rng.standard_normal((5, 7)).astype(np.float32))
    table = tf.Variable(rng.standard_normal((3, 9)))
    return Path(tf.train.Checkpoint(kernel=kernel, table=table).write(str(tmp_path / "ckpt")))


@pytest.mark.parametrize(
    ("bundle", "tensor", "byte", "intact"),
    [
        ("damaged", "dtypes/int32", 5, "dtypes/int16"),
        ("damaged_tf2", "kernel/.ATTRIBUTES/VARIABLE_VALUE", 5 * 7 * 4 - 1, "table/.ATTRIBUTES/VARIABLE_VALUE"),
    ],
    ids=["tf1-saver-int32", "tf2-checkpoint-float32-last-byte"],
)
def test_flipped_data_byte_names_the_tensor(
    request: pytest.FixtureRequest, tf: Any, bundle: str, tensor: str, byte: int, intact: str
) -> None:
    damaged = request.getfixturevalue(bundle)
    with bridge.load(damaged) as ckpt:
        offset = int(ckpt[tensor].location.split(" @ ")[1])
    _flip(_data(damaged), offset + byte)
    # TensorFlow's own reader agrees the bytes are damaged
    with pytest.raises(tf.errors.OpError, match="Checksum does not match"):
        tf.train.load_checkpoint(str(damaged)).get_tensor(tensor)
    with bridge.load(damaged) as ckpt:  # opening reads no values
        with pytest.raises(CorruptCheckpoint) as info:
            ckpt[tensor].numpy()
        message = str(info.value)
        assert message.startswith(f"Checksum mismatch in '{_data(damaged)}' for tensor `{tensor}`")
        assert "the index says" in message and "copy or download the checkpoint again" in message
        ckpt[intact].numpy()  # the others still read


def test_flipped_string_byte(damaged: Path) -> None:
    with bridge.load(damaged) as ckpt:
        offset = int(ckpt["strings/vector"].location.split(" @ ")[1])
    _flip(_data(damaged), offset + 20)  # inside the string bytes
    with bridge.load(damaged) as ckpt, pytest.raises(CorruptCheckpoint, match="for tensor `strings/vector`"):
        ckpt["strings/vector"].numpy()
    _flip(_data(damaged), offset + 20)
    _flip(_data(damaged), offset + 1)  # a length: caught by the length checksum
    with bridge.load(damaged) as ckpt, pytest.raises(CorruptCheckpoint, match="string lengths"):
        ckpt["strings/vector"].numpy()


def test_truncated_data_file(damaged: Path) -> None:
    data = _data(damaged)
    data.write_bytes(data.read_bytes()[:-7])
    with pytest.raises(CorruptCheckpoint) as info:
        bridge.load(damaged)
    message = str(info.value)
    assert message.startswith(f"Truncated checkpoint data in '{data}' for tensor `")
    assert "but the file has" in message


def test_not_a_checkpoint_index(tmp_path: Path) -> None:
    junk = tmp_path / "x.index"
    junk.write_bytes(os.urandom(64) + b"not a table" * 10)
    with pytest.raises(CorruptCheckpoint) as info:
        bridge.load(junk)
    assert str(info.value).startswith(f"Corrupt checkpoint index in '{junk}': bad magic number")
    assert "not a TensorFlow checkpoint index" in str(info.value)


def test_directory_of_several_checkpoints(tf1_prefix: Path, partitioned_prefix: Path, tmp_path: Path) -> None:
    for prefix, new in ((tf1_prefix, "a"), (partitioned_prefix, "b")):
        for file in prefix.parent.glob(prefix.name + ".*"):
            shutil.copy(file, tmp_path / file.name.replace(prefix.name, new))
    with pytest.raises(UsageError, match=r"Several checkpoints in directory .*: 2 \*\.index files"):
        bridge.load(tmp_path)
    with bridge.load(tmp_path / "b") as ckpt:
        assert "part/emb" in ckpt


# --- no framework needed --------------------------------------------------------------------


def test_reading_imports_neither_tensorflow_nor_torch(tf1_prefix: Path, keras2_legacy_checkpoint: Any) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None
        sys.modules["torch"] = None
        import bridge
        count = 0
        for path in ({str(tf1_prefix)!r}, {str(keras2_legacy_checkpoint[0])!r}):
            with bridge.load(path) as ckpt:
                for record in ckpt.values():
                    record.numpy()
                    count += 1
                assert ckpt.metadata["style"] in ("name-based", "object-based")
        heavy = sorted(
            m for m, mod in sys.modules.items()
            if mod is not None and m.split(".")[0] in ("tensorflow", "torch", "keras", "tf_keras")
        )
        assert not heavy, heavy
        print(count)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    with bridge.load(tf1_prefix) as first, bridge.load(keras2_legacy_checkpoint[0]) as second:
        assert int(result.stdout.strip()) == len(first) + len(second)
