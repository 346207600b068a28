"""A TensorFlow-free writer of TF1 name-based checkpoints (tensor bundle V2).

Mirrors TF's ``BundleWriter`` and LevelDB's ``TableBuilder``: data shards with
each tensor's raw little-endian bytes in name order (one, or N cut by size), and an ``.index`` SSTable
(uncompressed 256 KiB data blocks, restart interval 16, index block with
shortest-separator keys, empty metaindex, 48-byte footer), so that files equal
what TF's ``Saver`` writes for the same variables, byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.outputs import plan_shards
from bridge.core.stream import Planned, prefetched, produced_value
from tf_side.bundle.index import DATA_TYPES, TENSOR_BUNDLE_VERSION
from tf_side.bundle.locate import data_filename
from tf_side.proto import encode_bytes_field, encode_fixed32_field, encode_int_field, encode_varint
from tf_side.sstable import crc32c, mask_crc

_TYPE_CODES = {name: code for code, name in DATA_TYPES.items()}
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_SIZE = 262144  # table_options.h defaults
_RESTART_INTERVAL = 16
_FOOTER_HANDLES = 40


def write_tf1_checkpoint(
    prefix: Path,
    tensors: Sequence[Planned],
    *,
    metadata: Mapping[str, Any] | None = None,  # the target's; these layouts need none
    on_tensor: Callable[[Planned], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """Write ``prefix.index`` and ``prefix.data-0000K-of-0000N``; values stream one at a time.

    Tensors go in name order; with ``max_shard_size`` they are cut, in that order, into N data files of at most
    that many bytes (a larger tensor alone in its own; strings count 0 when cutting), as TF's sharded ``Saver``
    lays out one data file per device: the header says ``num_shards=N``, each entry its ``shard_id`` and its
    offset inside that file.
    """
    ordered = sorted(tensors, key=lambda t: t.name.encode())
    shards = plan_shards(ordered, max_shard_size)
    entries: list[tuple[bytes, bytes]] = [(b"", _header(len(shards)))]
    paths = []
    for shard_id, shard in enumerate(shards):
        paths.append(Path(data_filename(prefix, shard_id, len(shards))))
        offset = 0
        with open(paths[-1], "wb") as data:
            for t, (raw, crc) in prefetched(shard, _tensor_bytes):
                data.write(raw)
                entries.append((t.name.encode(), _entry(t, shard_id, offset, len(raw), mask_crc(crc))))
                offset += len(raw)
                if on_tensor is not None:
                    on_tensor(t)
    index_path = Path(f"{prefix}.index")
    index_path.write_bytes(build_table(entries))
    return [index_path, *paths]


def _header(num_shards: int) -> bytes:
    # BundleHeaderProto{num_shards, endianness=LITTLE (0, omitted), version{producer=1}}
    return encode_int_field(1, num_shards) + encode_bytes_field(3, encode_int_field(1, TENSOR_BUNDLE_VERSION))


def _entry(t: Planned, shard_id: int, offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(encode_bytes_field(2, encode_int_field(1, d)) for d in t.shape)
    shape = dims  # TensorShapeProto{dim: [{size}]}; a dim of size 0 is an empty Dim message
    return (
        encode_int_field(1, _TYPE_CODES[t.dtype])
        + encode_bytes_field(2, shape)
        + encode_int_field(3, shard_id)  # 0 omitted, as proto3 does
        + encode_int_field(4, offset)
        + encode_int_field(5, size)
        + encode_fixed32_field(6, crc)
    )


def _tensor_bytes(t: Planned) -> tuple[bytes, int]:
    """The bytes stored for ``t`` and their (unmasked) entry CRC32C."""
    value = produced_value(t)
    if t.dtype == dtypes.STRING:
        return _string_bytes(value)
    raw = np.ascontiguousarray(value, dtype=dtypes.numpy_dtype(t.dtype).newbyteorder("<")).tobytes()
    return raw, crc32c(raw)


def _string_bytes(value: np.ndarray) -> tuple[bytes, int]:
    """varint lengths, the masked CRC32C of the lengths, then the bytes (tensor_bundle.cc WriteStringTensor).

    Both checksums cover each length as a little-endian uint32 (uint64 past 4 GiB), not its
    varint; the entry's CRC then continues over the 4 length-checksum bytes and the strings.
    """
    items = [v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)]
    crc = 0
    for v in items:
        crc = crc32c(struct.pack("<I", len(v)) if len(v) <= 0xFFFFFFFF else struct.pack("<Q", len(v)), crc)
    length_crc = struct.pack("<I", mask_crc(crc))
    body = b"".join(items)
    entry_crc = crc32c(body, crc32c(length_crc, crc))
    return b"".join(encode_varint(len(v)) for v in items) + length_crc + body, entry_crc


# --- LevelDB table builder -----------------------------------------------------------------


class _Block:
    def __init__(self, restart_interval: int) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""
        self.interval = restart_interval
        self.empty = True

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            limit = min(len(self.last_key), len(key))
            while shared < limit and self.last_key[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buf += key[shared:] + value
        self.last_key = key
        self.counter += 1
        self.empty = False

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return (
            bytes(self.buf)
            + b"".join(struct.pack("<I", r) for r in self.restarts)
            + struct.pack("<I", len(self.restarts))
        )


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def build_table(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    """An SSTable of sorted ``(key, value)`` pairs, as LevelDB's TableBuilder lays it out."""
    out = bytearray()
    data = _Block(_RESTART_INTERVAL)
    index = _Block(1)
    pending: tuple[int, int] | None = None
    last_key = b""

    def write_block(block: _Block) -> tuple[int, int]:
        contents = block.finish()
        handle = (len(out), len(contents))
        out.extend(contents)
        out.extend(b"\x00" + struct.pack("<I", mask_crc(crc32c(contents + b"\x00"))))
        return handle

    for key, value in entries:
        if pending is not None:
            index.add(_shortest_separator(last_key, key), _handle(pending))
            pending = None
        data.add(key, value)
        last_key = key
        if data.size_estimate() >= _BLOCK_SIZE:
            pending = write_block(data)
            data = _Block(_RESTART_INTERVAL)
    if not data.empty:
        pending = write_block(data)
    if pending is not None:
        index.add(_short_successor(last_key), _handle(pending))
    meta_handle = write_block(_Block(_RESTART_INTERVAL))
    index_handle = write_block(index)
    handles = _handle(meta_handle) + _handle(index_handle)
    out.extend(handles + b"\x00" * (_FOOTER_HANDLES - len(handles)))
    out.extend(struct.pack("<II", _TABLE_MAGIC & 0xFFFFFFFF, _TABLE_MAGIC >> 32))
    return bytes(out)


def _handle(handle: tuple[int, int]) -> bytes:
    return encode_varint(handle[0]) + encode_varint(handle[1])
