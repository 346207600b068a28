"""Readers of Keras / HDF5 weight files (tf_side.keras3_weights, keras_archive, keras2_h5, hdf5_plain
over tf_side.h5io), on files written by the real writers:
Keras 3.x, tf-keras 2.x, a transformers-style tf_model.h5, Keras 2.2.4 and bilm-tf files from
../shared/fixtures, and h5py itself for plain HDF5 corner cases."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest

import bridge
from bridge.core.errors import (
    CheckpointNotFound,
    CorruptCheckpoint,
    FormatNotRecognized,
    SizeLimitExceeded,
    UnsupportedFeature,
)
from tests.conftest import REPO, read_variables_txt
from tests.tf_side import _keras_writers as writers
from tests.tf_side._keras_writers import Written

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def k3(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    return writers.keras3_model(tmp_path_factory.mktemp("keras3"))


@pytest.fixture(scope="session", params=["bfloat16", "float16"])
def k3_half(tf, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Written:
    return writers.keras3_half(tmp_path_factory.mktemp(f"keras3_{request.param}"), request.param)


@pytest.fixture(scope="session")
def k3_legacy(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    return writers.keras3_legacy_h5(tmp_path_factory.mktemp("keras3_legacy"))


@pytest.fixture(scope="session")
def k3_sharded(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    return writers.keras3_sharded(tmp_path_factory.mktemp("keras3_sharded"))


@pytest.fixture(scope="session")
def tfk(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    pytest.importorskip("tf_keras")
    return writers.tf_keras_model(tmp_path_factory.mktemp("tf_keras"))


@pytest.fixture(scope="session")
def hf(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    pytest.importorskip("tf_keras")
    return writers.hf_tf_layout(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="session")
def chunked(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    pytest.importorskip("tf_keras")
    return writers.tf_keras_chunked(tmp_path_factory.mktemp("chunked"))


@pytest.fixture(scope="session")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain HDF5 corner cases written by h5py."""
    path = tmp_path_factory.mktemp("plain") / "corner.hdf5"
    with h5py.File(path, "w") as f:
        f["flags"] = np.array([True, False, True])
        f["half"] = np.arange(6, dtype=np.float16).reshape(2, 3)
        f["big_endian"] = np.arange(4, dtype=">f4")
        f.create_dataset("vlen_text", data=["a", "bcd"], dtype=h5py.string_dtype())
        f["fixed_bytes"] = np.array([b"xy", b"z"], dtype="S2")
        f["scalar_text"] = b"hello"
        f["scalar_int"] = np.int64(7)
        f.create_dataset(
            "enum",
            data=np.array([0, 1, 1], dtype=np.int8),
            dtype=h5py.enum_dtype({"RED": 0, "GREEN": 1}, basetype="i1"),
        )
        f.create_dataset(
            "gz/chunked", data=np.arange(100, dtype=np.int32).reshape(10, 10), chunks=(5, 5), compression="gzip"
        )
        f["table"] = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    return path


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (bit-exact; NaN-safe)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _listing(f: h5py.File) -> dict[str, tuple[tuple[int, ...], str]]:
    """h5py's own view: dataset path -> (shape, dtype name; Keras' bfloat16 attribute applied)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            dtype = "bfloat16" if obj.attrs.get("dtype") == "bfloat16" else obj.dtype.name
            out[name] = (obj.shape, dtype)

    f.visititems(visit)
    return out


def _h5_listing(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    with h5py.File(path, "r") as f:
        return _listing(f)


def _archive_listing(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
        return _listing(f)


def _reader_listing(ckpt: bridge.Checkpoint) -> dict[str, tuple[tuple[int, ...], str]]:
    return {name: (r.shape, r.dtype) for name, r in ckpt.items()}


def _check_values(ckpt: bridge.Checkpoint, expected: dict[str, np.ndarray]) -> None:
    for name, value in expected.items():
        got = ckpt[name].numpy()
        assert _same(got, value), name
        assert ckpt[name].nbytes == value.nbytes, name


# --------------------------------------------------------------------------- Keras 3


def test_keras3_weights_h5(k3: Written) -> None:
    path = k3.files["weights"]
    with bridge.load(path) as ckpt:
        assert (ckpt.format, ckpt.framework) == ("keras-weights", "keras")
        # Names, shapes and dtypes are exactly h5py's own listing, and every dataset is
        # pinned to the variable it came from.
        assert _reader_listing(ckpt) == _h5_listing(path)
        assert set(ckpt) == set(k3.expected)
        _check_values(ckpt, k3.expected)
        assert len(ckpt.of_kind("model")) == k3.facts["n_model_weights"]
        # Keras 3.15 saves optimizer.variables in order: vars/0 `iteration`, vars/1
        # `learning_rate`, then one momentum and one velocity per trainable variable.
        assert k3.facts["optimizer_names"][:2] == ["iteration", "learning_rate"]
        assert ckpt["optimizer/vars/0"].kind == "counter"
        assert ckpt["optimizer/vars/0"].dtype == "int64"
        assert {r.kind for n, r in ckpt.items() if n.startswith("optimizer/") and n != "optimizer/vars/0"} == {
            "optimizer"
        }
        assert {r.kind for n, r in ckpt.items() if n.startswith("layers/")} == {"model"}
        # Variable names are not in the file: no made-up paths.
        assert all(r.path is None for r in ckpt.values())
        # Within a vars group, records come in the variable order (0, 1, 2 ... 10, not 0, 1, 10).
        order = [n for n in ckpt if n.startswith("optimizer/")]
        assert order == [f"optimizer/vars/{i}" for i in range(len(order))]
        # The BatchNormalization group holds trainable then non-trainable variables.
        assert k3.facts["weight_names"]["layers/batch_normalization"] == [
            "gamma",
            "beta",
            "moving_mean",
            "moving_variance",
        ]
        # Group names are class-derived; the layer name lives in the vars group's `name` attribute.
        assert ckpt.metadata["object_names"]["layers/embedding/vars"] == "emb"
        assert ckpt.metadata["object_names"]["layers/lstm/cell/vars"] == "lstm_cell"
        assert ckpt.metadata["model_name"] == "tiny"
        assert str(path) in ckpt["layers/dense/vars/0"].location


def test_keras3_archive(k3: Written) -> None:
    path = k3.files["keras"]
    with zipfile.ZipFile(path) as zf:
        # Keras 3.15 stores every member uncompressed: the reader windows into the zip.
        assert zf.getinfo("model.weights.h5").compress_type == zipfile.ZIP_STORED
        config = json.loads(zf.read("config.json"))
    with bridge.load(path) as ckpt:
        assert (ckpt.format, ckpt.framework) == ("keras", "keras")
        assert _reader_listing(ckpt) == _archive_listing(path)
        assert set(ckpt) == set(k3.expected)
        _check_values(ckpt, k3.expected)
        assert ckpt["optimizer/vars/0"].kind == "counter"
        assert ckpt.metadata["keras_version"] == k3.facts["keras_version"]
        assert ckpt.metadata["model_class"] == config["class_name"] == "Functional"
        assert ckpt.metadata["model_name"] == "tiny"
        assert ckpt.metadata["compressed"] is False
        assert "model.weights.h5" in ckpt["layers/dense/vars/0"].location


def test_keras3_archive_deflated(k3: Written, tmp_path: Path) -> None:
    """A repacked (deflated) .keras reads the same values."""
    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(k3.files["keras"]) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras"
        assert ckpt.metadata["compressed"] is True
        _check_values(ckpt, k3.expected)


def test_keras3_archive_deflated_past_the_inflate_limit(
    k3: Written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed member is inflated to a temp file: never more than BRIDGE_MAX_INFLATE beyond what is stored."""
    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(k3.files["keras"]) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info) + (b"\0" * 4096 if info.filename.endswith(".h5") else b""))
    monkeypatch.setenv("BRIDGE_MAX_INFLATE", "1KB")
    with pytest.raises(SizeLimitExceeded, match="inflate") as caught:
        with bridge.load(path) as ckpt:
            ckpt["layers/dense/vars/0"].numpy()
    assert "model.weights.h5" in str(caught.value) and "BRIDGE_MAX_INFLATE" in str(caught.value)


