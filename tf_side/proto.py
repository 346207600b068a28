"""A minimal protobuf wire-format codec: enough for the few TF messages a bundle holds.

TensorFlow's bundle index stores ``BundleHeaderProto`` / ``BundleEntryProto`` values and
the TF2 object graph as serialized protobufs.  Reading them needs four wire types only
(varint 0, fixed64 1, length-delimited 2, fixed32 5), so we decode by hand instead of
depending on the ``protobuf`` package and TF's generated modules.

Decoding raises :class:`DecodeError` (a ``ValueError``); callers re-raise it as a
:class:`bridge.core.errors.CorruptCheckpoint` that names the file and tensor.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

FieldValue = int | bytes


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated or garbage)."""


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode an unsigned base-128 varint at ``pos``; return ``(value, next_pos)``."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        # A 64-bit value takes at most 10 bytes.
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def to_int64(value: int) -> int:
    """Reinterpret a decoded varint as two's-complement int64 (negative ints use 10 bytes)."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def to_int32(value: int) -> int:
    """Reinterpret a decoded varint as int32 (protobuf sign-extends int32 to 64 bits)."""
    return to_int64(value) if value >= 1 << 31 else value


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, FieldValue]]:
    """Yield ``(field_number, wire_type, value)`` for each field of a serialized message.

    Varint and fixed fields yield ``int`` (unsigned; see :func:`to_int64`), length-delimited
    fields yield ``bytes``.  Groups (wire types 3 and 4) are not used by TF and are rejected.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = decode_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        value: FieldValue
        if wire == VARINT:
            value, pos = decode_varint(buf, pos)
        elif wire == FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64 field")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == LENGTH_DELIMITED:
            length, pos = decode_varint(buf, pos)
            if pos + length > end:
                raise DecodeError(f"length-delimited field {number} runs past the end of the message")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32 field")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value


def expect_int(value: FieldValue, wire: int, number: int) -> int:
    """Check that a field decoded as a scalar (varint or fixed)."""
    if not isinstance(value, int) or wire == LENGTH_DELIMITED:
        raise DecodeError(f"field {number} should be a scalar, found wire type {wire}")
    return value


def expect_bytes(value: FieldValue, wire: int, number: int) -> bytes:
    """Check that a field decoded as length-delimited (string, bytes, sub-message)."""
    if not isinstance(value, bytes):
        raise DecodeError(f"field {number} should be length-delimited, found wire type {wire}")
    return value


def expect_str(value: FieldValue, wire: int, number: int) -> str:
    """A length-delimited field decoded as UTF-8 (protobuf ``string``)."""
    try:
        return expect_bytes(value, wire, number).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"field {number} is not valid UTF-8") from e


# --- encoding (for a bundle writer) -------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Encode an int as a varint; negative values take 10 bytes, as protobuf does."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_key(number: int, wire: int) -> bytes:
    return encode_varint((number << 3) | wire)


def encode_int_field(number: int, value: int) -> bytes:
    """A varint field (int32/int64/enum/bool); proto3 omits zero, so we do too."""
    return encode_key(number, VARINT) + encode_varint(value) if value else b""


def encode_fixed32_field(number: int, value: int) -> bytes:
    return encode_key(number, FIXED32) + struct.pack("<I", value & 0xFFFFFFFF)


def encode_bytes_field(number: int, value: bytes | str) -> bytes:
    """A length-delimited field (string, bytes or an already-encoded sub-message)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return encode_key(number, LENGTH_DELIMITED) + encode_varint(len(data)) + data
