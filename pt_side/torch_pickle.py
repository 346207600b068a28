"""Native, code-free reader of ``torch.save`` files: never imports torch, never runs the pickle's code.

``torch.save`` writes a pickle whose tensors are calls to ``torch._utils._rebuild_tensor_v2``
(or ``_v3`` for dtypes without a legacy storage class) over *persistent ids* that name
storages stored beside the pickle.  Two containers exist:

* zip (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one uncompressed member
  ``<archive>/data/<key>`` per storage, ``<archive>/byteorder`` (``little``/``big``,
  absent before 1.10 = little) and ``<archive>/version``;
  persistent id ``('storage', StorageType, key, location, numel)``.
* legacy (before 1.6): back-to-back pickles (magic number, protocol version, sys_info,
  the object, the list of storage keys) then, per key in that order, an 8-byte
  little-endian element count and the raw little-endian bytes;
  persistent id ``('storage', StorageType, root_key, location, numel, view_metadata)``.

The pickle is read by the restricted unpickler (:mod:`pt_side.restricted_unpickler`), whose
``find_class`` resolves only an explicit allow-list of globals to local stand-ins that
*describe* tensors (storage key, dtype, offset, shape, stride); anything else raises
:class:`~bridge.core.errors.UnsafeCheckpoint`.  This module resolves the storages (persistent ids)
in either container, then slices values from one memory map of the file, honouring offset
and stride.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import (
    BridgeError,
    CorruptCheckpoint,
    UnsafeCheckpoint,
    UnsupportedFeature,
)
from bridge.core.limits import check_inflate
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import classify_torch_name
from bridge.core.shard_index import load_index
from bridge.core.source import Window, file_arg
from pt_side._files import (
    ZIP_ERRORS,
    MappedFiles,
    check_index_coverage,
    claim_name,
    is_count,
    read_config,
    resolve_weights,
)
from pt_side.restricted_unpickler import (
    REDOWNLOAD,
    RESAVE,
    Malformed,
    Storage,
    StorageType,
    Tensor,
    unpickle,
)

FORMAT = "torch"
SINGLE_NAME = "pytorch_model.bin"
INDEX_NAME = "pytorch_model.bin.index.json"
_INDEX_SUFFIXES = (".bin.index.json", ".pt.index.json", ".pth.index.json")
# Extensions people give torch.save files; used only to claim damaged files so that
# reading them reports the damage instead of "format not recognised".
_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".th", ".ckpt", ".tar", ".pkl"})

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_MAGIC_BYTES = LEGACY_MAGIC.to_bytes(10, "little")  # as the pickle's LONG1 opcode stores it
_ZIP_LOCAL = b"PK\x03\x04"
# Where a scalar python value of a training state is worth keeping as metadata.
_MAX_SCALARS = 100
_MAX_STR = 200


# ----------------------------------------------------------------------------------------
# Containers.


@dataclass
class _Parsed:
    """One file's pickle and storages, before flattening."""

    path: Path
    obj: Any
    style: str  # "zip" or "legacy"
    big_endian: bool = False
    storages: dict[str, Storage] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    packed: zipfile.ZipFile | None = None  # only for compressed zip members


def _storage_from_pid(pid: Any, path: Path, storages: dict[str, Storage], legacy: bool) -> Storage:
    if not isinstance(pid, tuple) or not pid:
        raise Malformed(f"persistent id {pid!r} is not a tuple")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module" and legacy:
        # Whole-module pickles of old torch carry module source code to compare.
        raise UnsafeCheckpoint(
            "Refusing a pickled nn.Module",
            path=path,
            detail="the file is a whole model (torch.save(model)), whose classes plain torch.load imports",
            hint=RESAVE,
        )
    if typename != "storage" or len(pid) != (6 if legacy else 5):
        raise Malformed(f"unexpected persistent id {pid!r}")
    storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(storage_type, StorageType) or not isinstance(key, str) or not is_count(numel):
        raise Malformed(f"unexpected persistent id {pid!r}")
    root = storages.get(key)
    if root is None:
        root = storages[key] = Storage(key, storage_type.dtype, int(numel), str(location))
    elif root.dtype != storage_type.dtype or root.numel != numel:
        raise Malformed(f"storage {key} is described two different ways")
    view = pid[5] if legacy else None
    if view is None:
        return root
    # Legacy storage views: (view_key, offset, size) in elements of the root.
    if not (isinstance(view, tuple) and len(view) == 3 and is_count(view[1]) and is_count(view[2])):
        raise Malformed(f"unexpected storage view {view!r}")
    _, offset, size = view
    if offset + size > root.numel:
        raise Malformed(f"storage view {view!r} runs past storage {key}")
    return Storage(key, root.dtype, int(size), root.location, root=root, base=offset * root.itemsize)


