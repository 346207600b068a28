"""The one dtype vocabulary of the neutral model: numpy-style names.

Adapters translate their own dtype codes to these names with a table of their
own; the core only ever sees the names below.  ``bfloat16`` comes from
ml_dtypes because numpy has none.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

STRING = "string"

_NUMPY: dict[str, np.dtype] = {
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
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
}

KNOWN = frozenset(_NUMPY) | {STRING}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for a vocabulary name (``object`` for strings)."""
    if name == STRING:
        return np.dtype(object)
    return _NUMPY[name]


def dtype_name(dtype: np.dtype | type) -> str:
    """The vocabulary name of a numpy dtype."""
    dt = np.dtype(dtype)
    if dt == np.dtype(ml_dtypes.bfloat16):
        return "bfloat16"
    if dt.kind in ("O", "S", "U"):
        return STRING
    for name, candidate in _NUMPY.items():
        if candidate == dt:
            return name
    raise KeyError(f"no vocabulary name for numpy dtype {dt}")


def itemsize(name: str) -> int | None:
    """Bytes per element, or ``None`` for variable-length strings."""
    return None if name == STRING else _NUMPY[name].itemsize


def is_floating(name: str) -> bool:
    return name in ("float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2")
