"""--dtype's rounding rule (round to nearest, ties to even, once) against torch's and numpy's own casts."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from bridge.core.casting import CastReport, cast

# float32 bit patterns whose low 16 bits decide bfloat16: exact ties with an even and an odd upper half tell
# ties-to-even (0x3F80, 0x3F82) from truncation (0x3F80, 0x3F81) and from ties-away (0x3F81, 0x3F82)
TIES_BF16 = np.array(
    [0x3F808000, 0x3F818000, 0xBF818000, 0x3F808001, 0x3F80FFFF, 0x7F7FFFFF, 0x00018000, 0x7F800000, 0],
    dtype=np.uint32,
).view(np.float32)
# float16 ties: 1 + 2^-11 (between 1 and 1 + 2^-10: to 1), 1 + 3 * 2^-11 (to 1 + 2^-9), 65520 (to inf)
TIES_F16 = np.array([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 3 * 2**-11), 65520.0, 65519.0, 2**-25, 2**-24 * 1.5],
                    dtype=np.float32)  # fmt: skip


def test_float32_to_bfloat16_is_ties_to_even_as_torch(torch):
    ours = cast(TIES_BF16, "bfloat16").view(np.uint16)
    theirs = torch.from_numpy(TIES_BF16).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert ours.tolist() == theirs.tolist()
    assert ours[:2].tolist() == [0x3F80, 0x3F82]  # neither truncation nor ties-away


def test_float32_to_float16_is_ties_to_even_as_torch_and_numpy(torch):
    ours = cast(TIES_F16, "float16")
    with np.errstate(over="ignore"):
        assert ours.tobytes() == TIES_F16.astype(np.float16).tobytes()
    assert ours.tobytes() == torch.from_numpy(TIES_F16).to(torch.float16).numpy().tobytes()
    assert ours[:2].tolist() == [1.0, 1 + 2**-9] and np.isinf(ours[3]) and ours[4] == 65504


def test_float64_rounds_once():
    """Just above a bfloat16 tie in float64 but exactly a tie in float32: rounding twice through float32 (as
    ml_dtypes and torch do) lands on the even neighbour; one rounding goes up, as numpy's float16 cast does."""
    above = np.array([1 + 2**-8 + 2**-40, -(1 + 2**-8 + 2**-40), 1 + 2**-8 - 2**-40, 1 + 2**-8])
    assert cast(above, "bfloat16").view(np.uint16).tolist() == [0x3F81, 0xBF81, 0x3F80, 0x3F80]
    assert above.astype(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16).tolist()[0] == 0x3F80
    f16 = np.array([1 + 2**-11 + 2**-40, 1 + 2**-11])
    assert cast(f16, "float16").tobytes() == f16.astype(np.float16).tobytes()
    assert cast(f16, "float16").tolist() == [1 + 2**-10, 1.0]


@pytest.mark.parametrize("to", ["float16", "bfloat16"])
def test_report_counts_overflow_subnormal_zero(to: str, torch):
    value = np.array([1e5, -1e5, 1e-6, 1e-9, 0.0, 1.0, 3e38], dtype=np.float32)
    report = CastReport()
    out = report.cast(value, to)
    [row] = report.to_json()
    t = torch.from_numpy(value).to(getattr(torch, to)).float()
    tiny = torch.finfo(getattr(torch, to)).tiny
    src = torch.from_numpy(value)
    assert row["overflow"] == int((torch.isinf(t) & torch.isfinite(src)).sum())
    assert row["subnormal"] == int(((t != 0) & (t.abs() < tiny)).sum())
    assert row["zero"] == int(((t == 0) & (src != 0)).sum())
    assert (row["from"], row["to"], row["tensors"], row["values"]) == ("float32", to, 1, 7)
    assert row["bytes_out"] == out.nbytes == 14
    if to == "float16":
        assert (row["overflow"], row["subnormal"], row["zero"]) == (3, 1, 1)
    assert "ties to even" in report.notes()[0]
