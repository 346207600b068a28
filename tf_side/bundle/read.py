"""Reading values: data shards memory-mapped (or read by range behind a URL), every read checked against the
entry's CRC32C, strings decoded, big-endian data swapped, and rows of a large tensor read alone."""

from __future__ import annotations

import math
import mmap
import os
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, UnsupportedFeature
from bridge.core.model import RowReader
from bridge.core.source import RemotePath
from tf_side.bundle.index import DATA_TYPES, TENSOR_BUNDLE_VERSION, BundleEntry, key_name, parse_entry, parse_header
from tf_side.bundle.locate import data_filename, index_of
from tf_side.proto import DecodeError, decode_varint
from tf_side.sstable import Table, crc32c, unmask_crc

_U32 = 0xFFFFFFFF


class Shards:
    """Data shards, memory-mapped on first use and unmapped by :meth:`close`."""

    def __init__(self, prefix: Path, num_shards: int) -> None:
        self.prefix = prefix
        self.num_shards = num_shards
        self._maps: dict[int, tuple[IO[bytes], mmap.mmap | None]] = {}
        self._lock = threading.Lock()

    def filename(self, shard: int) -> Path:
        return self.prefix.with_name(data_filename(self.prefix.name, shard, self.num_shards))

    def view(self, shard: int, offset: int, size: int) -> np.ndarray:
        """A read-only uint8 view of ``[offset, offset + size)``; drop it before closing."""
        remote = self.filename(shard)
        if isinstance(remote, RemotePath):  # one range request of exactly the tensor's bytes, nothing mapped
            available = remote.stat().st_size
            if offset + size > available:
                raise EOFError(f"needs bytes [{offset}, {offset + size}) of a {available}-byte file")
            return np.frombuffer(remote.read_range(offset, size), np.uint8)
        with self._lock:
            if shard not in self._maps:
                f = open(self.filename(shard), "rb")  # closed by close()
                length = os.fstat(f.fileno()).st_size
                # mmap refuses empty files; a shard of zero-size tensors is empty.
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if length else None
                self._maps[shard] = (f, mm)
            mm = self._maps[shard][1]
        available = len(mm) if mm is not None else 0
        if offset + size > available:
            raise EOFError(f"needs bytes [{offset}, {offset + size}) of a {available}-byte file")
        if size == 0 or mm is None:
            return np.zeros(0, np.uint8)
        return np.frombuffer(mm, np.uint8, count=size, offset=offset)

    def release(self, shard: int, offset: int, size: int) -> None:
        """Drop the pages of a range already copied out, so that streaming a large checkpoint
        keeps the resident set near one tensor instead of growing with every page touched."""
        entry = self._maps.get(shard)
        if entry is None or entry[1] is None or size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = offset - offset % mmap.PAGESIZE
        try:
            entry[1].madvise(mmap.MADV_DONTNEED, start, offset + size - start)
        except (OSError, ValueError):  # advisory only: a refusal costs memory, not correctness
            pass

    def close(self) -> None:
        with self._lock:
            maps, self._maps = self._maps, {}
        for f, mm in maps.values():
            if mm is not None:
                try:
                    mm.close()
                except BufferError:
                    pass  # a read in progress still holds a view; the GC unmaps it after
            f.close()


