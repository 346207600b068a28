"""Format pieces of the bundle reader: protobuf varints, masked CRC32C, Snappy, OrderedCode slice keys,
and hand-built tables for what TF does not write here (big-endian data, tiny blocks, compressed or
newer-version indexes); TensorFlow only as the oracle of the Snappy-compressed table."""

from __future__ import annotations

import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import bridge
from bridge.core.errors import CorruptCheckpoint, UnsupportedFeature
from tf_side import proto
from tf_side.bundle.index import Extent
from tf_side.bundle.slices import _signed_num_increasing, encode_slice_key
from tf_side.sstable import MAGIC, SnappyError, crc32c, mask_crc, snappy_decompress, unmask_crc

# --- protobuf ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)])
def test_varint_round_trip(value: int) -> None:
    data = proto.encode_varint(value)
    decoded, end = proto.decode_varint(data, 0)
    assert end == len(data)
    assert proto.to_int64(decoded) == value


def test_fields_and_errors() -> None:
    message = proto.encode_int_field(1, 7) + proto.encode_bytes_field(2, "ab") + proto.encode_fixed32_field(6, 9)
    assert list(proto.iter_fields(message)) == [(1, 0, 7), (2, 2, b"ab"), (6, 5, 9)]
    with pytest.raises(proto.DecodeError, match="runs past the end"):
        list(proto.iter_fields(proto.encode_bytes_field(2, "abc")[:-1]))
    with pytest.raises(proto.DecodeError, match="truncated varint"):
        proto.decode_varint(b"\x80\x80", 0)
    with pytest.raises(proto.DecodeError, match="wire type 3"):
        list(proto.iter_fields(b"\x0b"))


# --- CRC and Snappy -------------------------------------------------------------------------


def test_crc32c_and_mask() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value, not zlib's
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    for value in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert unmask_crc(mask_crc(value)) == value
    assert mask_crc(0) == 0xA282EAD8


def test_snappy_literals_and_copies() -> None:
    # "ab" literal, then a copy of length 8 at distance 2 (overlapping: repeats "ab"),
    # then a 2-byte-offset copy of length 3 at distance 10.
    block = bytes([13, 0x04]) + b"ab" + bytes([0x11, 0x02]) + bytes([(3 - 1) << 2 | 2, 10, 0])
    assert snappy_decompress(block) == b"ababababab" + b"aba"
    long_literal = bytes(range(200))
    block = proto.encode_varint(200) + bytes([60 << 2, 199]) + long_literal
    assert snappy_decompress(block) == long_literal
    with pytest.raises(SnappyError, match="copy offset"):
        snappy_decompress(bytes([5, 0x11, 0x02]))
    with pytest.raises(SnappyError, match="preamble says"):
        snappy_decompress(bytes([3, 0x04]) + b"ab")


# --- slice keys --------------------------------------------------------------------------------


def test_signed_num_increasing_matches_tensorflow() -> None:
    # Bytes seen in keys that TF 2.21 wrote for fixed_size_partitioner slices.
    assert _signed_num_increasing(0) == b"\x80"
    assert _signed_num_increasing(-1) == b"\x7f"
    assert _signed_num_increasing(67) == b"\xc0C"
    assert _signed_num_increasing(6667) == b"\xda\x0b"
    assert _signed_num_increasing(13334) == b"\xe04\x16"
    key = encode_slice_key(b"part/big", (Extent(13334, 6666),))
    assert key == b"\x00part/big\x00\x01\x01\x01\xe04\x16\xda\n"
    key = encode_slice_key(b"part/emb", (Extent(67, 67), Extent(0, None)))
    assert key == b"\x00part/emb\x00\x01\x01\x02\xc0C\xc0C\x80\x7f"


def test_signed_num_increasing_sorts_like_numbers() -> None:
    values = sorted({0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**40, -(2**40), 2**62, 2**63 - 1, -(2**63)})
    values += [2**k + d for k in range(1, 63) for d in (-1, 0) if 2**k + d < 2**63]
    values += [-v for v in values]
    values = sorted(set(v for v in values if -(2**63) <= v < 2**63))
    codes = [_signed_num_increasing(v) for v in values]
    assert codes == sorted(codes)
    assert max(len(c) for c in codes) == 10


