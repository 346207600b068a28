"""Native, code-free reader of ``torch.save`` files: never imports torch, never runs the pickle's code.

A file's container (zip or legacy, :mod:`pt_side.torch_containers`) gives the pickle's object and where each
storage lies.  The pickle is read by the restricted unpickler (:mod:`pt_side.restricted_unpickler`), whose
``find_class`` resolves only an explicit allow-list of globals to local stand-ins that
*describe* tensors (storage key, dtype, offset, shape, stride); anything else raises
:class:`~bridge.core.errors.UnsafeCheckpoint`.  This module flattens the object into named tensors and slices
their values from one memory map of the file, honouring offset and stride, for one file or a sharded
``*.bin.index.json`` set.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import (
    BridgeError,
    CorruptCheckpoint,
    UnsupportedFeature,
)
from bridge.core.limits import check_inflate
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import classify_torch_name
from bridge.core.shard_index import load_index
from pt_side._files import (
    ZIP_ERRORS,
    MappedFiles,
    check_index_coverage,
    claim_name,
    read_config,
    resolve_weights,
)
from pt_side.restricted_unpickler import REDOWNLOAD, Tensor
from pt_side.torch_containers import MAGIC_BYTES, ZIP_LOCAL, Parsed, parse

FORMAT = "torch"
SINGLE_NAME = "pytorch_model.bin"
INDEX_NAME = "pytorch_model.bin.index.json"
_INDEX_SUFFIXES = (".bin.index.json", ".pt.index.json", ".pth.index.json")
# Extensions people give torch.save files; used only to claim damaged files so that
# reading them reports the damage instead of "format not recognised".
_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".th", ".ckpt", ".tar", ".pkl"})

# Where a scalar python value of a training state is worth keeping as metadata.
_MAX_SCALARS = 100
_MAX_STR = 200


# ----------------------------------------------------------------------------------------
# Flattening into records.


def _walk(obj: Any, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """(dotted name, leaf) pairs: dict keys and list indices joined with dots."""
    if isinstance(obj, Tensor) or not isinstance(obj, (dict, list, tuple)):
        yield prefix, obj
        return
    if id(obj) in seen:  # a container that contains itself
        return
    seen.add(id(obj))
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in items:
        yield from _walk(value, f"{prefix}.{key}" if prefix else str(key), seen)
    seen.discard(id(obj))


def tensor_dicts(obj: Any) -> list[list[str | int]]:
    """Key paths of the dicts that hold tensors directly (``[]``: the root), first found first.

    A training state nests its state dict (``{"model": sd, "optimizer": ...}``) and the flattened
    names cannot tell that ``model.fc.weight`` came from ``obj["model"]`` rather than from a key
    with a dotted prefix (``module.fc.weight``); what the user indexes before ``load_state_dict`` can.
    """
    out: list[list[str | int]] = []
    seen: set[int] = set()

    def visit(value: Any, path: list[str | int]) -> None:
        if len(out) >= _MAX_SCALARS or id(value) in seen or not isinstance(value, (dict, list, tuple)):
            return
        seen.add(id(value))
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        if isinstance(value, dict) and any(isinstance(v, Tensor) for _, v in items):
            out.append(path)
        for key, child in items:
            visit(child, [*path, key if isinstance(key, (str, int)) else str(key)])

    visit(obj, [])
    return out


def _records(parsed: Parsed, maps: MappedFiles) -> tuple[list[TensorRecord], list[tuple[str, ...]], dict[str, Any]]:
    records: list[TensorRecord] = []
    scalars: dict[str, Any] = {}
    groups: dict[tuple[Any, ...], list[str]] = {}
    names: set[str] = set()
    for name, leaf in _walk(parsed.obj, "", set()):
        if not isinstance(leaf, Tensor):
            if len(scalars) < _MAX_SCALARS and (leaf is None or isinstance(leaf, (bool, int, float))):
                scalars[name] = leaf
            elif len(scalars) < _MAX_SCALARS and isinstance(leaf, str):
                scalars[name] = leaf[:_MAX_STR]
            continue
        name = name or "tensor"  # torch.save(tensor): a bare tensor has no key
        if name in names:
            raise UnsupportedFeature(
                "Ambiguous tensor names",
                path=parsed.path,
                tensor=name,
                detail="two entries flatten to the same dotted name",
                hint="Rename one key and save again",
            )
        names.add(name)
        record, tie_key = _record(parsed, name, leaf, maps)
        records.append(record)
        groups.setdefault(tie_key, []).append(name)
    tied = [tuple(group) for group in groups.values() if len(group) > 1]
    return records, tied, scalars


def _record(parsed: Parsed, name: str, t: Tensor, maps: MappedFiles) -> tuple[TensorRecord, tuple[Any, ...]]:
    path = parsed.path
    if t.dtype is None:
        raise UnsupportedFeature(
            "Unsupported tensor dtype",
            path=path,
            tensor=name,
            detail=f"torch.{t.torch_dtype}",
            hint="Cast it to a supported dtype (float32, bfloat16...) and save again",
        )
    itemsize = dtypes.itemsize(t.dtype) or 1
    numel = math.prod(t.shape)
    storage, origin = t.storage, t.storage.origin
    if numel:
        last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, t.stride, strict=True))
        if (last + 1) * itemsize > storage.nbytes:
            raise CorruptCheckpoint(
                "Tensor runs past its storage",
                path=path,
                tensor=name,
                detail=f"offset {t.offset}, shape {list(t.shape)}, stride {list(t.stride)} of {t.dtype} "
                f"need {(last + 1) * itemsize} bytes; storage {storage.key} has {storage.nbytes}",
                hint=REDOWNLOAD,
            )
    start = storage.base + t.offset * itemsize  # within the root storage
    where = origin.member if parsed.style == "zip" else f"storage {storage.key}"
    at = start + (origin.file_offset or 0)
    np_dtype = dtypes.numpy_dtype(t.dtype)
    big_endian = parsed.big_endian
    packed = parsed.packed if origin.file_offset is None else None

    def load() -> np.ndarray:
        if not numel:
            return np.empty(t.shape, np_dtype)
        # A view with stride 0 (torch's expand) takes numel x itemsize once made contiguous, from a storage
        # that may hold one element: bound what it may add before anything is allocated.
        if numel * itemsize > origin.nbytes:
            check_inflate(numel * itemsize, origin.nbytes, path=str(path), tensor=name, how="a view with stride 0")
        try:
            if packed is not None and origin.member is not None:
                member = packed.getinfo(origin.member)
                check_inflate(member.file_size, member.compress_size, path=str(path), tensor=name, how="deflated")
                buffer: np.ndarray = np.frombuffer(packed.read(member), np.uint8)
            else:
                base = int(origin.file_offset or 0)
                buffer = maps.bytes_of(path)[base : base + origin.nbytes]
            # A strided view straight onto the storage bytes; numpy checks it stays inside them.
            strides = tuple(s * itemsize for s in t.stride)
            view = np.ndarray(t.shape, np_dtype, buffer=buffer, offset=start, strides=strides)
        except BridgeError:
            raise
        except ZIP_ERRORS as exc:  # a damaged deflate stream or CRC in a re-zipped file; a view numpy refuses
            raise CorruptCheckpoint(
                "Cannot read tensor", path=path, tensor=name, detail=f"{type(exc).__name__}: {exc}", hint=REDOWNLOAD
            ) from None
        if big_endian:
            return _from_big_endian(view)
        return view if view.flags.c_contiguous else np.ascontiguousarray(view)

    tag = classify_torch_name(name)
    record = TensorRecord(
        name=name,
        shape=t.shape,
        dtype=t.dtype,
        nbytes=numel * itemsize,
        location=f"{path.name}:{where} @ {at}",
        loader=load,
        kind=tag.kind,
        slot_name=tag.slot_name,
    )
    return record, (id(origin), start, t.shape, t.stride, t.dtype)


def _from_big_endian(view: np.ndarray) -> np.ndarray:
    """Values of a big-endian archive (byteorder 'big'), swapped per element (per part for complex)."""
    out = np.ascontiguousarray(view)
    size = out.dtype.itemsize // (2 if out.dtype.kind == "c" else 1)
    if size == 1:
        return out
    return out.reshape(-1).view(f"u{size}").byteswap().view(out.dtype).reshape(out.shape)


# ----------------------------------------------------------------------------------------
# Entry points.


def sniff(path: Path) -> bool:
    """A zip whose first member is ``<archive>/data.pkl``, a legacy pickle with torch's magic
    number, a damaged file with a torch extension, a ``*.bin.index.json``, or a folder
    holding ``pytorch_model.bin[.index.json]``."""
    try:
        if path.is_dir():
            return (path / INDEX_NAME).is_file() or (path / SINGLE_NAME).is_file()
        if not path.is_file():
            return False
        if path.name.endswith(_INDEX_SUFFIXES):
            return True
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return False
    torch_suffix = path.suffix.lower() in _SUFFIXES
    if head.startswith(ZIP_LOCAL):
        if torch_suffix:
            return True
        # torch.save writes data.pkl first.
        (name_len,) = struct.unpack_from("<H", head, 26) if len(head) >= 30 else (0,)
        return head[30 : 30 + name_len].endswith(b"/data.pkl")
    if head[:1] == b"\x80" and MAGIC_BYTES in head[:32]:
        return True
    return torch_suffix and head[257:262] == b"ustar"


def read(path: Path) -> Checkpoint:
    """Open a torch.save file, a ``*.bin.index.json`` sharded set, or a folder holding either."""
    folder, index_path, single = resolve_weights(path, SINGLE_NAME, INDEX_NAME, "PyTorch", "the .bin/.pt file")
    maps = MappedFiles()
    index = load_index(index_path) if index_path is not None else None
    files = index.shards if index is not None else [single]
    records: list[TensorRecord] = []
    tied: list[tuple[str, ...]] = []
    found: dict[str, Path] = {}
    metadata: dict[str, Any] = {}
    packed: list[zipfile.ZipFile] = []
    try:
        for file in files:
            parsed = parse(file)
            if parsed.packed is not None:
                packed.append(parsed.packed)
            file_records, file_tied, scalars = _records(parsed, maps)
            for record in file_records:
                claim_name(found, record.name, file)
            records += file_records
            tied += file_tied
            if index is None:
                metadata.update(style=parsed.style, **parsed.facts)
                metadata["tensor_dicts"] = tensor_dicts(parsed.obj)
                if scalars:
                    metadata["scalars"] = scalars
            else:
                metadata.setdefault("style", parsed.style)
    except BaseException:
        for archive in packed:
            archive.close()
        raise
    if index is not None:
        check_index_coverage(index, found)
        metadata["index_metadata"] = index.metadata
    metadata["shards"] = [f.name for f in files]
    config = read_config(folder)
    if config is not None:
        metadata["config"] = config

    def close() -> None:
        maps.close()
        for archive in packed:
            archive.close()

    return Checkpoint(
        records,
        format=FORMAT,
        path=str(path),
        files=[str(f) for f in ([index_path] if index_path else []) + files],
        framework="pytorch",
        metadata=metadata,
        tied=tied,
        closer=close,
    )
