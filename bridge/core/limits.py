"""How much memory a value may take beyond the bytes the file stores for it.

A damaged or hostile file can declare a tensor far larger than its bytes: a gzip-compressed or sparse HDF5
dataset, a torch view with stride 0 over a one-element storage.  Readers may materialise at most
``BRIDGE_MAX_INFLATE`` bytes beyond what is stored (default 256 MiB; ``4GB``, ``512MiB``, plain bytes, or ``0``
for no limit) and refuse the rest with :class:`~bridge.core.errors.SizeLimitExceeded` (exit 2), before allocating.
A declared size that the bytes present cannot back at all (a truncated file) is an error whatever the limit.
"""

from __future__ import annotations

import os
import re

from bridge.core.errors import SizeLimitExceeded, UsageError

__all__ = ["DEFAULT_MAX_INFLATE", "ENV_MAX_INFLATE", "check_inflate", "max_inflate", "parse_size"]

ENV_MAX_INFLATE = "BRIDGE_MAX_INFLATE"
DEFAULT_MAX_INFLATE = 256 << 20

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``500MB``, ``2GB``, ``1GiB`` or plain bytes -> bytes; ``ValueError`` otherwise."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 2GB, 1GiB)")
    return int(float(m[1]) * _UNITS[(m[2] or "").upper()])


def max_inflate() -> int | None:
    """The limit in bytes (None: no limit), from the environment on every call so tests and users can change it."""
    text = os.environ.get(ENV_MAX_INFLATE)
    if text is None or not text.strip():
        return DEFAULT_MAX_INFLATE
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise UsageError(
            f"Bad {ENV_MAX_INFLATE}", detail=str(exc), hint=f"Unset it or give e.g. {ENV_MAX_INFLATE}=4GB"
        ) from None
    return value or None


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_inflate(declared: int, stored: int, *, path: str, tensor: str, how: str) -> None:
    """Refuse to materialise ``declared`` bytes from ``stored`` ones when the difference passes the limit.

    Args:
        declared: bytes the value takes in memory (shape x itemsize).
        stored: bytes the file holds for it (and can back: never more than the file's size).
        how: what makes up the difference, for the message (``"gzip-compressed"``, ``"a stride-0 view"``).
    """
    limit = max_inflate()
    if limit is None or declared - stored <= limit:
        return
    raise SizeLimitExceeded(
        "Value would inflate past the memory limit",
        path=path,
        tensor=tensor,
        detail=f"it declares {_human(declared)} ({how}) from {_human(stored)} stored; the limit on the difference "
        f"is {_human(limit)}",
        hint=f"If the file is trusted and the memory is there, raise the limit: {ENV_MAX_INFLATE}=32GB "
        f"(or {ENV_MAX_INFLATE}=0 for none)",
    )
