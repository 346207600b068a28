"""The restricted unpickler of ``torch.save`` pickles: never imports torch, never runs the pickle's code.

``torch.save`` pickles tensors as calls to ``torch._utils._rebuild_tensor_v2`` & co. over
storages.  :class:`SafeUnpickler`'s ``find_class`` resolves only an explicit allow-list
(:data:`ALLOWED`, :data:`MARKERS`, torch's storage classes and dtypes) to local stand-ins
that *describe* tensors (storage key, dtype, offset, shape, stride); any other global raises
:class:`~bridge.core.errors.UnsafeCheckpoint`, and BUILD on a stand-in (which could set attributes
on a shared function) is refused.  Storages arrive as persistent ids, which the caller (the
container reader, :mod:`pt_side.torch_pickle`) resolves.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.core import dtypes
from bridge.core.errors import BridgeError, CorruptCheckpoint, UnsafeCheckpoint, UnsupportedFeature
from pt_side._files import is_count

RESAVE = (
    "Only if you trust where it came from: load it with full unpickling in an isolated environment, "
    "save its state dict with safetensors.torch.save_file, and read that file instead"
)
REDOWNLOAD = "Re-download or re-save the file; a partial copy is the usual cause"

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


class Malformed(Exception):
    """The pickle is well-formed Python but not a torch.save structure; becomes CorruptCheckpoint."""


# ----------------------------------------------------------------------------------------
# Stand-ins for the allowed globals.  None of them touches torch; they only describe.


@dataclass(frozen=True)
class StorageType:
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
class Storage:
    """A storage named by a persistent id; legacy storage views share their root's bytes."""

    key: str
    dtype: str | None  # None: untyped, ``numel`` counts bytes
    numel: int
    location: str
    root: Storage | None = None  # None: this is a root storage
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
    def origin(self) -> Storage:
        return self.root if self.root is not None else self

    def __setstate__(self, state: Any) -> None:
        raise Malformed("the pickle tries to set attributes on a storage")


@dataclass(eq=False)
class Tensor:
    """What ``_rebuild_tensor*`` would build, as a description."""

    storage: Storage
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
        raise Malformed(f"the pickle tries to set attributes on {self.qualname}")

    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(is_count(d) for d in value):
        raise Malformed(f"tensor {what} {value!r} is not a tuple of non-negative integers")
    return tuple(int(d) for d in value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: _DType | None = None) -> Tensor:
    if not isinstance(storage, Storage):
        raise Malformed(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    if not is_count(offset):
        raise Malformed(f"storage offset {offset!r} is not a non-negative integer")
    shape, strides = _dims(size, "size"), _dims(stride, "stride")
    if len(shape) != len(strides):
        raise Malformed(f"size {shape} and stride {strides} differ in length")
    if dtype is not None:
        return Tensor(storage, int(offset), shape, strides, dtype.dtype, dtype.name)
    if storage.dtype is None:
        raise Malformed("an untyped storage is used without a dtype")
    return Tensor(storage, int(offset), shape, strides, storage.dtype, storage.dtype)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Tensor:
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> Tensor:
    if not isinstance(dtype, _DType):
        raise Malformed(f"_rebuild_tensor_v3 got dtype {dtype!r}, not a torch dtype")
    return _tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data: Any, requires_grad: Any = True, backward_hooks: Any = None) -> Any:
    return data  # a Parameter is its tensor for our purposes


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # torch wraps tensors that carry Python attributes this way; func is itself an allowed
    # global (it came through find_class), new_type one of the tensor markers.
    if not isinstance(func, _Global) or not isinstance(new_type, _Marker) or not isinstance(args, tuple):
        raise Malformed("_rebuild_from_type_v2 with unexpected arguments")
    return func(*args)


def _rebuild_from_type(func: Any, new_type: Any, args: Any, dict_: Any) -> Any:
    return _rebuild_from_type_v2(func, new_type, args, dict_)


def _size(dims: Any = ()) -> tuple[int, ...]:
    return _dims(tuple(dims) if isinstance(dims, (list, tuple)) else dims, "size")


def _device(kind: Any, index: Any = None) -> str:
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise Malformed(f"torch.device({kind!r}, {index!r})")
    return kind if index is None else f"{kind}:{index}"


def _encode(obj: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes objects as _codecs.encode(str, "latin1").
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise Malformed("_codecs.encode used for something other than a bytes literal")
    return obj.encode("latin-1")


def _checked(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        return kind(*args)

    return build


ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
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
    ALLOWED[(_builtins, "set")] = _checked(set)
    ALLOWED[(_builtins, "frozenset")] = _checked(frozenset)
    ALLOWED[(_builtins, "slice")] = _checked(slice)
    ALLOWED[(_builtins, "complex")] = _checked(complex)
MARKERS = frozenset({("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"),
                     ("torch.nn", "Parameter")})  # fmt: skip


def _allowed_global(module: str, name: str) -> Any | None:
    """The stand-in for an allowed global, or None."""
    fn = ALLOWED.get((module, name))
    if fn is not None:
        return _Global(fn, f"{module}.{name}")
    if (module, name) in MARKERS:
        return _Marker(f"{module}.{name}")
    if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
        return StorageType(name, _STORAGE_DTYPES[name])
    if module in ("torch", "torch.storage") and name in _UNTYPED_STORAGES:
        return StorageType(name, None)
    if module == "torch" and name in _TORCH_DTYPES:
        return _DType(name, _TORCH_DTYPES[name])
    if module == "torch" and name in _OTHER_TORCH_DTYPES:
        return _DType(name, None)
    return None


def refused(path: Path, module: str, name: str) -> UnsafeCheckpoint:
    """The refusal of a global outside an allow-list, named as Python 3 would import it."""
    # Protocol-2 pickles store Python 2 names (`__builtin__.eval`, `commands.Popen`); name the global
    # that torch.load's unpickler would map them to and call.
    renamed = _compat_pickle.NAME_MAPPING.get((module, name))
    py3 = renamed or (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
    return UnsafeCheckpoint(
        "Refusing to unpickle a global outside the allow-list",
        path=path,
        detail=f"the pickle references `{'.'.join(py3)}`; plain torch.load (weights_only=False) "
        "would import and call it, i.e. run code from the file",
        hint=RESAVE,
    )


class SafeUnpickler(pickle.Unpickler):
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
        raise refused(self._path, module, name)

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise Malformed("a persistent id where none is expected")
        return self._persistent(pid)


def unpickle(
    file: IO[bytes],
    path: Path,
    what: str,
    persistent: Callable[[Any], Any] | None = None,
    unpickler: type[SafeUnpickler] | None = None,
) -> Any:
    """Run the restricted unpickler (or a subclass with another allow-list); malformed input becomes
    CorruptCheckpoint."""
    try:
        return (unpickler or SafeUnpickler)(file, path, persistent).load()
    except BridgeError:
        raise
    except (
        Malformed,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        RecursionError,
        OverflowError,
        zipfile.BadZipFile,
        MemoryError,
    ) as exc:
        truncated = isinstance(exc, EOFError) or "truncated" in str(exc)
        if isinstance(exc, MemoryError):
            # The C unpickler allocates a BINBYTES/BINSTRING's declared length before reading it: a length
            # field past the end of a damaged file shows up as an allocation that fails.
            detail = "a length field declares more bytes than can be allocated (a damaged length)"
        else:
            detail = "the pickle ends early (truncated file)" if truncated else f"{type(exc).__name__}: {exc}"
        raise CorruptCheckpoint(f"Unreadable {what}", path=path, detail=detail, hint=REDOWNLOAD) from None
