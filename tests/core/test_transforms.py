"""Transforms: apply, shape, inverse and parse agree; round trips are exact for every dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from bridge.transforms import parse

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.int64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("spec", "shape"),
    [("identity", (3, 4)), ("transpose", (3, 4)), ("permute(3,2,0,1)", (2, 3, 4, 5)),
     ("permute(2,0,1)", (2, 3, 4)), ("reshape(4,3)", (3, 4)), ("reshape(2,2,3)", (3, 4))],
)  # fmt: skip
def test_round_trip_is_bit_exact(spec, shape, dtype):
    value = (np.arange(np.prod(shape)) % 7).astype(dtype).reshape(shape)
    t = parse(spec)
    out = t.apply(value)
    assert out.shape == t.shape(shape)
    assert out.flags.c_contiguous
    back = t.inverse(shape).apply(out)
    assert back.dtype == value.dtype
    np.testing.assert_array_equal(back, value, strict=True)


@pytest.mark.parametrize("shape", [(768, 3072), (1000, 513), (3, 70000)])
def test_tiled_transpose_of_large_kernels_is_exact(shape):
    value = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = parse("transpose").apply(value)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, value.T, strict=True)


def test_spec_strings_parse_back():
    for spec in ("identity", "transpose", "permute(3,2,0,1)", "reshape(12,64,768)"):
        assert str(parse(spec)) == spec


def test_shape_mismatch_is_reported_not_forced():
    assert parse("transpose").shape((3, 4, 5)) is None
    assert parse("reshape(5,5)").shape((3, 4)) is None
    assert parse("permute(1,0)").shape((2, 3, 4)) is None


@pytest.mark.parametrize("bad", ["squeeze", "permute(0,0)", "permute", "reshape()"])
def test_bad_specs(bad):
    with pytest.raises(ValueError):
        parse(bad)
