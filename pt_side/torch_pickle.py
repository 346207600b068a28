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

The pickle is read by :class:`_SafeUnpickler`, whose ``find_class`` resolves only an
explicit allow-list of globals to local stand-ins that *describe* tensors (storage key,
dtype, offset, shape, stride); anything else raises :class:`~bridge.errors.UnsafeCheckpoint`.
Values are then sliced from one memory map of the file, honouring offset and stride.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from bridge import dtypes
from bridge.errors import (
    BridgeError,
    CorruptCheckpoint,
    UnsafeCheckpoint,
    UnsupportedFeature,
)
from bridge.model import Checkpoint, TensorRecord
from bridge.naming import classify_torch_name
from pt_side._files import (
    MappedFiles,
    check_index_coverage,
    claim_name,
    is_count,
    load_index,
    read_config,
    resolve_weights,
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

_RESAVE = (
    "Only if you trust where it came from: load it with full unpickling in an isolated environment, "
    "save its state dict with safetensors.torch.save_file, and read that file instead"
)
_REDOWNLOAD = "Re-download or re-save the file; a partial copy is the usual cause"

# Legacy typed-storage classes (``torch.FloatStorage``...) -> element dtype.
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}  # fmt: skip
# Storages of dtype-less bytes; the tensor's dtype is then an argument of _rebuild_tensor_v3.
# torch 1.12/1.13 called the class _UntypedStorage.
_UNTYPED_STORAGES = frozenset({"UntypedStorage", "_UntypedStorage", "TypedStorage"})
# torch dtype objects (``torch.float8_e4m3fn`` in _rebuild_tensor_v3 calls) -> vocabulary.
_TORCH_DTYPES: dict[str, str] = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64", "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
    "complex64": "complex64", "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
}  # fmt: skip
# torch dtypes that exist but have no vocabulary name: recognised, reported as unsupported.
_OTHER_TORCH_DTYPES = frozenset(
    {"float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "complex32", "chalf",
     "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16"}
    | {f"uint{i}" for i in range(1, 8)} | {f"int{i}" for i in range(1, 8)}
)  # fmt: skip


class _Malformed(Exception):
    """The pickle is well-formed Python but not a torch.save structure; becomes CorruptCheckpoint."""


# ----------------------------------------------------------------------------------------
# Stand-ins for the allowed globals.  None of them touches torch; they only describe.


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only the element dtype matters (None: bytes)."""

    name: str
    dtype: str | None


@dataclass(frozen=True)
class _DType:
    """Stand-in for a ``torch.<dtype>`` object; ``dtype`` is None where bridge has no name for it."""

    name: str
    dtype: str | None


@dataclass(frozen=True)
class _Marker:
    """Stand-in for a class used only as a tag (``torch.Tensor`` in _rebuild_from_type_v2)."""

    name: str


@dataclass(eq=False)
class _Storage:
    """A storage named by a persistent id; legacy storage views share their root's bytes."""

    key: str
    dtype: str | None  # None: untyped, ``numel`` counts bytes
    numel: int
    location: str
    root: _Storage | None = None  # None: this is a root storage
    base: int = 0  # byte offset inside the root (legacy views)
    file_offset: int | None = field(default=None, repr=False)  # of the root's bytes, once resolved
    member: str | None = field(default=None, repr=False)  # zip member name

    @property
    def itemsize(self) -> int:
        return 1 if self.dtype is None else dtypes.itemsize(self.dtype) or 1

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def origin(self) -> _Storage:
        return self.root if self.root is not None else self

    def __setstate__(self, state: Any) -> None:
        raise _Malformed("the pickle tries to set attributes on a storage")


@dataclass(eq=False)
class _Tensor:
    """What ``_rebuild_tensor*`` would build, as a description."""

    storage: _Storage
    offset: int  # in elements of ``dtype``
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str | None
    torch_dtype: str

    def __setstate__(self, state: Any) -> None:
        """Python attributes set on a tensor (BUILD) carry no weights: ignored."""


