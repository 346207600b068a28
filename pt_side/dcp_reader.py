"""Native, torch-free reader of ``torch.distributed.checkpoint`` (DCP) directories: ``.metadata`` + ``*.distcp``.

torch's ``FileSystemWriter`` writes one ``__<rank>_<k>.distcp`` file per rank (or per rank and thread) and rank 0
writes ``.metadata``: a plain ``pickle`` of ``torch.distributed.checkpoint.metadata.Metadata``, whose
``state_dict_metadata`` maps each flattened name (``model.layer.0.weight``, ``optim.state.<fqn>.exp_avg``) to a
``TensorStorageMetadata`` (dtype, full size, the chunks each rank saved: offsets + sizes) or a
``BytesStorageMetadata`` (any other object, torch.save'd), and whose ``storage_data`` maps each
``MetadataIndex(fqn, chunk offset)`` to a ``_StorageInfo(relative_path, offset, length)``.  Every item's bytes
are a complete ``torch.save`` zip archive of that chunk, stored at ``offset`` in its ``.distcp`` file
(torch 2.13 ``filesystem._write_item``; the safetensors serialization and stream transforms are refused).

``.metadata`` is read by the restricted unpickler with an allow-list of exactly DCP's metadata classes, resolved to
local stand-ins here and then to plain dataclasses; any other global is refused without being imported.  A chunk is
read as the torch.save archive it is (:mod:`pt_side.torch_containers`, same unpickler); a tensor split across ranks is
assembled on read, after its chunks were checked to tile it exactly and to fit in the bytes their files hold.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import BridgeError, CheckpointNotFound, CorruptCheckpoint, UnsupportedFeature
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import classify_torch_name
from pt_side._files import MappedFiles, is_count, read_config
from pt_side.restricted_unpickler import (
    ALLOWED,
    REDOWNLOAD,
    Malformed,
    SafeUnpickler,
    Tensor,
    _allowed_global,
    _DType,
    _Global,
    refused,
    unpickle,
)

FORMAT = "dcp"
METADATA_NAME = ".metadata"
SUFFIX = ".distcp"
_MAX_SCALARS = 100  # non-tensor items whose small scalar value inspect shows
_MAX_SCALAR_ITEM = 1 << 16

# ----------------------------------------------------------------------------------------
# Stand-ins for DCP's metadata classes.  Pickled dataclasses arrive as NEWOBJ (no arguments) then BUILD with their
# state: the stand-ins keep that state once, to be checked when they are turned into the dataclasses below.

_DCP = "torch.distributed.checkpoint"


class _Stub:
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        if self.state is not None:
            raise Malformed(f"the pickle sets the state of a {type(self).__name__} twice")
        if not isinstance(state, (dict, tuple)):
            raise Malformed(f"{type(self).__name__} state is a {type(state).__name__}")
        self.state = state

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default) if isinstance(self.state, dict) else default


class _Metadata(_Stub): ...


class _TensorStorage(_Stub): ...


class _BytesStorage(_Stub): ...


class _Chunk(_Stub): ...


class _Properties(_Stub): ...


class _Index(_Stub): ...


class _StorageInfo(_Stub): ...


class _StorageMeta(_Stub): ...


_CLASSES: dict[tuple[str, str], type[_Stub]] = {
    (f"{_DCP}.metadata", "Metadata"): _Metadata,
    (f"{_DCP}.metadata", "TensorStorageMetadata"): _TensorStorage,
    (f"{_DCP}.metadata", "BytesStorageMetadata"): _BytesStorage,
    (f"{_DCP}.metadata", "ChunkStorageMetadata"): _Chunk,
    (f"{_DCP}.metadata", "TensorProperties"): _Properties,
    (f"{_DCP}.metadata", "MetadataIndex"): _Index,
    (f"{_DCP}.metadata", "StorageMeta"): _StorageMeta,
    (f"{_DCP}.filesystem", "_StorageInfo"): _StorageInfo,
    # torch 2.0-2.1 kept TensorProperties with the sharded tensors.
    ("torch.distributed._shard.sharded_tensor.metadata", "TensorProperties"): _Properties,
}


def _memory_format(code: Any) -> int:  # _MEM_FORMAT_ENCODING(0): only the code matters
    if not is_count(code):
        raise Malformed(f"memory format code {code!r}")
    return int(code)


def _layout(name: Any) -> str:  # torch.serialization._get_layout("torch.strided")
    if not isinstance(name, str):
        raise Malformed(f"layout {name!r}")
    return name


def _path(*parts: Any) -> str:  # StorageMeta.checkpoint_id may be a pathlib path
    if not all(isinstance(p, str) for p in parts):
        raise Malformed("a path made of something other than strings")
    return "/".join(parts)


_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    (f"{_DCP}.metadata", "_MEM_FORMAT_ENCODING"): _memory_format,
    ("torch.distributed._shard.sharded_tensor.metadata", "MEM_FORMAT_ENCODING"): _memory_format,
    ("torch.serialization", "_get_layout"): _layout,
    ("torch", "Size"): ALLOWED[("torch", "Size")],
    ("collections", "OrderedDict"): ALLOWED[("collections", "OrderedDict")],
    **{(m, n): _path for m in ("pathlib", "pathlib._local") for n in ("PosixPath", "PurePosixPath", "WindowsPath")},
}


class _MetadataUnpickler(SafeUnpickler):
    """The allow-list of ``.metadata``: DCP's classes, torch dtypes, ``torch.Size``, layouts, paths."""

    def find_class(self, module: str, name: str) -> Any:
        cls = _CLASSES.get((module, name))
        if cls is not None:
            return cls
        fn = _FUNCTIONS.get((module, name))
        if fn is not None:
            return _Global(fn, f"{module}.{name}")
        if module == "torch" and name in ("strided", "sparse_coo"):
            return f"torch.{name}"
        found = _allowed_global(module, name) if module == "torch" else None
        if isinstance(found, _DType):
            return found
        raise refused(self._path, module, name)


