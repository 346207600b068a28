"""The ``.index`` table's values: the ``BundleHeaderProto`` under key ``""`` and one ``BundleEntryProto`` per
stored tensor (dtype, shape, shard, offset, size, masked CRC32C, and the slices of a partitioned tensor)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core import dtypes
from tf_side.proto import (
    DecodeError,
    decode_varint,
    expect_bytes,
    expect_int,
    iter_fields,
    to_int32,
    to_int64,
)

# DataType codes (tensorflow/core/framework/types.proto) -> our dtype vocabulary.
DATA_TYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: dtypes.STRING,
    8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
    19: "float16", 22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
}  # fmt: skip
# Codes that can be stored but that have no numpy equivalent here; listed for messages.
UNSUPPORTED_TYPES: dict[int, str] = {
    11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16", 16: "DT_QUINT16",
    20: "DT_RESOURCE", 21: "DT_VARIANT", 26: "DT_FLOAT8_E4M3FNUZ", 27: "DT_FLOAT8_E4M3B11FNUZ",
    28: "DT_FLOAT8_E5M2FNUZ", 29: "DT_INT4", 30: "DT_UINT4", 31: "DT_INT2", 32: "DT_UINT2",
    33: "DT_FLOAT4_E2M1FN",
}  # fmt: skip

TENSOR_BUNDLE_VERSION = 1  # kTensorBundleVersion: the consumer version we implement


@dataclass(frozen=True)
class Extent:
    start: int
    length: int | None  # None: the whole dimension (TensorSliceProto has no `length`)


@dataclass(frozen=True)
class BundleEntry:
    """A decoded ``BundleEntryProto`` with its key."""

    key: bytes
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple[tuple[Extent, ...], ...]

    @property
    def name(self) -> str:
        return key_name(self.key)


def key_name(key: bytes) -> str:
    # Names are UTF-8 in practice; surrogateescape keeps any other bytes round-trippable.
    return key.decode("utf-8", "surrogateescape")


def parse_header(value: bytes) -> tuple[int, int, tuple[int, int, tuple[int, ...]]]:
    """``BundleHeaderProto`` -> (num_shards, endianness, (producer, min_consumer, bad_consumers))."""
    num_shards = endianness = 0
    version: tuple[int, int, tuple[int, ...]] = (0, 0, ())
    for number, wire, field in iter_fields(value):
        if number == 1:
            num_shards = to_int32(expect_int(field, wire, number))
        elif number == 2:
            endianness = expect_int(field, wire, number)
        elif number == 3:
            producer = min_consumer = 0
            bad: list[int] = []
            for vnum, vwire, vfield in iter_fields(expect_bytes(field, wire, number)):
                if vnum == 1:
                    producer = to_int32(expect_int(vfield, vwire, vnum))
                elif vnum == 2:
                    min_consumer = to_int32(expect_int(vfield, vwire, vnum))
                elif vnum == 3:
                    bad.extend(_repeated_ints(vfield, vwire, vnum))
            version = (producer, min_consumer, tuple(bad))
    return num_shards, endianness, version


def _repeated_ints(field: int | bytes, wire: int, number: int) -> list[int]:
    if isinstance(field, bytes):  # packed encoding
        out, pos = [], 0
        while pos < len(field):
            value, pos = decode_varint(field, pos)
            out.append(to_int32(value))
        return out
    return [to_int32(expect_int(field, wire, number))]


def _parse_shape(value: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, field in iter_fields(value):
        if number == 2:
            size = 0
            for dnum, dwire, dfield in iter_fields(expect_bytes(field, wire, number)):
                if dnum == 1:
                    size = to_int64(expect_int(dfield, dwire, dnum))
            if size < 0:
                raise DecodeError(f"unknown dimension ({size}) in a stored shape")
            dims.append(size)
        elif number == 3 and expect_int(field, wire, number):
            raise DecodeError("a stored shape of unknown rank")
    return tuple(dims)


def _parse_slice(value: bytes) -> tuple[Extent, ...]:
    extents = []
    for number, wire, field in iter_fields(value):
        if number == 1:
            start, length = 0, None
            for enum_, ewire, efield in iter_fields(expect_bytes(field, wire, number)):
                if enum_ == 1:
                    start = to_int64(expect_int(efield, ewire, enum_))
                elif enum_ == 2:
                    length = to_int64(expect_int(efield, ewire, enum_))
            extents.append(Extent(start, length))
    return tuple(extents)


def parse_entry(key: bytes, value: bytes) -> BundleEntry:
    dtype = shard_id = offset = size = crc = 0
    shape: tuple[int, ...] = ()
    slices = []
    for number, wire, field in iter_fields(value):
        if number == 1:
            dtype = expect_int(field, wire, number)
        elif number == 2:
            shape = _parse_shape(expect_bytes(field, wire, number))
        elif number == 3:
            shard_id = to_int32(expect_int(field, wire, number))
        elif number == 4:
            offset = to_int64(expect_int(field, wire, number))
        elif number == 5:
            size = to_int64(expect_int(field, wire, number))
        elif number == 6:
            crc = expect_int(field, wire, number)
        elif number == 7:
            slices.append(_parse_slice(expect_bytes(field, wire, number)))
    return BundleEntry(key, dtype, shape, shard_id, offset, size, crc, tuple(slices))
