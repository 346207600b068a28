"""Partitioned variables: the index keys of their saved slices (``EncodeTensorNameSlice``) and the slices found,
checked to tile the whole tensor, and pasted together when read."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge.core import dtypes
from tf_side.bundle.index import DATA_TYPES, BundleEntry, Extent
from tf_side.bundle.read import Bundle

# --- slice keys (tensorflow/core/util/saved_tensor_slice_util.cc + lib/strings/ordered_code.cc)


def _num_increasing(value: int) -> bytes:
    """OrderedCode::WriteNumIncreasing: a length byte, then the big-endian bytes without leading zeros."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing: two's complement with the length folded into the top bits.

    A ``length``-byte code holds ``7 * length - 1`` value bits plus the sign; its first
    ``length`` bits (spilling into byte 2 for lengths 9 and 10) are ones, XOR-ed into the
    sign-extended big-endian value, so codes sort like the numbers.
    """
    magnitude = ~value if value < 0 else value
    length = magnitude.bit_length() // 7 + 1
    body = bytearray((value & ((1 << (8 * length)) - 1)).to_bytes(length, "big"))
    header = ((1 << length) - 1) << (16 - length)
    body[0] ^= header >> 8
    if length > 1:
        body[1] ^= header & 0xFF
    return bytes(body)


def encode_slice_key(name: bytes, extents: tuple[Extent, ...]) -> bytes:
    """``EncodeTensorNameSlice``: the index key of one saved slice of a partitioned tensor."""
    out = bytearray(_num_increasing(0))  # every slice key starts with \x00, sorting before names
    out += _escape(name) + b"\x00\x01"  # OrderedCode::WriteString: escaped bytes + separator
    out += _num_increasing(len(extents))
    for extent in extents:
        out += _signed_num_increasing(extent.start)
        out += _signed_num_increasing(-1 if extent.length is None else extent.length)
    return bytes(out)


def _escape(name: bytes) -> bytes:
    out = bytearray()
    for byte in name:
        if byte == 0x00:
            out += b"\x00\xff"
        elif byte == 0xFF:
            out += b"\xff\x00"
        else:
            out.append(byte)
    return bytes(out)


@dataclass(frozen=True)
class Part:
    entry: BundleEntry
    index: tuple[slice, ...]


def assembled_loader(bundle: Bundle, full: BundleEntry, parts: list[Part], name: str) -> Callable[[], np.ndarray]:
    """A loader that pastes a partitioned tensor's slices into one array."""

    def load() -> np.ndarray:
        out = np.empty(full.shape, dtype=dtypes.numpy_dtype(DATA_TYPES[full.dtype]))
        for part in parts:
            out[part.index] = bundle.read(part.entry, name)
        return out

    return load


def slice_parts(bundle: Bundle, full: BundleEntry, name: str) -> list[Part]:
    """Find each slice entry of a partitioned tensor and check that they tile it exactly."""
    parts = []
    boxes: list[tuple[tuple[int, int], ...]] = []
    rank = len(full.shape)
    for proto_extents in full.slices:
        # No extents at all is TF's "-": the whole tensor.
        extents = proto_extents or tuple(Extent(0, None) for _ in range(rank))
        if len(extents) != rank:
            raise bundle._corrupt(f"a slice has {len(extents)} extents for a rank-{rank} tensor", tensor=name)
        box = []
        for extent, dim in zip(extents, full.shape, strict=True):
            length = dim - extent.start if extent.length is None else extent.length
            if extent.start < 0 or length < 0 or extent.start + length > dim:
                raise bundle._corrupt(
                    f"slice extent (start {extent.start}, length {extent.length}) outside a dimension of {dim}",
                    tensor=name,
                )
            box.append((extent.start, extent.start + length))
        key = encode_slice_key(full.key, proto_extents)
        entry = bundle.entries.get(key)
        if entry is None:
            raise bundle._corrupt(
                f"the entry for slice {[f'{a}:{b}' for a, b in box]} (key {key!r}) is missing", tensor=name
            )
        shape = tuple(b - a for a, b in box)
        if entry.shape != shape or entry.dtype != full.dtype or entry.slices:
            raise bundle._corrupt(
                f"the slice entry has shape {list(entry.shape)} and dtype code {entry.dtype}, expected "
                f"{list(shape)} and {full.dtype}",
                tensor=name,
            )
        parts.append(Part(entry, tuple(slice(a, b) for a, b in box)))
        boxes.append(tuple(box))
    # Disjoint boxes whose volumes add up to the whole cover it exactly.
    total = math.prod(full.shape)  # Python ints: a damaged shape must not wrap around int64
    covered = sum(math.prod(b - a for a, b in box) for box in boxes)
    overlapping = any(
        all(a1 < b2 and a2 < b1 for (a1, b1), (a2, b2) in zip(p, q, strict=True))
        for i, p in enumerate(boxes)
        for q in boxes[i + 1 :]
    )
    if covered != total or overlapping:
        raise bundle._corrupt(
            f"the {len(boxes)} slices cover {covered} of {total} elements" + (" and overlap" if overlapping else ""),
            tensor=name,
        )
    return parts