class _Global:
    """An allowed global as the unpickler hands it out: callable, but immune to BUILD
    (which could otherwise set attributes such as ``__defaults__`` on the shared stand-in)."""

    __slots__ = ("_fn", "qualname")

    def __init__(self, fn: Callable[..., Any], qualname: str) -> None:
        self._fn = fn
        self.qualname = qualname

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise _Malformed(f"the pickle tries to set attributes on {self.qualname}")

    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(is_count(d) for d in value):
        raise _Malformed(f"tensor {what} {value!r} is not a tuple of non-negative integers")
    return tuple(int(d) for d in value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: _DType | None = None) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise _Malformed(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    if not is_count(offset):
        raise _Malformed(f"storage offset {offset!r} is not a non-negative integer")
    shape, strides = _dims(size, "size"), _dims(stride, "stride")
    if len(shape) != len(strides):
        raise _Malformed(f"size {shape} and stride {strides} differ in length")
    if dtype is not None:
        return _Tensor(storage, int(offset), shape, strides, dtype.dtype, dtype.name)
    if storage.dtype is None:
        raise _Malformed("an untyped storage is used without a dtype")
    return _Tensor(storage, int(offset), shape, strides, storage.dtype, storage.dtype)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _Tensor:
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any,
    requires_grad: Any = False, backward_hooks: Any = None, metadata: Any = None,
) -> _Tensor:  # fmt: skip
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any, storage_offset: Any, size: Any, stride: Any,
    requires_grad: Any, backward_hooks: Any, dtype: Any, metadata: Any = None,
) -> _Tensor:  # fmt: skip
    if not isinstance(dtype, _DType):
        raise _Malformed(f"_rebuild_tensor_v3 got dtype {dtype!r}, not a torch dtype")
    return _tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data: Any, requires_grad: Any = True, backward_hooks: Any = None) -> Any:
    return data  # a Parameter is its tensor for our purposes


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # torch wraps tensors that carry Python attributes this way; func is itself an allowed
    # global (it came through find_class), new_type one of the tensor markers.
    if not isinstance(func, _Global) or not isinstance(new_type, _Marker) or not isinstance(args, tuple):
        raise _Malformed("_rebuild_from_type_v2 with unexpected arguments")
    return func(*args)


def _rebuild_from_type(func: Any, new_type: Any, args: Any, dict_: Any) -> Any:
    return _rebuild_from_type_v2(func, new_type, args, dict_)


def _size(dims: Any = ()) -> tuple[int, ...]:
    return _dims(tuple(dims) if isinstance(dims, (list, tuple)) else dims, "size")


def _device(kind: Any, index: Any = None) -> str:
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise _Malformed(f"torch.device({kind!r}, {index!r})")
    return kind if index is None else f"{kind}:{index}"


def _encode(obj: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes objects as _codecs.encode(str, "latin1").
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise _Malformed("_codecs.encode used for something other than a bytes literal")
    return obj.encode("latin-1")


def _checked(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        return kind(*args)

    return build


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): _checked(OrderedDict),
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._tensor", "_rebuild_from_type"): _rebuild_from_type,
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
    ("_codecs", "encode"): _encode,
}
for _builtins in ("builtins", "__builtin__"):  # protocol-2 pickles from Python 3 say __builtin__
    _ALLOWED[(_builtins, "set")] = _checked(set)
    _ALLOWED[(_builtins, "frozenset")] = _checked(frozenset)
    _ALLOWED[(_builtins, "slice")] = _checked(slice)
    _ALLOWED[(_builtins, "complex")] = _checked(complex)
_MARKERS = frozenset({("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"),
                      ("torch.nn", "Parameter")})  # fmt: skip


