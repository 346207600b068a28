"""Native reader of safetensors files and sharded sets; needs neither torch nor safetensors.

Layout (https://github.com/huggingface/safetensors): an unsigned 64-bit little-endian
header length N, N bytes of UTF-8 JSON, then the data area.  The JSON maps each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative
to the data area) plus an optional ``"__metadata__"`` string map.  Values are
little-endian, C-contiguous, and the tensors tile the data area exactly.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import CorruptCheckpoint, UnsupportedFeature
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import classify_torch_name
from bridge.core.shard_index import load_index
from pt_side._files import (
    MappedFiles,
    check_index_coverage,
    claim_name,
    is_count,
    read_config,
    resolve_weights,
)

FORMAT = "safetensors"
SUFFIX = ".safetensors"
INDEX_SUFFIX = ".safetensors.index.json"
# transformers' save_pretrained names (single file, sharded set).
SINGLE_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
# The safetensors library refuses headers above 100 MB; so do we (and so does sniff).
MAX_HEADER = 100_000_000

# safetensors dtype codes -> bridge vocabulary.
_DTYPES: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8",
    "BOOL": "bool", "C64": "complex64",
}  # fmt: skip

_REHEADER = "Re-download or re-save the file; a partial copy is the usual cause"


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offsets
    end: int


def sniff(path: Path) -> bool:
    """A ``.safetensors`` file with a plausible header start, any file whose header parses,
    a ``*.safetensors.index.json``, or a folder holding ``model.safetensors[.index.json]``."""
    try:
        if path.is_dir():
            return (path / INDEX_NAME).is_file() or (path / SINGLE_NAME).is_file()
        if not path.is_file():
            return False
        if path.name.endswith(INDEX_SUFFIX):
            return True
        with path.open("rb") as f:
            head = f.read(9)
            if len(head) < 9:
                return False
            (length,) = struct.unpack("<Q", head[:8])
            plausible = 2 <= length <= MAX_HEADER and head[8:9] == b"{"
            if path.suffix == SUFFIX:
                # Claim it even if truncated, so that reading reports what is wrong.
                return plausible
            if not plausible or length > path.stat().st_size - 8:
                return False
            header = load_json(head[8:] + f.read(length - 1), path=path, what="safetensors header", hint="")
    except (OSError, ValueError):
        return False
    return (
        isinstance(header, dict)
        and bool(header)
        and all(
            key == "__metadata__" or (isinstance(v, dict) and "data_offsets" in v and "dtype" in v)
            for key, v in header.items()
        )
    )


def read(path: Path) -> Checkpoint:
    """Open a safetensors file, a shard index, or a transformers output folder (index only)."""
    folder, index_path, single = resolve_weights(path, SINGLE_NAME, INDEX_NAME, "safetensors", "the .safetensors file")
    maps = MappedFiles()
    metadata: dict[str, Any] = {}
    records: list[TensorRecord] = []
    header_meta: dict[str, Any] = {}
    index = load_index(index_path) if index_path is not None else None
    if index is not None:
        files = index.shards
        metadata["index_metadata"] = index.metadata
    else:
        files = [single]
    found: dict[str, Path] = {}
    for file in files:
        entries, meta = read_header(file)
        header_meta.update(meta)
        for entry in entries:
            claim_name(found, entry.name, file)
            records.append(_record(file, entry, maps))
    if index is not None:
        check_index_coverage(index, found)
    metadata["shards"] = [f.name for f in files]
    metadata["metadata"] = header_meta
    config = read_config(folder)
    if config is not None:
        metadata["config"] = config
    return Checkpoint(
        records,
        format=FORMAT,
        path=str(path),
        files=[str(f) for f in ([index_path] if index_path else []) + files],
        framework="pytorch",
        metadata=metadata,
        closer=maps.close,
    )


def read_header(path: Path) -> tuple[list[_Entry], dict[str, Any]]:
    """Parse and validate one file's header: its tensors in data order, and ``__metadata__``."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpoint(
                "Not a safetensors file",
                path=path,
                detail=f"{size} bytes, shorter than the 8-byte header length",
                hint=_REHEADER,
            )
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER:
            raise CorruptCheckpoint(
                "Implausible safetensors header",
                path=path,
                detail=f"header length field says {length} bytes (limit {MAX_HEADER})",
                hint=_REHEADER,
            )
        if 8 + length > size:
            raise CorruptCheckpoint(
                "Truncated safetensors header",
                path=path,
                detail=f"the header needs {length} bytes but the file has {size - 8} after the length field",
                hint=_REHEADER,
            )
        raw = f.read(length)
    header = load_json(raw, path=path, what="safetensors header", hint=_REHEADER, object_pairs_hook=_no_duplicates)
    if not isinstance(header, dict):
        raise CorruptCheckpoint(
            "Unreadable safetensors header", path=path, detail="the JSON is not an object", hint=_REHEADER
        )
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise CorruptCheckpoint(
            "Unreadable safetensors header", path=path, detail="__metadata__ is not an object", hint=_REHEADER
        )
    data_start = 8 + length
    data_len = size - data_start
    entries = [_entry(path, name, info, data_start, data_len) for name, info in header.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    # The format requires the tensors to tile the data area: no gaps, no overlaps, no tail.
    cursor = data_start
    for entry in entries:
        if entry.begin != cursor:
            what = "overlaps the previous tensor" if entry.begin < cursor else "leaves a gap before it"
            raise CorruptCheckpoint(
                "Inconsistent safetensors header",
                path=path,
                tensor=entry.name,
                detail=f"its data starts at byte {entry.begin - data_start} of the data area and {what} "
                f"(expected {cursor - data_start})",
                hint=_REHEADER,
            )
        cursor = entry.end
    if cursor != size:
        raise CorruptCheckpoint(
            "Inconsistent safetensors header",
            path=path,
            detail=f"the tensors cover {cursor - data_start} bytes but the data area has {data_len}",
            hint=_REHEADER,
        )
    return entries, meta


def _entry(path: Path, name: str, info: Any, data_start: int, data_len: int) -> _Entry:
    def bad(detail: str) -> CorruptCheckpoint:
        return CorruptCheckpoint(
            "Inconsistent safetensors header", path=path, tensor=name, detail=detail, hint=_REHEADER
        )

    if not isinstance(info, dict):
        raise bad("its entry is not an object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(code, str):
        raise bad("no dtype")
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise UnsupportedFeature(
            "Unsupported safetensors dtype",
            path=path,
            tensor=name,
            detail=f"dtype code {code!r}; readable: {', '.join(_DTYPES)}",
            hint="Cast the tensor to a supported dtype when saving",
        )
    if not isinstance(shape, list) or not all(is_count(d) for d in shape):
        raise bad(f"shape {shape!r} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(is_count(o) for o in offsets):
        raise bad(f"data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    if begin > end or end > data_len:
        raise bad(
            f"data_offsets [{begin}, {end}] run past the data area ({data_len} bytes; the file is truncated "
            "or the header is wrong)"
            if end > data_len
            else f"data_offsets [{begin}, {end}] end before they begin"
        )
    expected = math.prod(shape) * (dtypes.itemsize(dtype) or 1)
    if end - begin != expected:
        raise bad(f"{end - begin} bytes stored but shape {shape} of {dtype} needs {expected}")
    return _Entry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _record(path: Path, entry: _Entry, maps: MappedFiles) -> TensorRecord:
    np_dtype = dtypes.numpy_dtype(entry.dtype)
    tag = classify_torch_name(entry.name)

    def load() -> np.ndarray:
        # A read-only view of the map: no copy; the values are little-endian like every
        # platform numpy targets here.
        raw = maps.bytes_of(path)[entry.begin : entry.end]
        return raw.view(np_dtype).reshape(entry.shape)

    loader: Callable[[], np.ndarray] = load
    return TensorRecord(
        name=entry.name,
        shape=entry.shape,
        dtype=entry.dtype,
        nbytes=entry.end - entry.begin,
        location=f"{path.name} @ {entry.begin}",
        loader=loader,
        kind=tag.kind,
        slot_name=tag.slot_name,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out