# ----------------------------------------------------------------------------------------
# The metadata as plain dataclasses.


@dataclass(frozen=True)
class Chunk:
    """One saved piece of a tensor: where it sits in the full tensor, and where its torch.save archive is."""

    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str
    offset: int
    length: int


@dataclass(frozen=True)
class TensorItem:
    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class ObjectItem:
    """A non-tensor entry (a step counter, an optimizer's param groups): a torch.save'd Python object."""

    name: str
    file: str
    offset: int
    length: int


@dataclass(frozen=True)
class DcpMetadata:
    tensors: tuple[TensorItem, ...]
    objects: tuple[ObjectItem, ...]
    version: str | None
    tensor_dicts: tuple[tuple[str | int, ...], ...] = ()  # as torch_pickle's: where the state dicts were nested


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(is_count(d) for d in value):
        raise Malformed(f"{what} {value!r} is not a tuple of non-negative integers")
    return tuple(int(d) for d in value)


def _dtype(props: Any, name: str, path: Path) -> str:
    if not isinstance(props, _Properties):
        raise Malformed(f"{name}: properties are not TensorProperties")
    state = props.state
    dtype = state[0] if isinstance(state, tuple) and state else props.get("dtype")
    layout = state[1] if isinstance(state, tuple) and len(state) > 1 else props.get("layout", "torch.strided")
    if not isinstance(dtype, _DType):
        raise Malformed(f"{name}: dtype {dtype!r}")
    if layout != "torch.strided":
        raise UnsupportedFeature(
            "Tensor layout not supported", path=path, tensor=name, detail=f"{layout}",
            hint="Save dense (strided) tensors",
        )  # fmt: skip
    if dtype.dtype is None:
        raise UnsupportedFeature(
            "Unsupported tensor dtype", path=path, tensor=name, detail=f"torch.{dtype.name}",
            hint="Cast it to a supported dtype (float32, bfloat16...) and save again",
        )  # fmt: skip
    return dtype.dtype