def _allowed_global(module: str, name: str) -> Any | None:
    """The stand-in for an allowed global, or None."""
    fn = _ALLOWED.get((module, name))
    if fn is not None:
        return _Global(fn, f"{module}.{name}")
    if (module, name) in _MARKERS:
        return _Marker(f"{module}.{name}")
    if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
        return _StorageType(name, _STORAGE_DTYPES[name])
    if module in ("torch", "torch.storage") and name in _UNTYPED_STORAGES:
        return _StorageType(name, None)
    if module == "torch" and name in _TORCH_DTYPES:
        return _DType(name, _TORCH_DTYPES[name])
    if module == "torch" and name in _OTHER_TORCH_DTYPES:
        return _DType(name, None)
    return None


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals, to stand-ins; storages through ``persistent``."""

    def __init__(self, file: IO[bytes], path: Path, persistent: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_global(module, name)
        if found is not None:
            return found
        if module in ("torch._utils", "torch._tensor") and name.startswith("_rebuild"):
            raise UnsupportedFeature(
                "Tensor kind not supported",
                path=self._path,
                detail=f"the file holds tensors rebuilt by `{module}.{name}` (quantized, sparse, "
                "nested or tensor-subclass tensors)",
                hint="Convert them to plain dense tensors, then save the state dict again",
            )
        if module in ("torch", "torch.cuda") and name.startswith("Q") and name.endswith("Storage"):
            raise UnsupportedFeature(
                "Quantized storage not supported",
                path=self._path,
                detail=f"`{module}.{name}`",
                hint="Dequantize the model, then save the state dict again",
            )
        # Protocol-2 pickles store Python 2 names (`__builtin__.eval`, `commands.Popen`); name the global
        # that torch.load's unpickler would map them to and call.
        renamed = _compat_pickle.NAME_MAPPING.get((module, name))
        py3 = renamed or (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        raise UnsafeCheckpoint(
            "Refusing to unpickle a global outside the allow-list",
            path=self._path,
            detail=f"the pickle references `{'.'.join(py3)}`; plain torch.load (weights_only=False) "
            "would import and call it, i.e. run code from the file",
            hint=_RESAVE,
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise _Malformed("a persistent id where none is expected")
        return self._persistent(pid)


def _unpickle(file: IO[bytes], path: Path, what: str, persistent: Callable[[Any], Any] | None = None) -> Any:
    """Run the restricted unpickler; malformed input becomes CorruptCheckpoint."""
    try:
        return _SafeUnpickler(file, path, persistent).load()
    except BridgeError:
        raise
    except (_Malformed, pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, RecursionError, OverflowError, zipfile.BadZipFile) as exc:  # fmt: skip
        truncated = isinstance(exc, EOFError) or "truncated" in str(exc)
        raise CorruptCheckpoint(
            f"Unreadable {what}",
            path=path,
            detail="the pickle ends early (truncated file)" if truncated else f"{type(exc).__name__}: {exc}",
            hint=_REDOWNLOAD,
        ) from None


# ----------------------------------------------------------------------------------------
# Containers.


@dataclass
class _Parsed:
    """One file's pickle and storages, before flattening."""

    path: Path
    obj: Any
    style: str  # "zip" or "legacy"
    big_endian: bool = False
    storages: dict[str, _Storage] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    packed: zipfile.ZipFile | None = None  # only for compressed zip members


def _storage_from_pid(pid: Any, path: Path, storages: dict[str, _Storage], legacy: bool) -> _Storage:
    if not isinstance(pid, tuple) or not pid:
        raise _Malformed(f"persistent id {pid!r} is not a tuple")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module" and legacy:
        # Whole-module pickles of old torch carry module source code to compare.
        raise UnsafeCheckpoint(
            "Refusing a pickled nn.Module",
            path=path,
            detail="the file is a whole model (torch.save(model)), whose classes plain torch.load imports",
            hint=_RESAVE,
        )
    if typename != "storage" or len(pid) != (6 if legacy else 5):
        raise _Malformed(f"unexpected persistent id {pid!r}")
    storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not is_count(numel):
        raise _Malformed(f"unexpected persistent id {pid!r}")
    root = storages.get(key)
    if root is None:
        root = storages[key] = _Storage(key, storage_type.dtype, int(numel), str(location))
    elif root.dtype != storage_type.dtype or root.numel != numel:
        raise _Malformed(f"storage {key} is described two different ways")
    view = pid[5] if legacy else None
    if view is None:
        return root
    # Legacy storage views: (view_key, offset, size) in elements of the root.
    if not (isinstance(view, tuple) and len(view) == 3 and is_count(view[1]) and is_count(view[2])):
        raise _Malformed(f"unexpected storage view {view!r}")
    _, offset, size = view
    if offset + size > root.numel:
        raise _Malformed(f"storage view {view!r} runs past storage {key}")
    return _Storage(key, root.dtype, int(size), root.location, root=root, base=offset * root.itemsize)


def _parse_zip(path: Path) -> _Parsed:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"{exc} (a torch.save file cut short loses the zip directory at its end)",
            hint=_REDOWNLOAD,
        ) from None
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
                hint=_REDOWNLOAD,
            )
        parsed = _Parsed(path, None, "zip", big_endian=byteorder == b"big")
        parsed.facts["archive"] = prefix.rstrip("/")
        for record in ("version", ".format_version"):
            if prefix + record in infos:
                parsed.facts[record.lstrip(".")] = archive.read(prefix + record).decode("ascii", "replace").strip()
        data = io.BytesIO(archive.read(pickles[0]))  # small; zipfile checks its CRC

        def persistent(pid: Any) -> _Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=False)

        parsed.obj = _unpickle(data, path, "torch.save pickle (data.pkl)", persistent)
        size = path.stat().st_size
        with path.open("rb") as raw:
            for key, storage in parsed.storages.items():
                member = f"{prefix}data/{key}"
                storage.member = member
                info = infos.get(member)
                if info is None:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"the pickle uses storage {key} but the archive has no member {member}",
                        hint=_REDOWNLOAD,
                    )
                if info.file_size != storage.nbytes:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"member {member} holds {info.file_size} bytes, its storage needs {storage.nbytes}",
                        hint=_REDOWNLOAD,
                    )
                if info.compress_type == zipfile.ZIP_STORED:
                    storage.file_offset = _member_data_offset(raw, info, path, size)
                else:
                    parsed.packed = archive  # re-zipped with compression: read, cannot map
    except zipfile.BadZipFile as exc:
        archive.close()
        raise CorruptCheckpoint("Damaged zip archive", path=path, detail=str(exc), hint=_REDOWNLOAD) from None
    except BaseException:
        archive.close()
        raise
    if parsed.packed is None:
        archive.close()
    return parsed