def test_keras3_half_precision(k3_half: Written) -> None:
    dtype = next(iter(k3_half.facts["variable_dtypes"]))
    assert k3_half.facts["variable_dtypes"] == {dtype}
    with h5py.File(k3_half.files["weights"], "r") as f:
        ds = f["layers/dense/vars/0"]
        if dtype == "bfloat16":
            # Keras 3.15: bfloat16 is an HDF5 2-byte opaque type plus attrs["dtype"].
            assert (ds.dtype.kind, ds.dtype.itemsize, ds.attrs["dtype"]) == ("V", 2, "bfloat16")
        else:
            assert ds.dtype == np.float16 and "dtype" not in ds.attrs
    for key, fmt in (("weights", "keras-weights"), ("keras", "keras")):
        with bridge.load(k3_half.files[key]) as ckpt:
            assert ckpt.format == fmt
            assert set(ckpt) == set(k3_half.expected)
            _check_values(ckpt, k3_half.expected)
            assert ckpt["layers/dense/vars/0"].dtype == dtype
            numpy_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
            assert ckpt["layers/dense/vars/0"].numpy().dtype == np.dtype(numpy_dtype)
            assert ckpt["optimizer/vars/2"].dtype == dtype  # Adam slots take the variable's dtype
            assert ckpt["optimizer/vars/0"].kind == "counter"


