"""A TensorFlow-free reader of TensorFlow tensor-bundle checkpoints (the "V2" format).

A checkpoint with prefix ``P`` is ``P.index`` (an SSTable, see :mod:`tf_side.sstable`)
plus data shards ``P.data-%05d-of-%05d``.  The index maps ``""`` to a
``BundleHeaderProto`` and every tensor name to a ``BundleEntryProto`` that says where
its raw bytes lie (shard, offset, size) and their masked CRC32C.  Opening reads the
index only (and, for TF2 object-based checkpoints, the small object-graph string);
values are read on demand from memory-mapped shards and checksummed on every read.

The same bundle is the ``variables/variables`` of a SavedModel or TF1 Hub module.
"""

from __future__ import annotations

import codecs
import glob
import math
import mmap
import os
import re
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, UnsupportedFeature, UsageError
from bridge.core.model import Checkpoint, RowReader, TensorKind, TensorRecord
from bridge.core.naming import classify_tf_name
from bridge.core.source import RemotePath, as_path
from tf_side import object_graph
from tf_side.proto import (
    DecodeError,
    decode_varint,
    expect_bytes,
    expect_int,
    iter_fields,
    to_int32,
    to_int64,
)
from tf_side.sstable import Table, crc32c, unmask_crc

# DataType codes (tensorflow/core/framework/types.proto) -> our dtype vocabulary.
DATA_TYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: dtypes.STRING,
    8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
    19: "float16", 22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
}  # fmt: skip
# Codes that can be stored but that have no numpy equivalent here; listed for messages.
_UNSUPPORTED_TYPES: dict[int, str] = {
    11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16", 16: "DT_QUINT16",
    20: "DT_RESOURCE", 21: "DT_VARIANT", 26: "DT_FLOAT8_E4M3FNUZ", 27: "DT_FLOAT8_E4M3B11FNUZ",
    28: "DT_FLOAT8_E5M2FNUZ", 29: "DT_INT4", 30: "DT_UINT4", 31: "DT_INT2", 32: "DT_UINT2",
    33: "DT_FLOAT4_E2M1FN",
}  # fmt: skip

TENSOR_BUNDLE_VERSION = 1  # kTensorBundleVersion: the consumer version we implement
OBJECT_GRAPH_KEY = object_graph.OBJECT_GRAPH_KEY
_U32 = 0xFFFFFFFF
_DATA_NAME = re.compile(r"(?P<prefix>.+)\.data-\d{5,}-of-\d{5,}")
_STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb")


def data_filename(prefix: str | os.PathLike[str], shard: int, num_shards: int) -> str:
    """``DataFilename`` of ``tensor_bundle/naming.cc``."""
    return f"{os.fspath(prefix)}.data-{shard:05d}-of-{num_shards:05d}"


# --- locating a checkpoint --------------------------------------------------------------


def _is_saved_model_dir(path: Path) -> bool:
    return (path / "variables").is_dir() and any((path / name).is_file() for name in _SAVED_MODEL_FILES)