def _parse_zip(path: Path, window: tuple[int, int] | None = None) -> _Parsed:
    """A torch.save zip archive: the whole file, or the ``(start, length)`` window of it that holds one."""
    start, size = window if window is not None else (0, path.stat().st_size)
    source: Any = Window(path, start, size) if window is not None else file_arg(path)
    try:
        archive = zipfile.ZipFile(source)
    except ZIP_ERRORS as exc:
        if window is not None:
            source.close()
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"{exc} (a torch.save file cut short loses the zip directory at its end)",
            hint=REDOWNLOAD,
        ) from None

    def shut() -> None:  # zipfile leaves a file object it was given open
        archive.close()
        if window is not None:
            source.close()

    try:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in infos):
            raise UnsupportedFeature(
                "TorchScript archive",
                path=path,
                detail="written by torch.jit.save, not torch.save",
                hint="Load it with torch.jit.load in a trusted environment and save its state_dict()",
            )
        if len(pickles) != 1:
            raise CorruptCheckpoint(
                "Not a torch.save archive",
                path=path,
                detail=f"expected one <archive>/data.pkl member, found {len(pickles)}",
                hint="Check that the file was written by torch.save",
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = archive.read(prefix + "byteorder").strip() if prefix + "byteorder" in infos else b"little"
        if byteorder not in (b"little", b"big"):
            raise CorruptCheckpoint(
                "Damaged torch.save archive",
                path=path,
                detail=f"byteorder record says {byteorder!r}",
                hint=REDOWNLOAD,
            )
        parsed = _Parsed(path, None, "zip", big_endian=byteorder == b"big")
        parsed.facts["archive"] = prefix.rstrip("/")
        for record in ("version", ".format_version"):
            if prefix + record in infos:
                parsed.facts[record.lstrip(".")] = archive.read(prefix + record).decode("ascii", "replace").strip()
        data = io.BytesIO(archive.read(pickles[0]))  # small; zipfile checks its CRC

        def persistent(pid: Any) -> Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=False)

        parsed.obj = unpickle(data, path, "torch.save pickle (data.pkl)", persistent)
        with Window(path, start, size) as raw:
            for key, storage in parsed.storages.items():
                member = f"{prefix}data/{key}"
                storage.member = member
                info = infos.get(member)
                if info is None:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"the pickle uses storage {key} but the archive has no member {member}",
                        hint=REDOWNLOAD,
                    )
                if info.file_size != storage.nbytes:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"member {member} holds {info.file_size} bytes, its storage needs {storage.nbytes}",
                        hint=REDOWNLOAD,
                    )
                if info.compress_type == zipfile.ZIP_STORED:
                    storage.file_offset = start + _member_data_offset(cast(IO[bytes], raw), info, path, size)
                else:
                    parsed.packed = archive  # re-zipped with compression: read, cannot map
    except BridgeError:
        shut()
        raise
    except ZIP_ERRORS as exc:
        shut()
        raise CorruptCheckpoint(
            "Damaged zip archive", path=path, detail=f"{type(exc).__name__}: {exc}", hint=REDOWNLOAD
        ) from None
    except BaseException:
        shut()
        raise
    if parsed.packed is None:
        shut()
    return parsed


def _member_data_offset(raw: IO[bytes], info: zipfile.ZipInfo, path: Path, size: int) -> int:
    """Where a stored member's bytes start: after its local header, whose extra field
    (torch pads it to align storages) may differ from the central directory's copy."""
    header = b""
    if info.header_offset >= 0:  # a damaged directory can say anything
        raw.seek(info.header_offset)
        header = raw.read(30)
    if len(header) < 30 or header[:4] != _ZIP_LOCAL:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"no local header for member {info.filename}",
            hint=REDOWNLOAD,
        )
    name_len, extra_len = (int(n) for n in struct.unpack_from("<HH", header, 26))
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > size:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"member {info.filename} runs past the end of the file",
            hint=REDOWNLOAD,
        )
    return start