def test_keras3_legacy_h5(k3_legacy: Written) -> None:
    """Keras 3's model.save("x.h5") writes the Keras 2 layout with variable paths as weight names."""
    path = k3_legacy.files["h5"]
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert ckpt.metadata["layout"] == "keras2-full"
        assert ckpt.metadata["keras_version"].startswith("3.")
        assert _reader_listing(ckpt) == _h5_listing(path)
        assert set(ckpt) == set(k3_legacy.expected)
        _check_values(ckpt, k3_legacy.expected)
        for name, record_path in k3_legacy.paths.items():
            assert ckpt[name].path == record_path
        assert ckpt["optimizer_weights/adam/iteration"].kind == "counter"
        assert ckpt["optimizer_weights/adam/learning_rate"].kind == "optimizer"
        momentum = ckpt["optimizer_weights/adam/seq_dense_kernel_momentum"]
        assert (momentum.kind, momentum.slot_name) == ("optimizer", "momentum")
        assert momentum.slot_of == "model_weights/dense/seq/dense/kernel"


def test_keras3_sharded_weights(k3_sharded: Written, tmp_path: Path) -> None:
    index = k3_sharded.files["index"]
    shards = [p for key, p in k3_sharded.files.items() if key != "index"]
    assert len(shards) >= 2
    listing: dict[str, tuple[tuple[int, ...], str]] = {}
    for shard in shards:
        listing.update(_h5_listing(shard))
    with bridge.load(index) as ckpt:
        assert ckpt.format == "keras-weights"
        assert ckpt.metadata["layout"] == "keras3-sharded"
        assert ckpt.metadata["shards"] == [p.name for p in shards]
        assert ckpt.files == [str(index), *map(str, shards)]
        assert _reader_listing(ckpt) == listing
        assert set(ckpt) == set(k3_sharded.expected)
        _check_values(ckpt, k3_sharded.expected)
    # Each shard alone is a Keras 3 weights file too (the second one has no root `vars`).
    with bridge.load(shards[-1]) as ckpt:
        assert ckpt.format == "keras-weights" and len(ckpt) > 0
    # A missing shard is named.
    lonely = tmp_path / index.name
    shutil.copy(index, lonely)
    with pytest.raises(CheckpointNotFound, match=shards[0].name):
        bridge.load(lonely)


# --------------------------------------------------------------------------- tf-keras (Keras 2)


