"""What the Keras and plain HDF5 readers share, with h5py only.

Signature probing, open-error translation, Keras 2 list attributes, the dtype
table, the one open file behind a Checkpoint (a plain file or a window on a zip
member) and records built from datasets.  One reader module per layout uses
them, none importing TensorFlow or Keras: :mod:`tf_side.keras_archive`
(``.keras``), :mod:`tf_side.keras3_weights` (``.weights.h5``),
:mod:`tf_side.keras2_h5` (Keras 2 / tf-keras ``.h5``, ``tf_model.h5``) and
:mod:`tf_side.hdf5_plain` (any other HDF5 file).

Every record's ``name`` is the dataset path exactly as h5py reports it (no
leading ``/``).  One ``h5py.File`` per :class:`Checkpoint` stays open and
serves every value; ``Checkpoint.close`` closes it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bridge.core import dtypes
from bridge.core.errors import (
    BridgeError,
    CheckpointNotFound,
    CorruptCheckpoint,
    FormatNotRecognized,
    UnsafeCheckpoint,
    UnsupportedFeature,
)
from bridge.core.limits import check_inflate
from bridge.core.model import Checkpoint, TensorKind, TensorRecord
from bridge.core.source import file_arg
from tf_side.signatures import HDF5_SIGNATURE, hdf5_base

__all__ = [
    "H5_ERRORS",
    "HDF5_SIGNATURE",
    "Source",
    "check_file",
    "guarded",
    "h5_dtype",
    "hdf5_base",
    "hint_redownload",
    "is_legacy",
    "list_attr",
    "must",
    "open_plain",
    "probe",
    "record",
    "str_attr",
    "walk",
    "wrap_open_error",
]


# Keras 2 splits a list attribute over 64 KiB (the object-header limit) into
# ``name0``, ``name1``... (save_attributes_to_hdf5_group); readers concatenate them.
_CHUNKED_ATTR = re.compile(r"(?P<base>.+?)(?P<index>\d+)")


# --------------------------------------------------------------------------- errors

# What h5py raises on a damaged file: OSError and RuntimeError from the HDF5 library ("Object visitation failed",
# "Unable to get group info"), KeyError for a link that leads nowhere, ValueError and OverflowError for sizes and
# types that make no sense.  Every reader catches these at its boundary and names the file.
H5_ERRORS: tuple[type[Exception], ...] = (OSError, RuntimeError, KeyError, ValueError, OverflowError)

# A group nested deeper than this is a damaged (or hostile) file: Keras nests a few levels.
_MAX_GROUP_DEPTH = 64


def hint_redownload(path: Path) -> str:
    return f"Re-download or re-save '{path.name}' and compare its size with the original"


def wrap_open_error(path: str | Path, exc: Exception) -> BridgeError:
    """Translate h5py's OSError on open into the project's error family."""
    message = str(exc)
    if "truncated file" in message:
        return CorruptCheckpoint("Truncated HDF5 file", path=path, detail=message, hint=hint_redownload(Path(path)))
    if "signature" in message:
        return FormatNotRecognized(
            "Not an HDF5 file",
            path=path,
            detail=message,
            hint="Check the path; let bridge detect the format instead of passing --format",
        )
    return CorruptCheckpoint("Cannot open HDF5 file", path=path, detail=message, hint=hint_redownload(Path(path)))


def check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointNotFound(
            "Checkpoint not found", path=path, detail="no such file", hint="Check the path and its spelling"
        )
    if not path.is_file():
        raise FormatNotRecognized(
            "Not an HDF5 or .keras file",
            path=path,
            detail="it is a directory",
            hint="Point at the .h5/.keras file itself",
        )


# --------------------------------------------------------------------------- sniffing


def probe(path: Path) -> h5py.File | None:
    """The file opened read-only when it is a readable HDF5 file, else None."""
    if not path.is_file() or hdf5_base(path) is None:
        return None
    try:
        return h5py.File(file_arg(path), "r")
    except H5_ERRORS:
        return None


def is_legacy(root: h5py.Group) -> bool:
    """A Keras 2 file: ``layer_names`` at the root, or on ``/model_weights`` of a full ``model.save``."""
    if list_attr(root, "layer_names") is not None:
        return True
    group = root.get("model_weights")
    return isinstance(group, h5py.Group) and list_attr(group, "layer_names") is not None


# --------------------------------------------------------------------------- h5 helpers


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def list_attr(obj: h5py.Group, name: str) -> list[str] | None:
    """A Keras 2 list attribute (``layer_names``, ``weight_names``), chunks joined.

    h5py returns these as arrays of fixed-length bytes (Keras 2.2) or of
    variable-length str (tf-keras 2.21); an empty list comes back as ``float64[0]``.
    """
    attrs = obj.attrs
    if name in attrs:
        chunks = [attrs[name]]
    else:
        numbered: dict[int, Any] = {}
        for key in attrs:
            m = _CHUNKED_ATTR.fullmatch(key)
            if m and m["base"] == name:
                numbered[int(m["index"])] = attrs[key]
        if not numbered:
            return None
        chunks = [numbered[i] for i in sorted(numbered)]
    out: list[str] = []
    for chunk in chunks:
        arr = np.asarray(chunk)
        if arr.size and arr.dtype.kind in "SUO":
            out.extend(_text(v) for v in arr.ravel())
    return out


def str_attr(obj: h5py.HLObject, name: str) -> str | None:
    if name not in obj.attrs:
        return None
    value = obj.attrs[name]
    if isinstance(value, np.ndarray):
        return None
    return _text(value)


def _children(group: h5py.Group) -> list[str]:
    """Child names in h5py's order, but numerically when all are numbers.

    Keras 3 numbers a `vars` group's datasets 0, 1, ... 10 and h5py lists links
    by name (0, 1, 10, 2); the numeric order is the object's variable order.
    """
    keys = list(group.keys())
    if keys and all(k.isdigit() for k in keys):
        keys.sort(key=int)
    return keys


def walk(group: h5py.Group, prefix: str = "", _seen: set[Any] | None = None) -> Iterator[tuple[str, h5py.Dataset]]:
    """Every dataset below ``group`` as ``(path, dataset)``, depth first.

    A hard link may point back at an ancestor: each group is entered once, known by its object header's address,
    and nesting past ``_MAX_GROUP_DEPTH`` is refused rather than recursed into.  A header the library cannot read
    raises one of ``H5_ERRORS``, which the readers report as a damaged file.
    """
    seen = {_address(group, prefix)} if _seen is None else _seen
    if prefix.count("/") > _MAX_GROUP_DEPTH:
        raise ValueError(f"groups nest more than {_MAX_GROUP_DEPTH} levels deep at /{prefix}")
    for key in _children(group):
        obj = group.get(key)
        name = f"{prefix}{key}"
        if isinstance(obj, h5py.Dataset):
            yield name, obj
        elif isinstance(obj, h5py.Group) and (address := _address(obj, name)) not in seen:
            seen.add(address)
            yield from walk(obj, name + "/", seen)


def _address(group: h5py.Group, name: str) -> tuple[int, int]:
    """Which object ``group`` is: (file number, header address).  Not h5py's hash of its id: that raises TypeError
    ("FileID cannot be hashed") where the library cannot read the object header of a damaged file."""
    try:
        info = h5py.h5o.get_info(group.id)
    except H5_ERRORS as exc:
        raise OSError(f"cannot read the object header of /{name.rstrip('/')}: {exc}") from None
    return int(info.fileno), int(info.addr)


# --------------------------------------------------------------------------- dtype table

# h5py maps HDF5 atomic types to numpy dtypes; these are the ones the vocabulary
# has.  Byte order is normalised before the lookup (big-endian files exist).
_H5_NUMERIC: dict[np.dtype, str] = {
    np.dtype(name): name
    for name in (
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    )
}  # fmt: skip


@dataclass(frozen=True)
class _H5Type:
    """How a dataset's bytes become an array of the vocabulary."""

    name: str  # vocabulary name, or "" when unsupported
    reason: str = ""  # why it is unsupported