def test_slice_key_escapes_names() -> None:
    assert encode_slice_key(b"a\x00b\xff", ()) == b"\x00a\x00\xffb\xff\x00\x00\x01\x00"


# --- hand-built bundles --------------------------------------------------------------------


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 4) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += proto.encode_varint(shared) + proto.encode_varint(len(key) - shared)
        out += proto.encode_varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def _snappy_literal(data: bytes) -> bytes:
    """A valid Snappy stream of literals only (no compressor needed)."""
    out = bytearray(proto.encode_varint(len(data)))
    for start in range(0, len(data), 256):
        chunk = data[start : start + 256]
        out += bytes([60 << 2, len(chunk) - 1]) + chunk
    return bytes(out)


def build_table(entries: list[tuple[bytes, bytes]], *, per_block: int = 1000, compression: int = 0) -> bytes:
    """A LevelDB table as TF writes it: data blocks, an empty metaindex, an index, a footer."""
    out = bytearray()

    def add(contents: bytes, kind: int = 0) -> bytes:
        offset = len(out)
        stored = _snappy_literal(contents) if kind == 1 else contents
        out.extend(stored + bytes([kind]) + struct.pack("<I", mask_crc(crc32c(stored + bytes([kind])))))
        return proto.encode_varint(offset) + proto.encode_varint(len(stored))

    index = []
    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        index.append((chunk[-1][0], add(_block(chunk), compression)))
    meta_handle = add(_block([]))
    index_handle = add(_block(index))
    footer = (meta_handle + index_handle).ljust(40, b"\x00")
    out += footer + struct.pack("<II", MAGIC & 0xFFFFFFFF, MAGIC >> 32)
    return bytes(out)


def _header(endianness: int = 0, min_consumer: int = 0) -> bytes:
    version = proto.encode_int_field(1, 1) + proto.encode_int_field(2, min_consumer)
    return proto.encode_int_field(1, 1) + proto.encode_int_field(2, endianness) + proto.encode_bytes_field(3, version)


def _entry(dtype: int, shape: tuple[int, ...], offset: int, data: bytes, crc: int) -> bytes:
    dims = b"".join(proto.encode_bytes_field(2, proto.encode_int_field(1, d)) for d in shape)
    return (
        proto.encode_int_field(1, dtype)
        + proto.encode_bytes_field(2, dims)
        + proto.encode_int_field(4, offset)
        + proto.encode_int_field(5, len(data))
        + proto.encode_fixed32_field(6, mask_crc(crc))
    )


def _strings(values: list[bytes], order: str) -> tuple[bytes, int]:
    lengths = b"".join(proto.encode_varint(len(v)) for v in values)
    length_crc = crc32c(b"".join(struct.pack(order + "I", len(v)) for v in values))
    masked = struct.pack(order + "I", mask_crc(length_crc))
    body = b"".join(values)
    return lengths + masked + body, crc32c(body, crc32c(masked, length_crc))


def write_bundle(
    prefix: Path, tensors: dict[str, tuple[int, np.ndarray]], *, endianness: int = 0, **table: int
) -> None:
    """A one-shard bundle of ``name -> (TF dtype code, value)``, data in the given byte order."""
    order = ">" if endianness else "<"
    data, entries = bytearray(), [(b"", _header(endianness))]
    for name, (code, value) in sorted(tensors.items()):
        if code == 7:
            raw, crc = _strings(list(value.ravel()), order)
        else:
            raw = value.tobytes()
            if endianness and value.dtype.itemsize > 1:
                # Complex numbers swap per component; bfloat16 as a 2-byte integer.
                size = value.dtype.itemsize
                raw = value.view(f"f{size // 2}" if value.dtype.kind == "c" else f"u{size}").byteswap().tobytes()
            crc = crc32c(raw)
        entries.append((name.encode(), _entry(code, value.shape, len(data), raw, crc)))
        data += raw
    prefix.with_name(prefix.name + ".index").write_bytes(build_table(entries, **table))
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))


TENSORS = {
    "f32": (1, np.array([[1.5, -2.0], [3.25, 1e-30]], np.float32)),
    "i16": (5, np.array([-2, 300], np.int16)),
    "i64": (9, np.array(-(2**40), np.int64)),
    "c64": (8, np.array([1 + 2j], np.complex64)),
    "bf16": (14, np.array([1.0, -3.0], ml_dtypes.bfloat16)),
    "u8": (4, np.array([1, 255], np.uint8)),
    "s": (7, np.array([b"", b"x" * 200, b"end"], dtype=object)),
}


