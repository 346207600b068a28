"""Reader for the LevelDB-style table that TensorFlow uses as a bundle's ``.index`` file.

Layout (``tensorflow/core/lib/io/table_format.txt``, ``format.cc``, ``block.cc``)::

    [data block 0][trailer] ... [data block n][trailer] [metaindex][trailer] [index][trailer] [footer]

* footer: the last 48 bytes: metaindex handle and index handle (each two varint64:
  offset, size), zero padding to 40 bytes, then the magic ``0xdb4775248b80fb57`` as
  two little-endian uint32 (low word first);
* trailer: 5 bytes after each block: a compression type byte (0 none, 1 snappy) and the
  masked CRC32C of the block contents (as stored, i.e. compressed) plus that type byte;
* block: prefix-compressed entries (``varint32 shared, varint32 non_shared,
  varint32 value_length, key_delta, value``), then ``uint32 restarts[n]`` and ``uint32 n``;
* the index block maps a separator key (>= the last key of a block) to that data block's
  handle.  TF writes no filters, so the metaindex block is ignored.

Blocks are mostly uncompressed, but TensorFlow builds with Snappy and some of its writers
(e.g. the bundle merge behind sharded and SavedModel saves in TF 1.x/2.x) leave the table
builder's default compression on: a block is stored compressed when that saves at least
1/8 of it.  So we carry a small Snappy decoder (:func:`snappy_decompress`).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator

import google_crc32c
import numpy as np

from bridge.core.errors import CorruptCheckpoint, UnsupportedFeature
from tf_side.proto import DecodeError, decode_varint

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # 2 * BlockHandle::kMaxEncodedLength (20) + 8 bytes of magic
TRAILER_SIZE = 5  # compression type byte + fixed32 masked CRC
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def crc32c(data: bytes | np.ndarray, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), continuing from ``crc``; zlib.crc32 is a different polynomial."""
    # google_crc32c accepts bytes or a contiguous numpy array, not memoryview/mmap.
    return int(google_crc32c.extend(crc, data)) if len(data) else crc