def h5_dtype(ds: h5py.Dataset) -> _H5Type:
    """The vocabulary dtype of a dataset (h5py dtype plus Keras' bfloat16 attribute)."""
    dt = ds.dtype
    # Keras 3 H5IOStore writes bfloat16 as a 2-byte HDF5 opaque type (numpy `|V2`)
    # with attrs["dtype"] = "bfloat16" (verified with Keras 3.15).
    if str_attr(ds, "dtype") == "bfloat16" and dt.itemsize == 2 and dt.kind in "Vui":
        return _H5Type("bfloat16")
    if dt.kind == "b":  # h5py's bool: an HDF5 enum {FALSE: 0, TRUE: 1} of int8
        return _H5Type("bool")
    if dt.kind == "S" or h5py.check_string_dtype(dt) is not None:
        return _H5Type(dtypes.STRING)
    if dt.kind == "O":
        return _H5Type("", f"variable-length {h5py.check_vlen_dtype(dt) or 'object'} data")
    if dt.names is not None:
        return _H5Type("", "compound (table) data")
    if dt.kind == "V":
        return _H5Type("", f"opaque {dt.itemsize}-byte data without a dtype attribute")
    name = _H5_NUMERIC.get(dt.newbyteorder("="))
    if name is None:
        return _H5Type("", f"HDF5 type {dt}")
    return _H5Type(name)