@pytest.mark.parametrize("endianness", [0, 1], ids=["little", "big"])
def test_hand_built_bundle(tmp_path: Path, endianness: int) -> None:
    write_bundle(tmp_path / "hand", TENSORS, endianness=endianness)
    with bridge.load(tmp_path / "hand") as ckpt:
        assert ckpt.metadata["endianness"] == ("big" if endianness else "little")
        assert list(ckpt) == sorted(TENSORS)
        for name, (_, expected) in TENSORS.items():
            value = ckpt[name].numpy()
            assert value.dtype == expected.dtype and value.shape == expected.shape
            if expected.dtype == object:
                assert list(value.ravel()) == list(expected.ravel())
            else:
                assert value.tobytes() == expected.tobytes(), name


def test_small_blocks_and_restarts(tmp_path: Path) -> None:
    tensors = {f"layer_{i:03d}/kernel": (3, np.array([i], np.int32)) for i in range(50)}
    write_bundle(tmp_path / "blocks", tensors, per_block=7)
    with bridge.load(tmp_path / "blocks") as ckpt:
        assert list(ckpt) == sorted(tensors)
        assert all(ckpt[name].numpy()[0] == value[0] for name, (_, value) in tensors.items())


def test_snappy_compressed_blocks(tf, tmp_path: Path) -> None:
    """Index blocks Snappy-compressed: names and every value as TensorFlow's own reader gives them."""
    write_bundle(tmp_path / "snappy", TENSORS, compression=1, per_block=3)
    reader = tf.train.load_checkpoint(str(tmp_path / "snappy"))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(TENSORS)
    with bridge.load(tmp_path / "snappy") as ckpt:
        assert list(ckpt) == sorted(TENSORS)
        for name in TENSORS:
            ours, theirs = ckpt[name].numpy(), np.asarray(reader.get_tensor(name))
            assert ours.shape == theirs.shape, name
            if ours.dtype == object:  # strings: TF gives bytes objects too
                assert list(ours.ravel()) == list(theirs.ravel()), name
            else:
                assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes(), name


def test_unknown_compression(tmp_path: Path) -> None:
    write_bundle(tmp_path / "zstd", TENSORS, compression=4)
    with pytest.raises(UnsupportedFeature, match="has compression type 4"):
        bridge.load(tmp_path / "zstd")


def test_newer_bundle_version(tmp_path: Path) -> None:
    write_bundle(tmp_path / "new", {})
    index = tmp_path / "new.index"
    index.write_bytes(build_table([(b"", _header(min_consumer=2))]))
    with pytest.raises(UnsupportedFeature, match="min_consumer 2"):
        bridge.load(tmp_path / "new")


def test_missing_header(tmp_path: Path) -> None:
    write_bundle(tmp_path / "nohead", {})
    (tmp_path / "nohead.index").write_bytes(build_table([(b"a", _entry(1, (), 0, b"", 0))]))
    with pytest.raises(CorruptCheckpoint, match="not the bundle header"):
        bridge.load(tmp_path / "nohead")


def test_keys_out_of_order(tmp_path: Path) -> None:
    write_bundle(tmp_path / "order", {})
    entries = [(b"", _header()), (b"b", _entry(1, (0,), 0, b"", 0)), (b"a", _entry(1, (0,), 0, b"", 0))]
    (tmp_path / "order.index").write_bytes(build_table(entries))
    with pytest.raises(CorruptCheckpoint, match="keys out of order"):
        bridge.load(tmp_path / "order")


def test_size_disagrees_with_shape(tmp_path: Path) -> None:
    write_bundle(tmp_path / "size", {"x": (1, np.zeros(4, np.float32))})
    entries = [(b"", _header()), (b"x", _entry(1, (3,), 0, bytes(16), crc32c(bytes(16))))]
    (tmp_path / "size.index").write_bytes(build_table(entries))
    # Caught when the index is opened: a size that does not back the shape must not drive an allocation later.
    with pytest.raises(CorruptCheckpoint, match="for tensor `x`: the entry says 16"):
        bridge.load(tmp_path / "size")