class Bundle:
    """One opened bundle: its index decoded, its shards opened lazily."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.index_path = index_of(prefix)
        entries = self._read_index()
        self.header_value = entries.pop(0)[1] if entries and entries[0][0] == b"" else None
        if self.header_value is None:
            raise CorruptCheckpoint(
                "Corrupt checkpoint index",
                path=self.index_path,
                detail='the first entry is not the bundle header (key "")',
                hint="The .index file is damaged or is not a tensor bundle; copy the checkpoint again",
            )
        try:
            num_shards, endianness, version = parse_header(self.header_value)
        except DecodeError as e:
            raise self._corrupt(f"unreadable bundle header ({e})") from e
        self._check_version(version)
        if endianness not in (0, 1):
            raise self._corrupt(f"unknown endianness {endianness} in the bundle header")
        if num_shards < 1:
            raise self._corrupt(f"the bundle header says num_shards={num_shards}")
        self.num_shards = num_shards
        # BIG: "affects the binary tensor data bytes only, not the metadata in protobufs".
        self.byteswap = (endianness == 1) != (sys.byteorder == "big")
        self.endianness = "big" if endianness == 1 else "little"
        self.shards = Shards(prefix, num_shards)
        self.missing: set[int] = set()  # data shards the index needs and the disk lacks
        self.entries: dict[bytes, BundleEntry] = {}
        for key, value in entries:
            try:
                self.entries[key] = parse_entry(key, value)
            except DecodeError as e:
                raise self._corrupt(f"unreadable BundleEntryProto ({e})", tensor=key_name(key)) from e

    def _read_index(self) -> list[tuple[bytes, bytes]]:
        if isinstance(self.index_path, RemotePath):
            if not self.index_path.is_file():
                raise CheckpointNotFound("Checkpoint index not found", path=self.index_path, hint="Check the URL")
            return list(Table(self.index_path.read_bytes(), self.index_path).items())
        try:
            f = open(self.index_path, "rb")
        except FileNotFoundError as e:
            raise CheckpointNotFound(
                "Checkpoint index not found", path=self.index_path, hint="Check the checkpoint prefix"
            ) from e
        with f:
            if os.fstat(f.fileno()).st_size == 0:
                return list(Table(b"", self.index_path).items())
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                # Table.items copies each block out, so nothing refers to the map afterwards.
                return list(Table(mm, self.index_path).items())

    def _corrupt(self, detail: str, *, tensor: str | None = None, hint: str | None = None) -> CorruptCheckpoint:
        return CorruptCheckpoint(
            "Corrupt checkpoint index",
            path=self.index_path,
            tensor=tensor,
            detail=detail,
            hint=hint or "The .index file is damaged; copy or download the checkpoint again",
        )

    def _check_version(self, version: tuple[int, int, tuple[int, ...]]) -> None:
        producer, min_consumer, bad = version
        # tensor_bundle.cc CheckVersions(header.version(), kTensorBundleVersion, kTensorBundleMinProducer=0).
        if min_consumer > TENSOR_BUNDLE_VERSION or TENSOR_BUNDLE_VERSION in bad or producer < 0:
            raise UnsupportedFeature(
                "Unsupported tensor-bundle version",
                path=self.index_path,
                detail=f"producer {producer}, min_consumer {min_consumer}, bad_consumers {list(bad)}; "
                f"this reader implements version {TENSOR_BUNDLE_VERSION}",
                hint="Open it with the TensorFlow that wrote it and re-save it",
            )

    # -- values --

    def data_location(self, entry: BundleEntry) -> str:
        return f"{self.shards.filename(entry.shard_id).name} @ {entry.offset}"

    def check_extent(self, entry: BundleEntry, name: str, sizes: dict[int, int | None]) -> None:
        """At open time: the entry's size fits its shape and its shard holds its byte range (stat only).

        A missing shard is not an error yet: the index alone lists names, shapes and dtypes (as
        ``tf.train.list_variables`` does); the shard goes into ``missing`` and reading a value from it fails.
        """
        if not 0 <= entry.shard_id < self.num_shards:
            raise self._corrupt(f"the entry points at shard {entry.shard_id} of {self.num_shards}", tensor=name)
        if entry.offset < 0 or entry.size < 0:
            raise self._corrupt(f"negative offset or size ({entry.offset}, {entry.size})", tensor=name)
        # The size must back the shape before anything is allocated for it: a fixed-size dtype takes exactly
        # numel x itemsize, a string at least one length byte per element.
        dtype = DATA_TYPES.get(entry.dtype)
        count = math.prod(entry.shape)
        if dtype == dtypes.STRING:
            if count > entry.size:
                raise self._corrupt(f"{count} strings cannot fit in {entry.size} bytes", tensor=name)
        elif dtype is not None and entry.size != count * dtypes.numpy_dtype(dtype).itemsize:
            raise self._corrupt(
                f"the entry says {entry.size} bytes, but shape {list(entry.shape)} of {dtype} takes "
                f"{count * dtypes.numpy_dtype(dtype).itemsize}",
                tensor=name,
            )
        if entry.shard_id not in sizes:
            try:
                sizes[entry.shard_id] = self.shards.filename(entry.shard_id).stat().st_size
            except FileNotFoundError:
                sizes[entry.shard_id] = None
                self.missing.add(entry.shard_id)
        size = sizes[entry.shard_id]
        if size is None:
            return
        end = entry.offset + entry.size
        if end > size:
            raise CorruptCheckpoint(
                "Truncated checkpoint data",
                path=self.shards.filename(entry.shard_id),
                tensor=name,
                detail=f"the tensor needs bytes [{entry.offset}, {end}) but the file has {size} bytes",
                hint="The data file is incomplete; copy or download it again",
            )

    def read(self, entry: BundleEntry, name: str) -> np.ndarray:
        """Read one stored (unpartitioned) entry and check its CRC32C."""
        filename = self.shards.filename(entry.shard_id)
        dtype = DATA_TYPES[entry.dtype]
        raw = self._view(entry, name, entry.offset, entry.size)
        if dtype == dtypes.STRING:
            return self._read_strings(raw, entry, name, filename)
        itemsize = self._itemsize(entry, name)
        actual = crc32c(raw)
        if actual != unmask_crc(entry.crc32c):
            raise _crc_error(filename, name, entry, actual)
        value = raw.view(dtypes.numpy_dtype(dtype)).copy()
        del raw
        self.shards.release(entry.shard_id, entry.offset, entry.size)
        return self._native(value, dtype, itemsize).reshape(entry.shape)

    def read_rows(self, entry: BundleEntry, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of a stored numeric entry's leading axis, unchecked: the entry's CRC32C covers the
        whole tensor, so a part of it cannot be verified (for notes drawn from a sample; conversions read it whole)."""
        dtype = DATA_TYPES[entry.dtype]
        itemsize = self._itemsize(entry, name)
        row_bytes = entry.size // entry.shape[0]
        raw = self._view(entry, name, entry.offset + start * row_bytes, (stop - start) * row_bytes)
        value = raw.view(dtypes.numpy_dtype(dtype)).copy()
        del raw
        return self._native(value, dtype, itemsize).reshape((stop - start, *entry.shape[1:]))

    def _itemsize(self, entry: BundleEntry, name: str) -> int:
        """Bytes per element of a numeric entry, once its size is shown to match its shape."""
        dtype = DATA_TYPES[entry.dtype]
        count = int(np.prod(entry.shape, dtype=np.int64))
        itemsize = dtypes.itemsize(dtype) or 0
        if entry.size != count * itemsize:
            raise self._corrupt(
                f"the entry says {entry.size} bytes, but shape {list(entry.shape)} of {dtype} takes {count * itemsize}",
                tensor=name,
            )
        return itemsize

    def _native(self, value: np.ndarray, dtype: str, itemsize: int) -> np.ndarray:
        if self.byteswap and itemsize > 1:
            # Checksums cover the bytes as stored; swap only afterwards (tensor_bundle.cc).
            # Complex numbers swap each component; ml_dtypes types swap as unsigned ints.
            swap_as = {8: np.float32, 16: np.float64}.get(itemsize) if dtype.startswith("complex") else None
            unit = swap_as or np.dtype(f"u{itemsize}")
            value = value.view(unit).byteswap().view(value.dtype)
        return value

    def _view(self, entry: BundleEntry, name: str, offset: int, size: int) -> np.ndarray:
        """Bytes ``[offset, offset + size)`` of the entry's shard, a missing or short shard named."""
        filename = self.shards.filename(entry.shard_id)
        try:
            return self.shards.view(entry.shard_id, offset, size)
        except FileNotFoundError as e:
            raise CheckpointNotFound(
                "Checkpoint data shard not found",
                path=filename,
                tensor=name,
                detail=f"the index '{self.index_path.name}' lists {self.num_shards} data shard(s); "
                "without this one its values cannot be read",
                hint=f"Copy every {self.prefix.name}.data-*-of-{self.num_shards:05d} file beside the .index file",
            ) from e
        except EOFError as e:
            raise CorruptCheckpoint(
                "Truncated checkpoint data",
                path=filename,
                tensor=name,
                detail=str(e),
                hint="The data file is incomplete; copy or download it again",
            ) from e

    def _read_strings(self, raw: np.ndarray, entry: BundleEntry, name: str, filename: Path) -> np.ndarray:
        """DT_STRING: varint64 lengths, masked CRC32C of the lengths, then the bytes."""
        count = int(np.prod(entry.shape, dtype=np.int64))
        buf = raw.tobytes()
        del raw

        def corrupt(detail: str) -> CorruptCheckpoint:
            return CorruptCheckpoint(
                "Corrupt string tensor",
                path=filename,
                tensor=name,
                detail=detail,
                hint="The data file is damaged; copy or download the checkpoint again",
            )

        lengths: list[int] = []
        pos = 0
        try:
            for _ in range(count):
                length, pos = decode_varint(buf, pos)
                lengths.append(length)
        except DecodeError as e:
            raise corrupt(f"bad string length ({e})") from e
        # The length checksum covers each length as a uint32 (uint64 past 4 GiB), in the
        # writer's byte order: not the varint bytes.
        order = ">" if self.endianness == "big" else "<"
        if all(length <= _U32 for length in lengths):
            packed = np.asarray(lengths, dtype=f"{order}u4").tobytes()
        else:
            packed = b"".join(struct.pack(order + ("I" if n <= _U32 else "Q"), n) for n in lengths)
        crc = crc32c(packed)
        if pos + 4 > len(buf):
            raise corrupt(f"the {entry.size}-byte value ends inside the string lengths")
        stored = struct.unpack_from(order + "I", buf, pos)[0]
        if unmask_crc(stored) != crc:
            raise corrupt(
                f"checksum of the string lengths does not match (stored {unmask_crc(stored):#010x}, "
                f"computed {crc:#010x})"
            )
        crc = crc32c(buf[pos : pos + 4], crc)
        pos += 4
        if pos + sum(lengths) != len(buf):
            raise corrupt(f"the lengths add up to {pos + sum(lengths)} bytes, the entry has {len(buf)}")
        crc = crc32c(buf[pos:], crc)
        if crc != unmask_crc(entry.crc32c):
            raise _crc_error(filename, name, entry, crc)
        out = np.empty(count, dtype=object)
        for i, length in enumerate(lengths):
            out[i] = buf[pos : pos + length]
            pos += length
        return out.reshape(entry.shape)


def _crc_error(filename: Path, name: str, entry: BundleEntry, actual: int) -> CorruptCheckpoint:
    return CorruptCheckpoint(
        "Checksum mismatch",
        path=filename,
        tensor=name,
        detail=f"the CRC32C of bytes [{entry.offset}, {entry.offset + entry.size}) is {actual:#010x}, "
        f"the index says {unmask_crc(entry.crc32c):#010x}",
        hint="The data file is damaged; copy or download the checkpoint again",
    )


def plain_loader(bundle: Bundle, entry: BundleEntry, name: str) -> Callable[[], np.ndarray]:
    return lambda: bundle.read(entry, name)


def row_reader(bundle: Bundle, entry: BundleEntry, name: str) -> RowReader | None:
    """Rows of a stored numeric tensor read alone (a partitioned one is pasted together: its loader reads it)."""
    if entry.slices or not entry.shape or entry.shape[0] == 0 or DATA_TYPES[entry.dtype] == dtypes.STRING:
        return None
    return lambda start, stop: bundle.read_rows(entry, name, start, stop)