def _location(info: Any, where: str) -> tuple[str, int, int]:
    if not isinstance(info, _StorageInfo):
        raise Malformed(f"{where}: storage data is not a _StorageInfo")
    file, offset, length = info.get("relative_path"), info.get("offset"), info.get("length")
    if not isinstance(file, str) or not file or "/" in file or "\\" in file or file in (".", ".."):
        raise Malformed(f"{where}: file {file!r} is not a file name inside the checkpoint directory")
    if not is_count(offset) or not is_count(length):
        raise Malformed(f"{where}: offset {offset!r} / length {length!r}")
    if info.get("transform_descriptors"):
        raise UnsupportedFeature(
            "DCP stream transforms not supported",
            detail=f"{where} is stored through {info.get('transform_descriptors')!r} (compression, encryption)",
            hint="Save the checkpoint without storage-writer extensions",
        )
    return file, int(offset), int(length)


def parse_metadata(obj: Any, path: Path) -> DcpMetadata:
    """The unpickled stand-ins, checked and turned into :class:`DcpMetadata`."""
    if not isinstance(obj, _Metadata):
        raise Malformed("the pickle is not a DCP Metadata")
    entries, storage = obj.get("state_dict_metadata"), obj.get("storage_data")
    if not isinstance(entries, dict) or not isinstance(storage, dict):
        raise Malformed("Metadata without state_dict_metadata / storage_data dicts")
    where: dict[tuple[str, tuple[int, ...] | None], tuple[str, int, int]] = {}
    for index, info in storage.items():
        if not isinstance(index, _Index) or not isinstance(index.get("fqn"), str):
            raise Malformed("a storage_data key is not a MetadataIndex")
        offset = index.get("offset")
        key = (str(index.get("fqn")), None if offset is None else _dims(offset, "chunk offset"))
        where[key] = _location(info, key[0])
    tensors: list[TensorItem] = []
    objects: list[ObjectItem] = []
    for name, entry in entries.items():
        if not isinstance(name, str):
            raise Malformed(f"state_dict_metadata key {name!r}")
        if isinstance(entry, _BytesStorage):
            if (name, None) not in where:
                raise Malformed(f"{name}: no storage data")
            objects.append(ObjectItem(name, *where[(name, None)]))
            continue
        if not isinstance(entry, _TensorStorage) or not isinstance(entry.get("chunks"), list):
            raise Malformed(f"{name}: neither TensorStorageMetadata nor BytesStorageMetadata")
        shape = _dims(entry.get("size"), f"{name} size")
        chunks = []
        for chunk in entry.get("chunks"):
            if not isinstance(chunk, _Chunk):
                raise Malformed(f"{name}: a chunk is not a ChunkStorageMetadata")
            offsets, sizes = _dims(chunk.get("offsets"), f"{name} chunk offsets"), _dims(chunk.get("sizes"), "sizes")
            if (name, offsets) not in where:
                raise Malformed(f"{name}: no storage data for the chunk at {list(offsets)}")
            chunks.append(Chunk(offsets, sizes, *where[(name, offsets)]))
        item = TensorItem(name, _dtype(entry.get("properties"), name, path), shape, tuple(chunks))
        _check_tiling(item, path)
        tensors.append(item)
    version = obj.get("version")
    planner = obj.get("planner_data")
    paths = [planner.get(t.name) for t in tensors] if isinstance(planner, dict) else []
    nests = dict.fromkeys(tuple(p[:-1]) for p in paths if isinstance(p, tuple) and p)
    dicts = tuple(p for p in nests if all(isinstance(k, (str, int)) for k in p))[:_MAX_SCALARS]
    return DcpMetadata(tuple(tensors), tuple(objects), version if isinstance(version, str) else None, dicts)


