"""The one dtype vocabulary of the neutral model: numpy-style names.

Adapters translate their own dtype codes to these names with a table of their
own; the core only ever sees the names below.  ``bfloat16`` and the float8
types come from ml_dtypes because numpy has none; ml_dtypes is imported only
when one of them is asked for (its import costs more than reading a checkpoint's
index), so a float32 file never pays for it.
"""

from __future__ import annotations

import sys

import numpy as np

STRING = "string"

_PLAIN: dict[str, np.dtype] = {
    "bool": np.dtype(np.bool_),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}

# The vocabulary names numpy lacks: ml_dtypes' attribute of the same name, and its size (known without the import).
_EXTENDED_ITEMSIZE = {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}

KNOWN = frozenset(_PLAIN) | frozenset(_EXTENDED_ITEMSIZE) | {STRING}


def _extended(name: str) -> np.dtype:
    import ml_dtypes  # only here: a tensor of this dtype is being decoded or encoded

    extended: np.dtype = np.dtype(getattr(ml_dtypes, name))
    return extended


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for a vocabulary name (``object`` for strings)."""
    if name == STRING:
        return np.dtype(object)
    if name in _EXTENDED_ITEMSIZE:
        return _extended(name)
    return _PLAIN[name]


def dtype_name(dtype: np.dtype | type) -> str:
    """The vocabulary name of a numpy dtype."""
    dt = np.dtype(dtype)
    if dt.kind in ("O", "S", "U"):
        return STRING
    for name, candidate in _PLAIN.items():
        if candidate == dt:
            return name
    # A dtype of ml_dtypes' exists only once ml_dtypes is imported: never import it just to say "not one of them".
    if "ml_dtypes" in sys.modules:
        for name in _EXTENDED_ITEMSIZE:
            if _extended(name) == dt:
                return name
    raise KeyError(f"no vocabulary name for numpy dtype {dt}")


def itemsize(name: str) -> int | None:
    """Bytes per element, or ``None`` for variable-length strings."""
    if name == STRING:
        return None
    return _EXTENDED_ITEMSIZE.get(name) or _PLAIN[name].itemsize


def is_floating(name: str) -> bool:
    return name in ("float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2")