def _member_data_offset(raw: IO[bytes], info: zipfile.ZipInfo, path: Path, size: int) -> int:
    """Where a stored member's bytes start: after its local header, whose extra field
    (torch pads it to align storages) may differ from the central directory's copy."""
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) < 30 or header[:4] != _ZIP_LOCAL:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"no local header for member {info.filename}",
            hint=_REDOWNLOAD,
        )
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > size:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"member {info.filename} runs past the end of the file",
            hint=_REDOWNLOAD,
        )
    return start


def _parse_legacy(path: Path) -> _Parsed:
    parsed = _Parsed(path, None, "legacy")
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = _unpickle(f, path, "legacy torch.save header")
        if magic != LEGACY_MAGIC:
            raise CorruptCheckpoint(
                "Not a torch.save file",
                path=path,
                detail="neither a zip archive nor a legacy pickle with torch's magic number",
                hint="Check that the file was written by torch.save",
            )
        protocol = _unpickle(f, path, "legacy torch.save header")
        if protocol != LEGACY_PROTOCOL:
            raise UnsupportedFeature(
                "Unknown legacy torch.save protocol",
                path=path,
                detail=f"protocol {protocol!r}, this reader knows {LEGACY_PROTOCOL}",
                hint="Re-save it with a current torch (zip format)",
            )
        sys_info = _unpickle(f, path, "legacy torch.save header")
        if isinstance(sys_info, dict):
            # Storage bytes are always little-endian in this format; sys_info describes the writer.
            parsed.facts["sys_info"] = {k: v for k, v in sys_info.items() if isinstance(k, str)}

        def persistent(pid: Any) -> _Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=True)

        parsed.obj = _unpickle(f, path, "torch.save pickle", persistent)
        keys = _unpickle(f, path, "legacy storage key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CorruptCheckpoint(
                "Damaged legacy torch.save file",
                path=path,
                detail="the storage key list is not a list of str",
                hint=_REDOWNLOAD,
            )
        offset = f.tell()
        for key in keys:
            storage = parsed.storages.get(key)
            if storage is None:
                raise CorruptCheckpoint(
                    "Damaged legacy torch.save file",
                    path=path,
                    detail=f"storage {key} is stored but no tensor names it, so its element size is unknown",
                    hint=_REDOWNLOAD,
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
                    hint=_REDOWNLOAD,
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
        hint=_REDOWNLOAD,
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
    if isinstance(obj, _Tensor) or not isinstance(obj, (dict, list, tuple)):
        yield prefix, obj
        return
    if id(obj) in seen:  # a container that contains itself
        return
    seen.add(id(obj))
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in items:
        yield from _walk(value, f"{prefix}.{key}" if prefix else str(key), seen)
    seen.discard(id(obj))


def _records(parsed: _Parsed, maps: MappedFiles) -> tuple[list[TensorRecord], list[tuple[str, ...]], dict[str, Any]]:
    records: list[TensorRecord] = []
    scalars: dict[str, Any] = {}
    groups: dict[tuple[Any, ...], list[str]] = {}
    names: set[str] = set()
    for name, leaf in _walk(parsed.obj, "", set()):
        if not isinstance(leaf, _Tensor):
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


def _record(parsed: _Parsed, name: str, t: _Tensor, maps: MappedFiles) -> tuple[TensorRecord, tuple[Any, ...]]:
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
                hint=_REDOWNLOAD,
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
        if packed is not None and origin.member is not None:
            buffer: np.ndarray = np.frombuffer(packed.read(origin.member), np.uint8)
        else:
            base = int(origin.file_offset or 0)
            buffer = maps.bytes_of(path)[base : base + origin.nbytes]
        # A strided view straight onto the storage bytes; numpy checks it stays inside them.
        view = np.ndarray(t.shape, np_dtype, buffer=buffer, offset=start, strides=tuple(s * itemsize for s in t.stride))
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