def mask_crc(crc: int) -> int:
    """TF/LevelDB mask: rotate right by 15 and add a constant, so CRCs of CRCs stay robust."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


class Table:
    """An SSTable held in memory (bytes or an mmap), read front to back.

    Args:
        data: the whole file's bytes.
        path: the file, for error messages.

    Raises:
        CorruptCheckpoint: the footer, a block handle, a trailer CRC or an entry is bad.
        UnsupportedFeature: a block is Snappy-compressed.
    """

    def __init__(self, data: bytes | memoryview | mmap.mmap, path: str | os.PathLike[str]) -> None:
        self._data = data
        self.path = str(path)
        size = len(data)
        if size < FOOTER_SIZE:
            raise self._corrupt(
                f"the file has {size} bytes, fewer than the {FOOTER_SIZE}-byte table footer",
                hint="The file is truncated or is not a TensorFlow checkpoint index; copy it again",
            )
        footer = bytes(data[size - FOOTER_SIZE :])
        lo, hi = struct.unpack_from("<II", footer, 40)
        if (hi << 32) | lo != MAGIC:
            raise self._corrupt(
                "bad magic number at the end of the file (expected the SSTable magic "
                f"57 fb 80 8b 24 75 47 db, found {footer[40:].hex(' ')})",
                hint="The file is truncated or is not a TensorFlow checkpoint index; copy it again",
            )
        try:
            _meta_offset, pos = decode_varint(footer, 0)
            _meta_size, pos = decode_varint(footer, pos)
            index_offset, pos = decode_varint(footer, pos)
            index_size, pos = decode_varint(footer, pos)
        except DecodeError as e:
            raise self._corrupt(f"unreadable table footer ({e})") from e
        self._limit = size - FOOTER_SIZE
        self.index_handle = (index_offset, index_size)

    def _corrupt(self, detail: str, hint: str | None = None) -> CorruptCheckpoint:
        return CorruptCheckpoint(
            "Corrupt checkpoint index",
            path=self.path,
            detail=detail,
            hint=hint or "The .index file is damaged; copy or download the checkpoint again",
        )

    def read_block(self, offset: int, size: int, what: str) -> bytes:
        """The contents of the block at ``offset``, after checking its trailer."""
        if offset < 0 or size < 0 or offset + size + TRAILER_SIZE > self._limit:
            raise self._corrupt(
                f"the {what} block (offset {offset}, {size} bytes) lies outside the file "
                f"({self._limit + FOOTER_SIZE} bytes)"
            )
        raw = bytes(self._data[offset : offset + size + 1])
        kind = raw[size]
        stored = struct.unpack_from("<I", self._data, offset + size + 1)[0]
        actual = crc32c(raw)
        if unmask_crc(stored) != actual:
            raise self._corrupt(
                f"block checksum mismatch in the {what} block at offset {offset} "
                f"(stored {unmask_crc(stored):#010x}, computed {actual:#010x})"
            )
        if kind == SNAPPY_COMPRESSION:
            try:
                return snappy_decompress(raw[:size])
            except SnappyError as e:
                raise self._corrupt(f"bad Snappy data in the {what} block at offset {offset} ({e})") from e
        if kind != NO_COMPRESSION:
            # The CRC covers the type byte, so this is a valid block of a compression we lack.
            raise UnsupportedFeature(
                "Unknown checkpoint index compression",
                path=self.path,
                detail=f"the {what} block at offset {offset} has compression type {kind}; "
                "TensorFlow's table format knows 0 (none) and 1 (Snappy)",
                hint="Re-save the checkpoint with TensorFlow (tf.train.load_checkpoint, then "
                "tf.train.Checkpoint.write) and open that",
            )
        return raw[:size]

    def iter_block(self, block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` of one block's entries, undoing the key prefix compression."""
        size = len(block)
        if size < 4:
            raise self._corrupt(f"the {what} block is {size} bytes, too short for its restart count")
        num_restarts = struct.unpack_from("<I", block, size - 4)[0]
        restart_offset = size - 4 * (1 + num_restarts)
        if num_restarts == 0 or restart_offset < 0:
            raise self._corrupt(f"the {what} block has a bad restart count ({num_restarts})")
        pos = 0
        key = b""
        try:
            while pos < restart_offset:
                shared, pos = decode_varint(block, pos)
                non_shared, pos = decode_varint(block, pos)
                value_len, pos = decode_varint(block, pos)
                if shared > len(key) or pos + non_shared + value_len > restart_offset:
                    raise DecodeError(f"entry at block offset {pos} overruns the block")
                key = key[:shared] + block[pos : pos + non_shared]
                pos += non_shared
                yield key, block[pos : pos + value_len]
                pos += value_len
        except DecodeError as e:
            raise self._corrupt(f"bad entry in the {what} block: {e}") from e

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of the table, in key order, across all data blocks."""
        index = self.read_block(*self.index_handle, what="index")
        previous: bytes | None = None
        for _separator, handle in self.iter_block(index, "index"):
            try:
                offset, pos = decode_varint(handle, 0)
                size, _ = decode_varint(handle, pos)
            except DecodeError as e:
                raise self._corrupt(f"bad block handle in the index block ({e})") from e
            block = self.read_block(offset, size, what="data")
            for key, value in self.iter_block(block, "data"):
                # Keys are strictly increasing bytewise; anything else means damage.
                if previous is not None and key <= previous:
                    raise self._corrupt(f"keys out of order at {key[:60]!r}")
                previous = key
                yield key, value


class SnappyError(ValueError):
    """Malformed Snappy data."""


def snappy_decompress(data: bytes) -> bytes:
    """Decode a raw (unframed) Snappy block, as LevelDB tables store it.

    Format (google/snappy ``format_description.txt``): a varint of the uncompressed
    length, then elements whose tag byte's low two bits say: 0 literal (length - 1 in the
    upper six bits, or in the next 1-4 bytes when those say 60-63), 1 copy with length
    4-11 and an 11-bit offset, 2 copy with a 2-byte offset, 3 copy with a 4-byte offset.
    Copies may overlap their own output (offset < length repeats a pattern).
    """
    try:
        expected, pos = decode_varint(data, 0)
    except DecodeError as e:
        raise SnappyError(f"bad length preamble ({e})") from e
    out = bytearray()
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = (tag >> 2) + 1
            if length > 60:
                extra = length - 60
                if pos + extra > end:
                    raise SnappyError("truncated literal length")
                length = int.from_bytes(data[pos : pos + extra], "little") + 1
                pos += extra
            if pos + length > end:
                raise SnappyError("literal runs past the end of the block")
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            if pos + 1 > end:
                raise SnappyError("truncated copy")
            length = 4 + ((tag >> 2) & 7)
            distance = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            if pos + width > end:
                raise SnappyError("truncated copy")
            length = (tag >> 2) + 1
            distance = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        if distance == 0 or distance > len(out):
            raise SnappyError(f"copy offset {distance} outside the {len(out)} bytes decoded so far")
        start = len(out) - distance
        if distance >= length:
            out += out[start : start + length]
        else:
            pattern = bytes(out[start:])
            out += (pattern * (length // distance + 1))[:length]
        if len(out) > expected:
            raise SnappyError(f"output exceeds the declared {expected} bytes")
    if len(out) != expected:
        raise SnappyError(f"decoded {len(out)} bytes, the preamble says {expected}")
    return bytes(out)
