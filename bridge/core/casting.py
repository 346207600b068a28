"""``--dtype``: casting floating tensors with one rounding rule, and counting what the rounding did.

The rule is IEEE 754's default, round to nearest, ties to even, applied once to the exact source value: for a
float32 source it is what numpy's ``astype`` (float16), ml_dtypes (bfloat16) and torch's ``.to()`` do.  A float64
source going to bfloat16 is first narrowed to float32 rounding to odd, which keeps the second rounding exact
(numpy/ml_dtypes and torch round twice there, through float32, and can land one unit off on a near-tie).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.core import dtypes

RULE = "round to nearest, ties to even (IEEE 754), once from the source value"


def cast(value: np.ndarray, to: str) -> np.ndarray:
    """``value`` as dtype ``to`` under :data:`RULE`."""
    target = dtypes.numpy_dtype(to)
    if value.dtype == np.float64 and to == "bfloat16":
        value = _to_float32_round_to_odd(value)
    with np.errstate(over="ignore"):  # overflow to inf is the rule's answer; CastReport counts it
        return value.astype(target)


def _to_float32_round_to_odd(value: np.ndarray) -> np.ndarray:
    """float64 -> float32 with inexact results forced to an odd last bit (the sticky bit of the dropped ones)."""
    narrow = value.astype(np.float32)
    inexact = np.isfinite(narrow) & (narrow.astype(np.float64) != value)
    even = (narrow.view(np.uint32) & 1) == 0
    fix = inexact & even
    if fix.any():  # the neighbour toward the exact value is odd
        toward = np.where(value > narrow.astype(np.float64), np.float32(np.inf), np.float32(-np.inf))
        narrow[fix] = np.nextafter(narrow[fix], toward[fix])
    return narrow


def _finfo(dtype: np.dtype) -> Any:
    if dtypes.dtype_name(dtype) in ("float16", "float32", "float64"):
        return np.finfo(dtype)
    import ml_dtypes  # bfloat16 and float8: the value is one of them, so ml_dtypes is loaded already

    return ml_dtypes.finfo(dtype)  # type: ignore[no-untyped-call]


@dataclass
class CastCounts:
    """One (from, to) pair: tensors and bytes cast, and values the rounding took out of their range."""

    tensors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    values: int = 0
    overflow: int = 0  # finite -> inf
    subnormal: int = 0  # normal or subnormal source -> a subnormal (precision lost beyond the format's)
    zero: int = 0  # non-zero -> zero

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class CastReport:
    """Casts tensors (from any thread) and counts per (from, to) what was cast and what did not fit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pairs: dict[tuple[str, str], CastCounts] = {}

    def cast(self, value: np.ndarray, to: str) -> np.ndarray:
        source = dtypes.dtype_name(value.dtype)
        if source == to:
            return value
        out = cast(value, to)
        overflow = subnormal = zero = 0
        if dtypes.is_floating(source) and _finfo(out.dtype).max < _finfo(value.dtype).max:
            src, dst = value.astype(np.float32 if source != "float64" else np.float64), out.astype(np.float64)
            overflow = int(np.count_nonzero(np.isinf(dst) & np.isfinite(src)))
            tiny = float(_finfo(out.dtype).smallest_normal)
            subnormal = int(np.count_nonzero((dst != 0) & (np.abs(dst) < tiny)))
            zero = int(np.count_nonzero((dst == 0) & (src != 0)))
        with self._lock:
            counts = self.pairs.setdefault((source, to), CastCounts())
            counts.tensors += 1
            counts.bytes_in += value.nbytes
            counts.bytes_out += out.nbytes
            counts.values += value.size
            counts.overflow += overflow
            counts.subnormal += subnormal
            counts.zero += zero
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [{"from": a, "to": b, **c.to_json()} for (a, b), c in sorted(self.pairs.items())]

    def notes(self, human_bytes: Callable[[int], str] = str) -> list[str]:
        out = []
        for (a, b), c in sorted(self.pairs.items()):
            counted = ((c.overflow, "overflowed to inf"), (c.subnormal, "became subnormal"), (c.zero, "became zero"))
            lost = [f"{n} value(s) {what}" for n, what in counted if n]
            out.append(
                f"cast {c.tensors} tensor(s) {a} -> {b} ({human_bytes(c.bytes_in)} -> {human_bytes(c.bytes_out)}), "
                f"{RULE}: " + ("; ".join(lost) if lost else "every value kept its range")
            )
        return out
