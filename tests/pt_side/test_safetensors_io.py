"""The native safetensors reader against files written by the real safetensors library and transformers."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, UnsupportedFeature
from pt_side import safetensors_io


def torch_bytes(t) -> bytes:
    """The raw little-endian bytes of a tensor, whatever its dtype (bf16, float8, bool...)."""
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def torch_dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


@pytest.fixture(scope="module")
def every_dtype(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 5, generator=g)
    return {
        "f32": base,
        "f16": base.to(torch.float16),
        "bf16": base.to(torch.bfloat16),
        "f64": base.to(torch.float64),
        "f8": base.to(torch.float8_e4m3fn),
        "f8_e5m2": base.to(torch.float8_e5m2),
        "i8": torch.randint(-128, 127, (4,), dtype=torch.int8, generator=g),
        "i16": torch.randint(-(2**15), 2**15 - 1, (2, 3), dtype=torch.int16, generator=g),
        "i32": torch.randint(-(2**31), 2**31 - 1, (7,), dtype=torch.int32, generator=g),
        "i64": torch.tensor([-(2**62), 1, 2**62]),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "encoder.layer.0.weight": base[:2].clone(),
    }


@pytest.fixture(scope="module")
def st_file(tmp_path_factory, every_dtype) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("st") / "every.safetensors"
    save_file(every_dtype, str(path), metadata={"format": "pt", "note": "hello"})
    return path


def test_every_dtype_equals_safe_open(st_file, every_dtype):
    from safetensors import safe_open

    ckpt = bridge.load(st_file)
    assert ckpt.format == "safetensors" and ckpt.framework == "pytorch"
    with safe_open(str(st_file), framework="pt") as f:
        assert sorted(ckpt) == sorted(f.keys())
        for name in f.keys():
            t = f.get_tensor(name)
            rec = ckpt[name]
            assert rec.shape == tuple(t.shape), name
            assert rec.dtype == torch_dtype_name(t), name
            assert rec.nbytes == t.numel() * t.element_size()
            value = rec.numpy()
            assert value.shape == tuple(t.shape)
            assert value.tobytes() == torch_bytes(t), name  # bit-exact
            assert torch_bytes(every_dtype[name]) == torch_bytes(t)
    assert ckpt.metadata["metadata"] == {"format": "pt", "note": "hello"}
    assert ckpt.metadata["shards"] == ["every.safetensors"]
    assert ckpt.tied == []
    assert ckpt["scalar"].numpy() == np.float32(3.5)
    assert ckpt["empty"].numpy().shape == (0, 4)
    assert ckpt["encoder.layer.0.weight"].kind == "model"
    assert ckpt["f32"].location.startswith("every.safetensors @ ")
    ckpt.close()


def test_values_are_read_only_memory_maps(st_file):
    with bridge.load(st_file) as ckpt:
        value = ckpt["f32"].numpy()
        assert not value.flags.writeable
        assert isinstance(value.base, np.memmap) or isinstance(value, np.memmap)


def test_sniff_by_header_when_extension_is_unusual(st_file, tmp_path):
    odd = tmp_path / "weights.data"
    shutil.copy(st_file, odd)
    assert safetensors_io.sniff(odd)
    assert bridge.load(odd).format == "safetensors"
    not_st = tmp_path / "notes.safetensors"
    not_st.write_bytes(b"hello world, not a header")
    assert not safetensors_io.sniff(not_st)
    other = tmp_path / "random.data"
    other.write_bytes(struct.pack("<Q", 5) + b"{abc}")
    assert not safetensors_io.sniff(other)


# ---------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def bert(torch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return transformers.BertModel(config).eval()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, bert) -> Path:
    out = tmp_path_factory.mktemp("bert_st")
    bert.save_pretrained(out, max_shard_size="20KB")
    return out


def test_sharded_transformers_folder(bert_dir, bert):
    index = json.loads((bert_dir / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1, "the fixture should be sharded"
    assert safetensors_io.sniff(bert_dir)
    expected = {k: v for k, v in bert.state_dict().items()}
    for target in (bert_dir, bert_dir / "model.safetensors.index.json"):
        with bridge.load(target) as ckpt:
            assert ckpt.format == "safetensors"
            assert set(ckpt) == set(index["weight_map"]) == set(expected)
            for name, t in expected.items():
                rec = ckpt[name]
                assert rec.shape == tuple(t.shape) and rec.dtype == torch_dtype_name(t)
                assert rec.numpy().tobytes() == torch_bytes(t), name
                assert rec.location.split(" @ ")[0] == index["weight_map"][name]
            assert sorted(ckpt.metadata["shards"]) == shards
            assert ckpt.metadata["config"]["model_type"] == "bert"
            assert ckpt.metadata["index_metadata"]["total_size"] == sum(
                t.numel() * t.element_size() for t in expected.values()
            )
            assert len(ckpt.files) == len(shards) + 1


def test_one_shard_alone(bert_dir):
    shard = sorted(bert_dir.glob("model-*.safetensors"))[0]
    with bridge.load(shard) as ckpt:
        assert 0 < len(ckpt) and ckpt.metadata["config"]["model_type"] == "bert"


def test_missing_shard_names_shard_and_index(bert_dir, tmp_path):
    copy = tmp_path / "bert"
    shutil.copytree(bert_dir, copy)
    victim = sorted(copy.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(CheckpointNotFound) as err:
        bridge.load(copy)
    assert victim.name in str(err.value) and "model.safetensors.index.json" in str(err.value)


# ---------------------------------------------------------------------------- damage


def write_raw(path: Path, header: dict, data: bytes, *, length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def test_truncated_header(st_file, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(st_file.read_bytes()[:40])
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(cut)
    assert "cut.safetensors" in str(err.value) and "header" in str(err.value)


def test_truncated_data_names_the_tensor(st_file, tmp_path):
    data = st_file.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    cut = tmp_path / "short.safetensors"
    cut.write_bytes(data[:-3])
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(cut)
    assert f"`{last}`" in str(err.value) and "short.safetensors" in str(err.value)


def test_offsets_past_the_file(tmp_path):
    path = write_raw(
        tmp_path / "bad.safetensors",
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "big": {"dtype": "F32", "shape": [100], "data_offsets": [8, 408]},
        },
        bytes(16),
    )
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(path)
    assert "`big`" in str(err.value) and "run past the data area" in str(err.value)


@pytest.mark.parametrize(
    "entries, data, needle",
    [
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "needs 12"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            bytes(12),
            "overlaps",
        ),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "gap"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8), "data area has 8"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "shape"),
        ({"a": [1, 2]}, b"", "not an object"),
    ],
)
def test_inconsistent_headers(tmp_path, entries, data, needle):
    path = write_raw(tmp_path / "x.safetensors", entries, data)
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(path)
    assert needle in str(err.value) and "x.safetensors" in str(err.value)


def test_header_length_overruns_file(tmp_path):
    path = write_raw(tmp_path / "long.safetensors", {}, b"", length=5000)
    with pytest.raises(CorruptCheckpoint, match="Truncated safetensors header"):
        bridge.load(path)


def test_unknown_dtype_code(tmp_path):
    path = write_raw(
        tmp_path / "f4.safetensors", {"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, bytes(1)
    )
    with pytest.raises(UnsupportedFeature, match="F4"):
        bridge.load(path)