def _nbytes(ds: h5py.Dataset, dtype: str, numel: int) -> int:
    size = dtypes.itemsize(dtype)
    if size is not None:
        return numel * size
    if ds.dtype.kind == "S":
        return numel * int(ds.dtype.itemsize)
    return 0  # variable-length strings: unknown without reading the global heap


def _convert(raw: Any, dtype: str) -> np.ndarray:
    """Bring what h5py returned into the vocabulary's in-memory form."""
    if dtype == dtypes.STRING:
        arr = np.asarray(raw, dtype=object) if not isinstance(raw, np.ndarray) else raw
        out = np.empty(arr.shape, dtype=object)
        flat = out.reshape(-1)
        for i, v in enumerate(arr.reshape(-1)):
            flat[i] = v if isinstance(v, bytes) else str(v).encode("utf-8")
        return out
    arr = np.asarray(raw)
    if dtype == "bfloat16":
        return arr.view(dtypes.numpy_dtype(dtype))
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


# --------------------------------------------------------------------------- the open file


class Source:
    """The one ``h5py.File`` behind a Checkpoint, reopened if used after close.

    Args:
        display: how locations and errors name the file.
        opener: opens it; returns the h5py file and what else to close with it.
    """

    def __init__(
        self, display: str, opener: Callable[[], tuple[h5py.File, list[io.IOBase]]], size: int | None = None
    ) -> None:
        self.display = display
        self.size = size  # bytes of the HDF5 file: no dataset stores more than this
        self._opener = opener
        self._file: h5py.File | None = None
        self._extra: list[io.IOBase] = []

    def file(self) -> h5py.File:
        if self._file is None or not self._file.id.valid:
            self._file, self._extra = self._opener()
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for extra in self._extra:
            extra.close()
        self._extra = []


def _plain_source(path: Path) -> Source:
    def opener() -> tuple[h5py.File, list[io.IOBase]]:
        try:
            return h5py.File(file_arg(path), "r"), []
        except H5_ERRORS as exc:
            raise wrap_open_error(path, exc) from None

    return Source(str(path), opener, path.stat().st_size)


def open_plain(path: Path) -> tuple[Source, h5py.File]:
    """Open a stand-alone HDF5 file after checking it is one."""
    check_file(path)
    if hdf5_base(path) is None:
        raise FormatNotRecognized(
            "Not an HDF5 file",
            path=path,
            detail="no HDF5 signature at offset 0 or at a user-block offset (512, 1024, ...)",
            hint="Check the file; let bridge detect its format instead of passing --format",
        )
    source = _plain_source(path)
    return source, source.file()