def _index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _prefix_from_state(directory: Path) -> Path | None:
    """The latest checkpoint named by a ``checkpoint`` state file (a text-format proto)."""
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    try:
        with state.open("rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    match = _STATE_LINE.search(text)
    if match is None:
        return None
    # Text-format strings use C escapes.
    value = codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8", "surrogateescape")
    prefix = Path(value)
    if isinstance(directory, RemotePath):
        # A path recorded by the machine that trained names nothing behind a URL: the prefix sits beside the state.
        return directory / prefix.name
    if not prefix.is_absolute():
        prefix = directory / prefix
    if not _index_of(prefix).exists() and _index_of(directory / prefix.name).exists():
        # TF1 Saver often recorded absolute paths of the machine that trained; the
        # directory has since been moved or downloaded.
        prefix = directory / prefix.name
    return prefix


def _claims(path: Path) -> bool:
    if path.is_dir():
        if _is_saved_model_dir(path):
            return False
        return _prefix_from_state(path) is not None or any(path.glob("*.index"))
    if path.name.endswith(".index"):
        return path.is_file()
    if _index_of(path).is_file():
        return True
    if _DATA_NAME.fullmatch(path.name) and path.is_file():
        return True
    if path.suffix == ".meta" and _index_of(path.with_suffix("")).is_file():
        return True  # the TF1 MetaGraphDef beside the bundle
    # A prefix whose .index is missing but whose data shards exist: ours, to say so.
    return not path.exists() and any(path.parent.glob(glob.escape(path.name) + ".data-*-of-*"))


def _locate(path: Path) -> Path:
    """The prefix ``P`` (``P.index`` + ``P.data-*``) that ``path`` designates."""
    if path.is_dir():
        if _is_saved_model_dir(path) and _index_of(path / "variables" / "variables").is_file():
            return path / "variables" / "variables"  # asked for as a plain checkpoint (--format)
        prefix = _prefix_from_state(path)
        if prefix is not None:
            if not _index_of(prefix).is_file():
                raise CheckpointNotFound(
                    "Checkpoint named by the state file not found",
                    path=path / "checkpoint",
                    detail=f"model_checkpoint_path points at '{prefix}', which has no .index file",
                    hint="Pass a checkpoint prefix explicitly (e.g. DIR/model.ckpt-1000)",
                )
            return prefix
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_name(indexes[0].name[: -len(".index")])
        if not indexes:
            raise CheckpointNotFound(
                "No TensorFlow checkpoint in directory",
                path=path,
                detail="no 'checkpoint' state file and no *.index file",
                hint="Pass the checkpoint prefix or its .index file",
            )
        names = ", ".join(p.name[: -len(".index")] for p in indexes[:8])
        raise UsageError(
            "Several checkpoints in directory",
            path=path,
            detail=f"{len(indexes)} *.index files and no 'checkpoint' state file: {names}",
            hint="Pass one prefix, e.g. " + str(indexes[-1])[: -len(".index")],
        )
    if path.name.endswith(".index") and path.is_file():
        return path.with_name(path.name[: -len(".index")])
    match = _DATA_NAME.fullmatch(path.name)
    if match and path.is_file():
        path = path.with_name(match.group("prefix"))
    elif path.suffix == ".meta" and path.is_file():
        path = path.with_suffix("")
    if not _index_of(path).is_file():
        raise CheckpointNotFound(
            "Checkpoint index not found",
            path=_index_of(path),
            detail="a TensorFlow checkpoint needs its .index file beside the .data-* shards",
            hint="Copy the .index file too, or pass the prefix of a complete checkpoint",
        )
    return path


def sniff_checkpoint(path: Path) -> bool:
    """True for a ``.index`` file, a prefix with one, or a directory of TF checkpoints.

    SavedModel directories are left to :func:`sniff_saved_model`.
    """
    try:
        return _claims(as_path(path))
    except OSError:
        return False


def _saved_model(path: Path) -> tuple[Path, str] | None:
    directory = path.parent if path.is_file() and path.name in _SAVED_MODEL_FILES else path
    if not directory.is_dir():
        return None
    directory = _latest_version(directory)
    if (directory / "tfhub_module.pb").is_file():
        container = "tfhub-module"
    elif (directory / "saved_model.pb").is_file() or (directory / "saved_model.pbtxt").is_file():
        container = "saved-model"
    else:
        return None
    return directory, container


def _latest_version(directory: Path) -> Path:
    """A TF Serving model base path (``model/123/saved_model.pb``): its highest numbered version, as Serving loads."""
    if any((directory / name).is_file() for name in _SAVED_MODEL_FILES):
        return directory
    versions = [d for d in directory.iterdir() if d.name.isdigit() and (d / "saved_model.pb").is_file()]
    return max(versions, key=lambda d: int(d.name)) if versions else directory


def sniff_saved_model(path: Path) -> bool:
    """True for a SavedModel / TF1 Hub module directory with a ``variables/variables`` bundle."""
    try:
        found = _saved_model(as_path(path))
        return found is not None and (found[0] / "variables" / "variables.index").is_file()
    except OSError:
        return False


# --- the index ------------------------------------------------------------------------


@dataclass(frozen=True)
class Extent:
    start: int
    length: int | None  # None: the whole dimension (TensorSliceProto has no `length`)


@dataclass(frozen=True)
class BundleEntry:
    """A decoded ``BundleEntryProto`` with its key."""

    key: bytes
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple[tuple[Extent, ...], ...]

    @property
    def name(self) -> str:
        return _key_name(self.key)


def _key_name(key: bytes) -> str:
    # Names are UTF-8 in practice; surrogateescape keeps any other bytes round-trippable.
    return key.decode("utf-8", "surrogateescape")


def _parse_header(value: bytes) -> tuple[int, int, tuple[int, int, tuple[int, ...]]]:
    """``BundleHeaderProto`` -> (num_shards, endianness, (producer, min_consumer, bad_consumers))."""
    num_shards = endianness = 0
    version: tuple[int, int, tuple[int, ...]] = (0, 0, ())
    for number, wire, field in iter_fields(value):
        if number == 1:
            num_shards = to_int32(expect_int(field, wire, number))
        elif number == 2:
            endianness = expect_int(field, wire, number)
        elif number == 3:
            producer = min_consumer = 0
            bad: list[int] = []
            for vnum, vwire, vfield in iter_fields(expect_bytes(field, wire, number)):
                if vnum == 1:
                    producer = to_int32(expect_int(vfield, vwire, vnum))
                elif vnum == 2:
                    min_consumer = to_int32(expect_int(vfield, vwire, vnum))
                elif vnum == 3:
                    bad.extend(_repeated_ints(vfield, vwire, vnum))
            version = (producer, min_consumer, tuple(bad))
    return num_shards, endianness, version


def _repeated_ints(field: int | bytes, wire: int, number: int) -> list[int]:
    if isinstance(field, bytes):  # packed encoding
        out, pos = [], 0
        while pos < len(field):
            value, pos = decode_varint(field, pos)
            out.append(to_int32(value))
        return out
    return [to_int32(expect_int(field, wire, number))]


def _parse_shape(value: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, field in iter_fields(value):
        if number == 2:
            size = 0
            for dnum, dwire, dfield in iter_fields(expect_bytes(field, wire, number)):
                if dnum == 1:
                    size = to_int64(expect_int(dfield, dwire, dnum))
            if size < 0:
                raise DecodeError(f"unknown dimension ({size}) in a stored shape")
            dims.append(size)
        elif number == 3 and expect_int(field, wire, number):
            raise DecodeError("a stored shape of unknown rank")
    return tuple(dims)


def _parse_slice(value: bytes) -> tuple[Extent, ...]:
    extents = []
    for number, wire, field in iter_fields(value):
        if number == 1:
            start, length = 0, None
            for enum_, ewire, efield in iter_fields(expect_bytes(field, wire, number)):
                if enum_ == 1:
                    start = to_int64(expect_int(efield, ewire, enum_))
                elif enum_ == 2:
                    length = to_int64(expect_int(efield, ewire, enum_))
            extents.append(Extent(start, length))
    return tuple(extents)


def _parse_entry(key: bytes, value: bytes) -> BundleEntry:
    dtype = shard_id = offset = size = crc = 0
    shape: tuple[int, ...] = ()
    slices = []
    for number, wire, field in iter_fields(value):
        if number == 1:
            dtype = expect_int(field, wire, number)
        elif number == 2:
            shape = _parse_shape(expect_bytes(field, wire, number))
        elif number == 3:
            shard_id = to_int32(expect_int(field, wire, number))
        elif number == 4:
            offset = to_int64(expect_int(field, wire, number))
        elif number == 5:
            size = to_int64(expect_int(field, wire, number))
        elif number == 6:
            crc = expect_int(field, wire, number)
        elif number == 7:
            slices.append(_parse_slice(expect_bytes(field, wire, number)))
    return BundleEntry(key, dtype, shape, shard_id, offset, size, crc, tuple(slices))


# --- slice keys (tensorflow/core/util/saved_tensor_slice_util.cc + lib/strings/ordered_code.cc)


def _num_increasing(value: int) -> bytes:
    """OrderedCode::WriteNumIncreasing: a length byte, then the big-endian bytes without leading zeros."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing: two's complement with the length folded into the top bits.

    A ``length``-byte code holds ``7 * length - 1`` value bits plus the sign; its first
    ``length`` bits (spilling into byte 2 for lengths 9 and 10) are ones, XOR-ed into the
    sign-extended big-endian value, so codes sort like the numbers.
    """
    magnitude = ~value if value < 0 else value
    length = magnitude.bit_length() // 7 + 1
    body = bytearray((value & ((1 << (8 * length)) - 1)).to_bytes(length, "big"))
    header = ((1 << length) - 1) << (16 - length)
    body[0] ^= header >> 8
    if length > 1:
        body[1] ^= header & 0xFF
    return bytes(body)


def encode_slice_key(name: bytes, extents: tuple[Extent, ...]) -> bytes:
    """``EncodeTensorNameSlice``: the index key of one saved slice of a partitioned tensor."""
    out = bytearray(_num_increasing(0))  # every slice key starts with \x00, sorting before names
    out += _escape(name) + b"\x00\x01"  # OrderedCode::WriteString: escaped bytes + separator
    out += _num_increasing(len(extents))
    for extent in extents:
        out += _signed_num_increasing(extent.start)
        out += _signed_num_increasing(-1 if extent.length is None else extent.length)
    return bytes(out)


def _escape(name: bytes) -> bytes:
    out = bytearray()
    for byte in name:
        if byte == 0x00:
            out += b"\x00\xff"
        elif byte == 0xFF:
            out += b"\xff\x00"
        else:
            out.append(byte)
    return bytes(out)


# --- reading ----------------------------------------------------------------------------


class _Shards:
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


class _Bundle:
    """One opened bundle: its index decoded, its shards opened lazily."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.index_path = _index_of(prefix)
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
            num_shards, endianness, version = _parse_header(self.header_value)
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
        self.shards = _Shards(prefix, num_shards)
        self.missing: set[int] = set()  # data shards the index needs and the disk lacks
        self.entries: dict[bytes, BundleEntry] = {}
        for key, value in entries:
            try:
                self.entries[key] = _parse_entry(key, value)
            except DecodeError as e:
                raise self._corrupt(f"unreadable BundleEntryProto ({e})", tensor=_key_name(key)) from e

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


@dataclass(frozen=True)
class _Part:
    entry: BundleEntry
    index: tuple[slice, ...]


def _assembled_loader(bundle: _Bundle, full: BundleEntry, parts: list[_Part], name: str) -> Callable[[], np.ndarray]:
    """A loader that pastes a partitioned tensor's slices into one array."""

    def load() -> np.ndarray:
        out = np.empty(full.shape, dtype=dtypes.numpy_dtype(DATA_TYPES[full.dtype]))
        for part in parts:
            out[part.index] = bundle.read(part.entry, name)
        return out

    return load


def _plain_loader(bundle: _Bundle, entry: BundleEntry, name: str) -> Callable[[], np.ndarray]:
    return lambda: bundle.read(entry, name)


def _row_reader(bundle: _Bundle, entry: BundleEntry, name: str) -> RowReader | None:
    """Rows of a stored numeric tensor read alone (a partitioned one is pasted together: its loader reads it)."""
    if entry.slices or not entry.shape or entry.shape[0] == 0 or DATA_TYPES[entry.dtype] == dtypes.STRING:
        return None
    return lambda start, stop: bundle.read_rows(entry, name, start, stop)


def _slice_parts(bundle: _Bundle, full: BundleEntry, name: str) -> list[_Part]:
    """Find each slice entry of a partitioned tensor and check that they tile it exactly."""
    parts = []
    boxes: list[tuple[tuple[int, int], ...]] = []
    rank = len(full.shape)
    for proto_extents in full.slices:
        # No extents at all is TF's "-": the whole tensor.
        extents = proto_extents or tuple(Extent(0, None) for _ in range(rank))
        if len(extents) != rank:
            raise bundle._corrupt(f"a slice has {len(extents)} extents for a rank-{rank} tensor", tensor=name)
        box = []
        for extent, dim in zip(extents, full.shape, strict=True):
            length = dim - extent.start if extent.length is None else extent.length
            if extent.start < 0 or length < 0 or extent.start + length > dim:
                raise bundle._corrupt(
                    f"slice extent (start {extent.start}, length {extent.length}) outside a dimension of {dim}",
                    tensor=name,
                )
            box.append((extent.start, extent.start + length))
        key = encode_slice_key(full.key, proto_extents)
        entry = bundle.entries.get(key)
        if entry is None:
            raise bundle._corrupt(
                f"the entry for slice {[f'{a}:{b}' for a, b in box]} (key {key!r}) is missing", tensor=name
            )
        shape = tuple(b - a for a, b in box)
        if entry.shape != shape or entry.dtype != full.dtype or entry.slices:
            raise bundle._corrupt(
                f"the slice entry has shape {list(entry.shape)} and dtype code {entry.dtype}, expected "
                f"{list(shape)} and {full.dtype}",
                tensor=name,
            )
        parts.append(_Part(entry, tuple(slice(a, b) for a, b in box)))
        boxes.append(tuple(box))
    # Disjoint boxes whose volumes add up to the whole cover it exactly.
    total = math.prod(full.shape)  # Python ints: a damaged shape must not wrap around int64
    covered = sum(math.prod(b - a for a, b in box) for box in boxes)
    overlapping = any(
        all(a1 < b2 and a2 < b1 for (a1, b1), (a2, b2) in zip(p, q, strict=True))
        for i, p in enumerate(boxes)
        for q in boxes[i + 1 :]
    )
    if covered != total or overlapping:
        raise bundle._corrupt(
            f"the {len(boxes)} slices cover {covered} of {total} elements" + (" and overlap" if overlapping else ""),
            tensor=name,
        )
    return parts


def _open(path: Path, prefix: Path, *, format: str, metadata: dict[str, object] | None = None) -> Checkpoint:
    bundle = _Bundle(prefix)
    try:
        return _build(path, bundle, format=format, metadata=metadata or {})
    except BaseException:
        bundle.shards.close()
        raise


@dataclass(frozen=True)
class _Located:
    loader: Callable[[], np.ndarray]
    nbytes: int
    location: str
    row_reader: RowReader | None = None


def _locate_value(bundle: _Bundle, entry: BundleEntry, name: str, sizes: dict[int, int | None]) -> _Located:
    """Check where an entry's bytes lie (stat only) and make its loader."""
    if not entry.slices:
        bundle.check_extent(entry, name, sizes)
        located = _plain_loader(bundle, entry, name), entry.size, bundle.data_location(entry)
        return _Located(*located, row_reader=_row_reader(bundle, entry, name))
    parts = _slice_parts(bundle, entry, name)
    for part in parts:
        bundle.check_extent(part.entry, name, sizes)
    location = bundle.data_location(parts[0].entry)
    if len(parts) > 1:
        location += f" (+{len(parts) - 1} more slices)"
    return _Located(_assembled_loader(bundle, entry, parts, name), sum(p.entry.size for p in parts), location)


def _read_graph(bundle: _Bundle, located: dict[str, _Located]) -> dict[str, object_graph.GraphEntry] | None:
    entry = bundle.entries.get(OBJECT_GRAPH_KEY.encode())
    if entry is None or OBJECT_GRAPH_KEY not in located or DATA_TYPES.get(entry.dtype) != dtypes.STRING:
        return None
    if entry.shard_id in bundle.missing:
        return None  # the warning names the shard; names stay as the index lists them
    # The one value read at open time: a few KB that say what every other key is.
    serialized = located[OBJECT_GRAPH_KEY].loader().reshape(-1)
    if serialized.size != 1:
        return None
    try:
        return object_graph.read_object_graph(bytes(serialized[0]))
    except DecodeError as e:
        raise CorruptCheckpoint(
            "Corrupt object graph",
            path=bundle.shards.filename(entry.shard_id),
            tensor=OBJECT_GRAPH_KEY,
            detail=str(e),
            hint="The checkpoint's object graph is damaged; copy or download the checkpoint again",
        ) from e


def _fingerprint(bundle: _Bundle, key: str) -> tuple[int, tuple[int, ...], int, int] | None:
    """What the index says of a value's bytes (dtype, shape, size, CRC32C); ``None`` for a partitioned one."""
    entry = bundle.entries.get(key.encode("utf-8", "surrogateescape"))
    if entry is None or entry.slices:
        return None
    return entry.dtype, entry.shape, entry.size, entry.crc32c


def _build(path: Path, bundle: _Bundle, *, format: str, metadata: dict[str, object]) -> Checkpoint:
    sizes: dict[int, int | None] = {}
    located: dict[str, _Located] = {}
    skipped: dict[str, str] = {}
    for key, entry in bundle.entries.items():
        if key.startswith(b"\x00"):
            continue  # one saved slice of a partitioned tensor: listed under the tensor's name
        if entry.dtype not in DATA_TYPES:
            skipped[entry.name] = _UNSUPPORTED_TYPES.get(entry.dtype, f"DataType {entry.dtype}")
            continue
        located[entry.name] = _locate_value(bundle, entry, entry.name, sizes)
    graph = _read_graph(bundle, located)
    copies: dict[str, str] = {}
    if graph is not None:
        graph, copies = object_graph.merge_copies(graph, lambda key: _fingerprint(bundle, key))

    records: list[TensorRecord] = []
    tied: list[tuple[str, ...]] = []
    for name, where in located.items():
        entry = bundle.entries[name.encode("utf-8", "surrogateescape")]
        kind: TensorKind
        record_path = slot_of = slot_name = None
        info = graph.get(name) if graph is not None else None
        if name == OBJECT_GRAPH_KEY:
            kind = "metadata"
        elif info is not None:
            kind, record_path, slot_of, slot_name = info.kind, info.path, info.slot_of, info.slot_name
            if info.aliases:  # one variable held by two model objects: stored once, a tie
                tied.append((info.readable_path, *info.alias_paths))
        else:
            tagged = classify_tf_name(name)
            kind, slot_of, slot_name = tagged.kind, tagged.slot_of, tagged.slot_name
        records.append(
            TensorRecord(
                name=name,
                shape=entry.shape,
                dtype=DATA_TYPES[entry.dtype],
                nbytes=where.nbytes,
                location=where.location,
                loader=where.loader,
                row_reader=where.row_reader,
                kind=kind,
                path=record_path,
                slot_of=slot_of,
                slot_name=slot_name,
            )
        )

    files = [str(bundle.index_path), *map(str, _present_shards(bundle))]
    warnings = []
    if bundle.missing:
        absent = sorted(bundle.missing)
        shown = ", ".join(bundle.shards.filename(i).name for i in absent[:3]) + (", ..." if len(absent) > 3 else "")
        warnings.append(
            f"{len(absent)} of the {bundle.num_shards} data shard(s) the index needs are missing ({shown}): names, "
            "shapes and dtypes come from the index alone, values in them cannot be read"
            + ("; without the object graph, TF2 names are not tagged" if _graph_missing(bundle) else "")
        )
    meta: dict[str, object] = {
        "style": "object-based" if graph is not None or _graph_missing(bundle) else "name-based",
        "prefix": str(bundle.prefix),
        "num_shards": bundle.num_shards,
        "endianness": bundle.endianness,
        **metadata,
    }
    if copies:
        meta["copies"] = copies  # second saved copies of a model variable (Keras' export): copy key -> original key
    if skipped:
        meta["skipped"] = skipped  # dtypes with no numpy equivalent (variants, quantized)
    return Checkpoint(
        records,
        format=format,
        path=str(path),
        files=files,
        framework="tensorflow",
        metadata=meta,
        tied=tied,
        closer=bundle.shards.close,
        warnings=warnings,
    )


def _present_shards(bundle: _Bundle) -> list[Path]:
    """The data shards on disk, found by listing the folder once: a damaged header may claim 2^31 shards."""
    stem = f"{bundle.prefix.name}.data-"
    tail = f"-of-{bundle.num_shards:05d}"
    if isinstance(bundle.prefix, RemotePath):  # no listing behind a URL: the shards the index uses, found by stat
        used = {e.shard_id for e in bundle.entries.values() if 0 <= e.shard_id < bundle.num_shards}
        return [bundle.shards.filename(i) for i in sorted(used - bundle.missing)]
    try:
        names = os.listdir(bundle.prefix.parent)
    except OSError:
        return []
    found = [n for n in names if n.startswith(stem) and n.endswith(tail) and n[len(stem) : -len(tail)].isdigit()]
    return [bundle.prefix.parent / n for n in sorted(found) if int(n[len(stem) : -len(tail)]) < bundle.num_shards]


def _graph_missing(bundle: _Bundle) -> bool:
    entry = bundle.entries.get(OBJECT_GRAPH_KEY.encode())
    return entry is not None and entry.shard_id in bundle.missing


def read_checkpoint(path: Path) -> Checkpoint:
    """Open a TF1 name-based or TF2 object-based checkpoint, reading only its index.

    Args:
        path: the prefix (``model.ckpt-1000``), its ``.index``, ``.data-*`` or ``.meta`` file,
            or a directory with a ``checkpoint`` state file or a single ``*.index``.

    Returns:
        A :class:`~bridge.core.model.Checkpoint` (format ``tf-checkpoint``) whose names are
        those ``tf.train.list_variables`` shows; partitioned variables appear once,
        assembled from their slices when read.

    Raises:
        CheckpointNotFound: the index or a data shard is missing.
        CorruptCheckpoint: the index or a shard contradicts the format.
        UnsupportedFeature: a Snappy-compressed index or a newer bundle version.
    """
    path = as_path(path)
    return _open(path, _locate(path), format="tf-checkpoint")


def read_saved_model(path: Path) -> Checkpoint:
    """Open the ``variables/variables`` bundle of a SavedModel or TF1 Hub module directory.

    Raises:
        CheckpointNotFound: the directory has no ``variables/variables.index``.
    """
    path = as_path(path)
    found = _saved_model(path)
    if found is None:
        raise CheckpointNotFound(
            "SavedModel not found",
            path=path,
            detail="no saved_model.pb or tfhub_module.pb in the directory",
            hint="Pass the SavedModel directory (the one holding saved_model.pb and variables/)",
        )
    directory, container = found
    prefix = directory / "variables" / "variables"
    if not _index_of(prefix).is_file():
        raise CheckpointNotFound(
            "SavedModel variables not found",
            path=_index_of(prefix),
            detail="no variables bundle (a model without variables, or an incomplete copy)",
            hint="Copy the variables/ directory too",
        )
    metadata: dict[str, object] = {"container": container}
    if directory != path and directory.parent == path:  # a TF Serving base path: the version it would serve
        metadata["serving_version"] = f"{directory.name} (the highest version, the one TF Serving loads)"
    return _open(path, prefix, format="saved-model", metadata=metadata)