def test_tf_keras_full_model(tfk: Written) -> None:
    path = tfk.files["full"]
    with bridge.load(path) as ckpt:
        assert (ckpt.format, ckpt.framework) == ("keras-h5", "keras")
        assert _reader_listing(ckpt) == _h5_listing(path)
        assert set(ckpt) == set(tfk.expected)
        _check_values(ckpt, tfk.expected)
        for name, record_path in tfk.paths.items():
            if name in ckpt:
                assert ckpt[name].path == record_path, name
        # Records follow Keras' order: layer_names, then each layer's weight_names.
        model_names = [n for n in tfk.expected if n.startswith("model_weights/")]
        assert [r.name for r in ckpt.of_kind("model")] == model_names
        assert ckpt["model_weights/lstm/lstm/lstm_cell/kernel:0"].path == "lstm/lstm_cell/kernel"
        # tf-keras 2.21's optimizer: `iteration`, then `Adam/m/<var>` and `Adam/v/<var>` slots.
        assert tfk.facts["optimizer_names"][0] == "iteration:0"
        assert ckpt["optimizer_weights/iteration:0"].kind == "counter"
        slot = ckpt["optimizer_weights/Adam/m/dense/kernel:0"]
        assert (slot.kind, slot.slot_name, slot.slot_of) == ("optimizer", "m", "model_weights/dense/dense/kernel:0")
        assert {r.kind for n, r in ckpt.items() if n.startswith("optimizer_weights/Adam/")} == {"optimizer"}
        assert all(r.slot_of in ckpt for r in ckpt.of_kind("optimizer"))
        assert ckpt.metadata["layout"] == "keras2-full"
        assert ckpt.metadata["keras_version"] == tfk.facts["keras_version"]
        assert ckpt.metadata["backend"] == "tensorflow"
        assert ckpt.metadata["model_class"] == "Functional"
        assert ckpt.metadata["model_name"] == "tiny"


def test_tf_keras_weights_only(tfk: Written) -> None:
    path = tfk.files["weights"]
    expected = tfk.facts["weights_only"]
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert ckpt.metadata["layout"] == "keras2-weights"
        assert _reader_listing(ckpt) == _h5_listing(path)
        assert list(ckpt) == list(expected)
        _check_values(ckpt, expected)
        assert ckpt["batch_normalization/batch_normalization/moving_mean:0"].path == ("batch_normalization/moving_mean")
        assert {r.kind for r in ckpt.values()} == {"model"}


def test_tf_keras_archive(tfk: Written) -> None:
    """tf-keras' .keras: the Keras 3 layout, plus metric accumulators under `metrics/`."""
    path = tfk.files["keras"]
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras"
        assert ckpt.metadata["keras_version"] == tfk.facts["keras_version"]
        assert _reader_listing(ckpt) == _archive_listing(path)
        for i, value in enumerate(tfk.facts["dense_weights"]):
            assert _same(ckpt[f"layers/dense/vars/{i}"].numpy(), value)
        # tf-keras 2.21 saves the loss tracker (Mean: total, count) too: a metric's state, not a weight.
        assert {r.kind for n, r in ckpt.items() if n.startswith("metrics/")} == {"metric"}
        assert ckpt["optimizer/vars/0"].kind == "counter"
        assert len(ckpt.of_kind("model")) == len(tfk.facts["weights_only"])


def test_hf_tf_model_h5(hf: Written) -> None:
    path = hf.files["h5"]
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert ckpt.metadata["layout"] == "hf-tf"
        assert ckpt.metadata["model_scope"] == "tf_bert_model"
        assert _reader_listing(ckpt) == _h5_listing(path)
        assert list(ckpt) == list(hf.expected)
        _check_values(ckpt, hf.expected)
        query = "bert/tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0"
        assert ckpt[query].path == "tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel"
        assert ckpt["bert/tf_bert_model/bert/embeddings/word_embeddings/weight:0"].shape == (10, 4)
        for name, record_path in hf.paths.items():
            assert ckpt[name].path == record_path


def test_hf_sharded_layout(tmp_path: Path) -> None:
    """transformers' sharded TF writer (modeling_tf_utils.save_pretrained with max_shard_size) puts
    datasets straight under the root, named by the weight name minus its first scope, and lists them
    in the root `layer_names`; written here with h5py the way that code does."""
    path = tmp_path / "tf_model-00001-of-00002.h5"
    names = ["bert/embeddings/word_embeddings/weight:0", "bert/pooler/dense/kernel:0"]
    with h5py.File(path, "w") as f:
        for i, name in enumerate(names):
            f.create_dataset(name, data=np.full((2, 2), i, dtype=np.float32))
        f.attrs["layer_names"] = [n.encode("utf8") for n in names]
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert ckpt.metadata["layout"] == "hf-tf"
        assert list(ckpt) == names
        assert ckpt[names[1]].path == "bert/pooler/dense/kernel"
        assert ckpt[names[1]].numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_chunked_weight_names(chunked: Written) -> None:
    path = chunked.files["h5"]
    with h5py.File(path, "r") as f:
        # tf-keras split the list: the reader must join weight_names0, weight_names1, ...
        assert {"weight_names0", "weight_names1"} <= set(f["many"].attrs)
        assert "weight_names" not in f["many"].attrs
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert list(ckpt) == list(chunked.expected)
        assert all(r.path is not None for r in ckpt.values())
        _check_values(ckpt, chunked.expected)