def record(
    source: Source,
    ds: h5py.Dataset,
    name: str,
    *,
    kind: TensorKind = "model",
    path: str | None = None,
    slot_of: str | None = None,
    slot_name: str | None = None,
    offsets: bool = True,
) -> TensorRecord | str:
    """One dataset as a lazily read record, or the reason it is not a tensor."""
    if ds.shape is None:
        return "empty dataset (HDF5 null dataspace)"
    h5type = h5_dtype(ds)
    if not h5type.name:
        return h5type.reason
    shape = tuple(int(d) for d in ds.shape)
    numel = int(np.prod(shape, dtype=np.int64))
    location = f"{source.display}:/{name}"
    offset = ds.id.get_offset() if offsets and ds.chunks is None else None
    if offset is not None:
        location += f" @ {offset}"
    problem: BridgeError | None = None
    if ds.external:
        # Keras refuses these too: the bytes would come from another file on disk.
        problem = UnsafeCheckpoint(
            "Dataset stored in an external file",
            path=source.display,
            tensor=name,
            detail=f"its bytes live in {[e[0] for e in ds.external]}",
            hint="Only read this file if you trust it, with h5py directly",
        )
    elif ds.is_virtual:
        problem = UnsupportedFeature(
            "Virtual HDF5 dataset",
            path=source.display,
            tensor=name,
            detail="its bytes are assembled from other files",
            hint="Copy it into a real dataset with h5py first",
        )
    else:
        missing = _missing_filters(ds)
        if missing:
            problem = UnsupportedFeature(
                "HDF5 compression filter not available",
                path=source.display,
                tensor=name,
                detail=f"the dataset needs filter {', '.join(missing)}, which this h5py lacks",
                hint="`pip install hdf5plugin` and `import hdf5plugin` before reading",
            )
    dtype = h5type.name
    # Bytes the value takes once read: h5py returns variable-length strings as an array of objects.
    declared = numel * max(dtypes.itemsize(dtype) or 0, int(ds.dtype.itemsize), 8 if ds.dtype.kind == "O" else 0)
    compressed = plist_filters(ds)

    def load() -> np.ndarray:
        if problem is not None:
            raise problem
        try:
            ds = source.file()[name]
            stored = int(ds.id.get_storage_size())
            if source.size is not None:
                stored = min(stored, source.size)
            if declared > stored:  # compressed, sparse (unwritten chunks read as the fill value) or truncated
                how = "compressed with " + ", ".join(compressed) if compressed else "sparse or truncated"
                check_inflate(declared, stored, path=source.display, tensor=name, how=how)
            raw = ds[()]
        except BridgeError:
            raise
        except H5_ERRORS as exc:
            # Filters were checked on open, so a failing read means damaged bytes
            # (h5py says e.g. "filter returned failure during read" for a bad chunk).
            raise CorruptCheckpoint(
                "Cannot read HDF5 dataset",
                path=source.display,
                tensor=name,
                detail=str(exc),
                hint="The file is damaged; re-download or re-save it",
            ) from None
        return _convert(raw, dtype)

    return TensorRecord(
        name=name,
        shape=shape,
        dtype=dtype,
        nbytes=_nbytes(ds, dtype, numel),
        location=location,
        loader=load,
        kind=kind,
        path=path,
        slot_of=slot_of,
        slot_name=slot_name,
    )


def plist_filters(ds: h5py.Dataset) -> list[str]:
    """The names of the filters (gzip, shuffle...) a dataset's chunks pass through."""
    plist = ds.id.get_create_plist()
    return [_text(plist.get_filter(i)[3]) or str(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]


def _missing_filters(ds: h5py.Dataset) -> list[str]:
    """Filters (compression...) the dataset needs that this HDF5 library cannot apply."""
    plist = ds.id.get_create_plist()
    missing = []
    for i in range(plist.get_nfilters()):
        code, _flags, _values, label = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            missing.append(f"{code} ({_text(label) or 'unnamed'})")
    return missing


def must(result: TensorRecord | str, source: Source, name: str) -> TensorRecord:
    """A Keras weight must be a tensor: say which dataset is not, and why."""
    if isinstance(result, str):
        raise UnsupportedFeature(
            "Dataset is not a tensor this tool can read",
            path=source.display,
            tensor=name,
            detail=result,
            hint="Read the file with `--format hdf5` to list the rest",
        )
    return result


def guarded(source: Source, build: Callable[[], Checkpoint]) -> Checkpoint:
    """Close the file if building the Checkpoint fails; map h5py errors on the way."""
    try:
        return build()
    except BridgeError:
        source.close()
        raise
    except H5_ERRORS as exc:
        source.close()
        raise CorruptCheckpoint(
            "Cannot read HDF5 structure",
            path=source.display,
            detail=str(exc),
            hint="The file is damaged; re-download or re-save it",
        ) from None