def _check_tiling(item: TensorItem, path: Path) -> None:
    """The chunks lie inside the tensor, do not overlap and cover it: assembling them fills every element once."""

    def bad(detail: str) -> CorruptCheckpoint:
        return CorruptCheckpoint(
            "Damaged DCP metadata", path=path, tensor=item.name, detail=detail, hint=REDOWNLOAD
        )  # fmt: skip

    total = 0
    for c in item.chunks:
        if len(c.offsets) != len(item.shape) or len(c.sizes) != len(item.shape):
            raise bad(f"a chunk of rank {len(c.sizes)} in a tensor of shape {list(item.shape)}")
        if any(o + s > d for o, s, d in zip(c.offsets, c.sizes, item.shape, strict=True)):
            raise bad(f"the chunk at {list(c.offsets)} of size {list(c.sizes)} runs past shape {list(item.shape)}")
        total += math.prod(c.sizes)
    if total != math.prod(item.shape):
        raise bad(f"its chunks hold {total} elements, the tensor {math.prod(item.shape)}")
    if len(item.chunks) > 1 and item.shape:
        lo = np.array([c.offsets for c in item.chunks], np.int64)
        hi = lo + np.array([c.sizes for c in item.chunks], np.int64)
        nonempty = (hi > lo).all(axis=1)
        lo, hi = lo[nonempty], hi[nonempty]
        overlap = np.asarray(((lo[:, None, :] < hi[None, :, :]) & (lo[None, :, :] < hi[:, None, :])).all(axis=2))
        np.fill_diagonal(overlap, False)
        if overlap.any():
            raise bad("two of its chunks overlap (and so another part of it is missing)")


# ----------------------------------------------------------------------------------------
# Reading.


def sniff(path: Path) -> bool:
    """A directory holding ``.metadata`` that starts as a pickle naming DCP's Metadata class, or ``.metadata``."""
    meta = path / METADATA_NAME if path.is_dir() else path
    if meta.name != METADATA_NAME:
        return False
    try:
        with meta.open("rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head[:1] == b"\x80" and b"torch.distributed.checkpoint" in head


def _load_metadata(meta: Path) -> DcpMetadata:
    try:
        raw = meta.read_bytes()
    except FileNotFoundError:
        raise CheckpointNotFound("DCP metadata not found", path=meta, hint="Point at the DCP directory") from None
    try:
        obj = unpickle(io.BytesIO(raw), meta, "DCP metadata (.metadata)", unpickler=_MetadataUnpickler)
        return parse_metadata(obj, meta)
    except Malformed as exc:
        raise CorruptCheckpoint("Damaged DCP metadata", path=meta, detail=str(exc), hint=REDOWNLOAD) from None


def _chunk_reader(folder: Path, item: TensorItem, chunk: Chunk) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        from pt_side.torch_containers import parse_zip
        from pt_side.torch_pickle import _record

        file = folder / chunk.file
        parsed = parse_zip(file, (chunk.offset, chunk.length))
        try:
            value = parsed.obj
            if not isinstance(value, Tensor) or value.shape != chunk.sizes or value.dtype != item.dtype:
                got = f"{value.dtype} {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise CorruptCheckpoint(
                    "DCP item does not match its metadata",
                    path=file,
                    tensor=item.name,
                    detail=f"the chunk at {list(chunk.offsets)} should be {item.dtype} {list(chunk.sizes)}, "
                    f"the file holds {got}",
                    hint=REDOWNLOAD,
                )
            # A map of its own: unmapped once the value is dropped, so pages read stay resident only while a
            # tensor is in flight (one shared map would keep the whole checkpoint in RSS by the end of a convert).
            record, _ = _record(parsed, item.name, value, MappedFiles())
            return record.numpy()
        finally:
            if parsed.packed is not None:
                parsed.packed.close()

    return read