class _Capped(io.RawIOBase):
    """A file whose ``read(n)`` never asks for more than the bytes left.

    ``BufferedReader.read(n)`` allocates ``n`` bytes before reading: a damaged BINSTRING length of 4 GiB in a
    legacy pickle would otherwise allocate 4 GiB to read a few bytes.
    """

    def __init__(self, raw: IO[bytes], size: int) -> None:
        super().__init__()
        self._raw = raw
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self._raw.tell())
        return self._raw.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, buffer: Any) -> int:
        return self._raw.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def readline(self, limit: int | None = -1) -> bytes:
        return self._raw.readline(-1 if limit is None else limit)


def _parse_legacy(path: Path) -> _Parsed:
    parsed = _Parsed(path, None, "legacy")
    size = path.stat().st_size
    with path.open("rb") as raw_file:
        f = cast(IO[bytes], _Capped(raw_file, size))  # what the unpickler and the offsets below need
        magic = unpickle(f, path, "legacy torch.save header")
        if magic != LEGACY_MAGIC:
            raise CorruptCheckpoint(
                "Not a torch.save file",
                path=path,
                detail="neither a zip archive nor a legacy pickle with torch's magic number",
                hint="Check that the file was written by torch.save",
            )
        protocol = unpickle(f, path, "legacy torch.save header")
        if protocol != LEGACY_PROTOCOL:
            raise UnsupportedFeature(
                "Unknown legacy torch.save protocol",
                path=path,
                detail=f"protocol {protocol!r}, this reader knows {LEGACY_PROTOCOL}",
                hint="Re-save it with a current torch (zip format)",
            )
        sys_info = unpickle(f, path, "legacy torch.save header")
        if isinstance(sys_info, dict):
            # Storage bytes are always little-endian in this format; sys_info describes the writer.
            parsed.facts["sys_info"] = {k: v for k, v in sys_info.items() if isinstance(k, str)}

        def persistent(pid: Any) -> Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=True)

        parsed.obj = unpickle(f, path, "torch.save pickle", persistent)
        keys = unpickle(f, path, "legacy storage key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CorruptCheckpoint(
                "Damaged legacy torch.save file",
                path=path,
                detail="the storage key list is not a list of str",
                hint=REDOWNLOAD,
            )
        offset = f.tell()
        for key in keys:
            storage = parsed.storages.get(key)
            if storage is None:
                raise CorruptCheckpoint(
                    "Damaged legacy torch.save file",
                    path=path,
                    detail=f"storage {key} is stored but no tensor names it, so its element size is unknown",
                    hint=REDOWNLOAD,
                )
            f.seek(offset)
            head = f.read(8)
            if len(head) < 8:
                raise _truncated(path, key, size)
            (count,) = struct.unpack("<q", head)
            if count != storage.numel:
                raise CorruptCheckpoint(
                    "Damaged legacy torch.save file",
                    path=path,
                    detail=f"storage {key} holds {count} elements but the pickle says {storage.numel}",
                    hint=REDOWNLOAD,
                )
            storage.file_offset = offset + 8
            offset += 8 + storage.nbytes
            if offset > size:
                raise _truncated(path, key, size)
    return parsed


def _truncated(path: Path, key: str, size: int) -> CorruptCheckpoint:
    return CorruptCheckpoint(
        "Truncated legacy torch.save file",
        path=path,
        detail=f"storage {key} runs past the end of the file ({size} bytes)",
        hint=REDOWNLOAD,
    )


def _parse(path: Path) -> _Parsed:
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_LOCAL) or (head[:4] == b"PK\x05\x06"):
        return _parse_zip(path)
    if head[257:262] == b"ustar":
        raise UnsupportedFeature(
            "Tar-format torch.save file",
            path=path,
            detail="the tar container of the earliest PyTorch releases is not read",
            hint="Load it with an old torch in a trusted environment and save it again with a current one",
        )
    return _parse_legacy(path)


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


def _records(parsed: _Parsed, maps: MappedFiles) -> tuple[list[TensorRecord], list[tuple[str, ...]], dict[str, Any]]:
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


def _record(parsed: _Parsed, name: str, t: Tensor, maps: MappedFiles) -> tuple[TensorRecord, tuple[Any, ...]]:
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
    if head.startswith(_ZIP_LOCAL):
        if torch_suffix:
            return True
        # torch.save writes data.pkl first.
        (name_len,) = struct.unpack_from("<H", head, 26) if len(head) >= 30 else (0,)
        return head[30 : 30 + name_len].endswith(b"/data.pkl")
    if head[:1] == b"\x80" and _MAGIC_BYTES in head[:32]:
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
            parsed = _parse(file)
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