# --------------------------------------------------------------------------- third-party files


def _variables(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    rows = read_variables_txt(path.with_name(path.name + ".VARIABLES.txt"))
    return {name: (dtype, shape) for name, dtype, shape in rows}


def test_keras_bert_fit_h5(shared_fixtures: Path) -> None:
    """Keras 2.2.4 full model (keras-bert) with AdamWarmup optimizer_weights."""
    path = shared_fixtures / "keras-bert-fit-h5" / "test_bert_fit.h5"
    listed = _variables(path)
    with bridge.load(path) as ckpt:
        assert ckpt.format == "keras-h5"
        assert len(ckpt) == len(listed) == 825
        assert {n: (r.dtype, r.shape) for n, r in ckpt.items()} == listed
        assert ckpt.metadata["keras_version"] == "2.2.4"
        assert ckpt.metadata["layout"] == "keras2-full"
        assert ckpt.metadata["model_class"] == "Model"
        assert ckpt["optimizer_weights/AdamWarmup/iterations:0"].kind == "counter"
        with h5py.File(path, "r") as f:
            for name, record in ckpt.items():
                if name.startswith("model_weights/"):
                    assert record.kind == "model", name
                    assert record.path is not None and not record.path.endswith(":0")
                elif name != "optimizer_weights/AdamWarmup/iterations:0":
                    assert record.kind == "optimizer", name
                value = record.numpy()
                assert value.shape == record.shape and value.dtype.name == record.dtype, name
                assert _same(value, f[name][()]), name  # all 825, bit for bit, against h5py
        emb = ckpt["model_weights/Embedding-Token/Embedding-Token/embeddings:0"]
        assert emb.path == "Embedding-Token/embeddings"


def test_elmo_plain_hdf5(shared_fixtures: Path) -> None:
    """bilm-tf's dumped ELMo weights: plain HDF5, no Keras markers."""
    path = shared_fixtures / "allennlp-fixtures" / "elmo" / "lm_weights.hdf5"
    listed = _variables(path)
    with bridge.load(path) as ckpt:
        assert (ckpt.format, ckpt.framework) == ("hdf5", "hdf5")
        assert {n: (r.dtype, r.shape) for n, r in ckpt.items()} == listed
        assert len(ckpt) == len(listed)
        assert {r.kind for r in ckpt.values()} == {"model"}
        with h5py.File(path, "r") as f:
            for name, record in ckpt.items():
                assert _same(record.numpy(), f[name][()]), name


def test_plain_hdf5_dtypes(plain: Path) -> None:
    with bridge.load(plain) as ckpt:
        assert ckpt.format == "hdf5"
        got = {n: r.dtype for n, r in ckpt.items()}
        assert got == {
            "big_endian": "float32",
            "enum": "int8",
            "fixed_bytes": "string",
            "flags": "bool",
            "gz/chunked": "int32",
            "half": "float16",
            "scalar_int": "int64",
            "scalar_text": "string",
            "vlen_text": "string",
        }
        # A compound (table) dataset is not a tensor: listed as skipped, with the reason.
        assert "compound" in ckpt.metadata["skipped"]["table"]
        assert ckpt["flags"].numpy().tolist() == [True, False, True]
        big = ckpt["big_endian"].numpy()
        assert big.dtype == np.dtype("float32") and big.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert ckpt["vlen_text"].numpy().tolist() == [b"a", b"bcd"]
        assert ckpt["fixed_bytes"].numpy().tolist() == [b"xy", b"z"]
        assert ckpt["fixed_bytes"].nbytes == 4
        text = ckpt["scalar_text"].numpy()
        assert text.shape == () and text.dtype == object and text.item() == b"hello"
        assert ckpt["scalar_int"].numpy().shape == ()
        assert ckpt["enum"].numpy().tolist() == [0, 1, 1]
        assert _same(ckpt["gz/chunked"].numpy(), np.arange(100, dtype=np.int32).reshape(10, 10))
        assert "@" not in ckpt["gz/chunked"].location  # chunked: no single offset
        assert "@" in ckpt["half"].location


def test_userblock_hdf5(tmp_path: Path) -> None:
    """The HDF5 signature may sit after a user block (512, 1024, ...), not at offset 0."""
    path = tmp_path / "ub.data"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f["x"] = np.arange(3, dtype=np.float64)
    with open(path, "r+b") as fh:
        fh.write(b"not hdf5 at all")
    with bridge.load(path) as ckpt:
        assert ckpt.format == "hdf5"
        assert ckpt.metadata["userblock"] == 1024
        assert ckpt["x"].numpy().tolist() == [0.0, 1.0, 2.0]


def test_sniffers_are_specific(k3: Written, tfk: Written, plain: Path, tmp_path: Path) -> None:
    from tf_side import hdf5_plain, keras2_h5, keras3_weights, keras_archive

    other = tmp_path / "model.h5"
    other.write_bytes(b"\x00" * 64)
    cases = {
        k3.files["keras"]: (True, False, False, False),
        k3.files["weights"]: (False, True, False, True),
        tfk.files["full"]: (False, False, True, True),
        tfk.files["weights"]: (False, False, True, True),
        plain: (False, False, False, True),
        other: (False, False, False, False),  # extension alone claims nothing
        tmp_path: (False, False, False, False),
        tmp_path / "missing.h5": (False, False, False, False),
    }
    for path, want in cases.items():
        got = (
            keras_archive.sniff_keras_archive(path),
            keras3_weights.sniff_keras3_weights(path),
            keras2_h5.sniff_legacy_h5(path),
            hdf5_plain.sniff_plain_hdf5(path),
        )
        assert got == want, path


# --------------------------------------------------------------------------- laziness


def test_opening_reads_no_values(
    k3: Written, tfk: Written, hf: Written, plain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [k3.files["keras"], k3.files["weights"], tfk.files["full"], tfk.files["weights"], hf.files["h5"], plain]
    opened = []
    with monkeypatch.context() as patch:
        for attr in ("__getitem__", "read_direct", "__array__"):

            def refuse(*args: object, _attr: str = attr, **kwargs: object) -> None:
                raise AssertionError(f"Dataset.{_attr} called while opening")

            patch.setattr(h5py.Dataset, attr, refuse)
        for path in paths:
            ckpt = bridge.load(path)
            assert all(r.nbytes >= 0 and r.shape is not None for r in ckpt.values())
            opened.append(ckpt)
    for ckpt in opened:  # values come on demand, from the same open file
        for record in ckpt.values():
            record.numpy()
        ckpt.close()


def test_close_and_read_again(tfk: Written) -> None:
    ckpt = bridge.load(tfk.files["weights"])
    name = "dense/dense/kernel:0"
    before = ckpt[name].numpy()
    ckpt.close()
    # A value asked for after close() reopens the file rather than failing.
    assert _same(ckpt[name].numpy(), before)


# --------------------------------------------------------------------------- bad input


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("which", ["tf_keras_full", "keras3_weights"])
def test_truncated_h5(which: str, k3: Written, tfk: Written, tmp_path: Path) -> None:
    src = tfk.files["full"] if which == "tf_keras_full" else k3.files["weights"]
    bad = _truncate(src, tmp_path / f"cut_{src.name}", 0.6)
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(bad)
    message = str(err.value)
    assert bad.name in message and "runcated" in message and "Re-download" in message
    # Passing the right --format gives the same diagnosis.
    fmt = "keras-h5" if which == "tf_keras_full" else "keras-weights"
    with pytest.raises(CorruptCheckpoint, match=bad.name):
        bridge.load(bad, format=fmt)


def test_truncated_keras_archive(k3: Written, tmp_path: Path) -> None:
    bad = _truncate(k3.files["keras"], tmp_path / "cut.keras", 0.5)
    with pytest.raises(CorruptCheckpoint, match="cut.keras"):
        bridge.load(bad)


def test_keras_archive_with_truncated_weights(k3: Written, tmp_path: Path) -> None:
    bad = tmp_path / "inner_cut.keras"
    with zipfile.ZipFile(k3.files["keras"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[: len(data) // 2] if info.filename == "model.weights.h5" else data)
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(bad)
    assert "inner_cut.keras!model.weights.h5" in str(err.value)


def test_damaged_chunk(tmp_path: Path) -> None:
    """Bytes damaged inside a compressed chunk: opening works, reading names the tensor."""
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("w", data=np.arange(1000, dtype=np.float32), chunks=(500,), compression="gzip")
        f["ok"] = np.ones(3, dtype=np.float32)
    with h5py.File(path, "r") as f:
        chunk = f["w"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset : chunk.byte_offset + chunk.size] = b"\xff" * chunk.size
    path.write_bytes(bytes(data))
    with bridge.load(path) as ckpt:
        assert ckpt["ok"].numpy().tolist() == [1.0, 1.0, 1.0]
        with pytest.raises(CorruptCheckpoint, match="damaged.h5.*`w`"):
            ckpt["w"].numpy()


def test_missing_filter_is_reported(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset needing a filter this h5py lacks (blosc, zstd... from hdf5plugin) lists fine
    and says what to install when read; simulated by hiding gzip from the filter registry."""
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != h5py.h5z.FILTER_DEFLATE)
    with bridge.load(plain) as ckpt:
        assert ckpt["gz/chunked"].shape == (10, 10)
        with pytest.raises(UnsupportedFeature, match="hdf5plugin"):
            ckpt["gz/chunked"].numpy()
        assert ckpt["half"].numpy().shape == (2, 3)


def test_keras_archive_without_weights(k3: Written, tmp_path: Path) -> None:
    bad = tmp_path / "no_weights.keras"
    with zipfile.ZipFile(k3.files["keras"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in ("metadata.json", "config.json"):
            dst.writestr(name, src.read(name))
    from bridge import formats

    assert formats.detect(bad).name == "keras"
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(bad)
    message = str(err.value)
    assert "model.weights.h5" in message and "no_weights.keras" in message and "Re-save" in message


def test_wrong_format_flag(shared_fixtures: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("just text, not HDF5\n")
    for fmt in ("hdf5", "keras-h5", "keras-weights", "keras"):
        with pytest.raises(FormatNotRecognized, match="notes.h5"):
            bridge.load(text, format=fmt)
    elmo = shared_fixtures / "allennlp-fixtures" / "elmo" / "lm_weights.hdf5"
    with pytest.raises(FormatNotRecognized, match="layer_names"):
        bridge.load(elmo, format="keras-h5")
    with pytest.raises(CheckpointNotFound):
        bridge.load(tmp_path / "missing.h5", format="keras-h5")


# --------------------------------------------------------------------------- no frameworks


def test_reads_without_tensorflow_keras_or_torch(k3: Written, tfk: Written, hf: Written, tmp_path: Path) -> None:
    files = [k3.files["weights"], k3.files["keras"], tfk.files["full"], tfk.files["weights"], hf.files["h5"]]
    script = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        sys.modules["tf_keras"] = None
        sys.modules["torch"] = None
        import json
        import bridge
        out = {}
        for path in sys.argv[1:]:
            with bridge.load(path) as ckpt:
                total = sum(int(r.numpy().size) for r in ckpt.values())
                out[path] = [ckpt.format, len(ckpt), total]
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    formats = [result[str(p)][0] for p in files]
    assert formats == ["keras-weights", "keras", "keras-h5", "keras-h5", "keras-h5"]
    assert result[str(tfk.files["full"])][1] == len(tfk.expected)
    assert all(count > 0 and total > 0 for _, count, total in result.values())


@pytest.mark.parametrize("module", ["h5io", "keras3_weights", "keras_archive", "keras2_h5", "hdf5_plain"])
def test_module_imports_no_framework(module: str) -> None:
    source = (REPO / "tf_side" / f"{module}.py").read_text()
    for name in ("tensorflow", "keras", "tf_keras", "torch"):
        # Whole names only: `from tf_side.keras3_weights import keras3_records` imports no Keras.
        assert not re.search(rf"\b(import|from) {name}\b", source), name