def _tensor_record(folder: Path, item: TensorItem, sizes: dict[str, int]) -> TensorRecord:
    itemsize = dtypes.itemsize(item.dtype) or 1
    for c in item.chunks:
        # Declared sizes against the bytes present, before anything is read or allocated.
        file = folder / c.file
        if c.file not in sizes:
            raise CheckpointNotFound(
                "DCP data file missing",
                path=file,
                tensor=item.name,
                detail="named by .metadata but not in the directory",
                hint="Copy every __<rank>_<k>.distcp file of the checkpoint beside its .metadata",
            )
        if c.offset + c.length > sizes[c.file] or c.length < math.prod(c.sizes) * itemsize:
            raise CorruptCheckpoint(
                "Truncated DCP data file",
                path=file,
                tensor=item.name,
                detail=f"the chunk at {list(c.offsets)} ({math.prod(c.sizes) * itemsize} bytes of {item.dtype}) "
                f"is stored at bytes {c.offset}..{c.offset + c.length}, the file has {sizes[c.file]}",
                hint=REDOWNLOAD,
            )
    readers = [(c, _chunk_reader(folder, item, c)) for c in item.chunks]

    def load() -> np.ndarray:
        if len(readers) == 1:
            return readers[0][1]()
        out = np.empty(item.shape, dtypes.numpy_dtype(item.dtype))
        for c, read in readers:
            out[tuple(slice(o, o + s) for o, s in zip(c.offsets, c.sizes, strict=True))] = read()
        return out

    tag = classify_torch_name(item.name)
    files = sorted({c.file for c in item.chunks})
    return TensorRecord(
        name=item.name,
        shape=item.shape,
        dtype=item.dtype,
        nbytes=math.prod(item.shape) * itemsize,
        location=f"{', '.join(files)} ({len(item.chunks)} chunk{'s' if len(item.chunks) != 1 else ''})",
        loader=load,
        kind=tag.kind,
        slot_name=tag.slot_name,
    )


def _scalar(folder: Path, obj: ObjectItem) -> Any:
    """A small non-tensor item's value when it is a plain scalar (a step count, a learning rate), else None."""
    from pt_side.torch_containers import parse_zip

    if obj.length > _MAX_SCALAR_ITEM:
        return None
    try:
        parsed = parse_zip(folder / obj.file, (obj.offset, obj.length))
    except BridgeError:
        return None  # shown as an object without a value; reading it is not needed to convert
    value = parsed.obj
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return value[:200] if isinstance(value, str) else None


def read(path: Path) -> Checkpoint:
    """Open a DCP directory (or its ``.metadata``): the metadata only; values are read on demand."""
    folder = path if path.is_dir() else path.parent
    meta = _load_metadata(folder / METADATA_NAME)
    try:
        sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    except OSError as exc:
        raise CheckpointNotFound("Unreadable DCP directory", path=folder, detail=str(exc)) from None
    records = [_tensor_record(folder, item, sizes) for item in meta.tensors]
    scalars = {}
    for obj in meta.objects[:_MAX_SCALARS]:
        if obj.file in sizes and obj.offset + obj.length <= sizes[obj.file]:
            value = _scalar(folder, obj)
            if value is not None:
                scalars[obj.name] = value
    data_files = sorted({c.file for item in meta.tensors for c in item.chunks} | {o.file for o in meta.objects})
    metadata: dict[str, Any] = {
        "style": "torch.distributed.checkpoint",
        "version": meta.version,
        "shards": data_files,
        "objects": [o.name for o in meta.objects],
        "tensor_dicts": [list(p) for p in meta.tensor_dicts],
    }
    if scalars:
        metadata["scalars"] = scalars
    config = read_config(folder)
    if config is not None:
        metadata["config"] = config
    return Checkpoint(
        records,
        format=FORMAT,
        path=str(path),
        files=[str(folder / METADATA_NAME), *(str(folder / f) for f in data_files)],
        framework="pytorch",
        metadata=metadata,
    )
