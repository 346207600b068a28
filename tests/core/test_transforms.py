"""Transforms: apply, shape, inverse and parse agree; round trips are exact for every dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from bridge.core.transforms import assemble, parse

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.int64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("identity", (3, 4)),
        ("transpose", (3, 4)),
        ("permute(3,2,0,1)", (2, 3, 4, 5)),
        ("permute(2,0,1)", (2, 3, 4)),
        ("reshape(4,3)", (3, 4)),
        ("reshape(2,2,3)", (3, 4)),
        ("squeeze(0)", (1, 3, 4)),
        ("squeeze(1)", (3, 1, 4)),
        ("squeeze(0)", (1,)),  # to a scalar: CLIP's logit_scale, stored [1] by TF
        ("permute(2,1,0)", (4, 1, 1)),  # a Conv1D kernel; wav2vec2's weight-norm g [k, 1, 1] -> [1, 1, k]
        ("unsqueeze(0)", (3, 4)),
        ("unsqueeze(2)", (3, 4)),
        ("squeeze(0)|transpose", (1, 3, 4)),
        ("reverse", (3, 4)),
        ("reverse", (6, 4, 2)),  # ConvBERT's grouped kernel [out/g, in/g, g] -> torch's [g, in/g, out/g]
    ],
)
def test_round_trip_is_bit_exact(spec, shape, dtype):
    value = (np.arange(np.prod(shape)) % 7).astype(dtype).reshape(shape)
    t = parse(spec)
    out = t.apply(value)
    assert out.shape == t.shape(shape)
    assert out.flags.c_contiguous
    back = t.inverse(shape).apply(out)
    assert back.dtype == value.dtype
    np.testing.assert_array_equal(back, value, strict=True)


# (768, 3072) float32 and (1024, 1024) go by strips (a row stride of a multiple of 2 KiB), the others by tiles;
# row counts that are no multiple of a strip or a tile leave a ragged last one.
@pytest.mark.parametrize("shape", [(768, 3072), (1000, 513), (3, 70000), (1027, 1024), (30522, 768)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "uint8"])
def test_large_transposes_are_exact(shape, dtype):
    value = (np.random.default_rng(0).standard_normal(shape) * 100).astype(dtype)
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


def test_squeeze_names_its_axis_and_never_forces_a_fit():
    # GPT-2's Conv1D kernel [1, nx, nf] is torch's [nx, nf]: the leading axis goes, nothing else moves.
    value = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_array_equal(parse("squeeze(0)").apply(value), value[0], strict=True)
    assert parse("squeeze(0)").inverse((1, 3, 4)) == parse("unsqueeze(0)")
    assert parse("unsqueeze(0)").inverse((3, 4)) == parse("squeeze(0)")
    assert parse("squeeze(0)").shape((2, 3, 4)) is None  # not size 1: a mismatch, never squeezed elsewhere
    assert parse("squeeze(3)").shape((1, 3, 4)) is None
    assert parse("unsqueeze(3)").shape((3, 4)) is None
    assert str(parse("squeeze(0)")) == "squeeze(0)"


def test_reverse_is_transpose_on_a_matrix_and_reverses_every_axis_above():
    value = np.arange(48, dtype=np.float32).reshape(6, 4, 2)
    np.testing.assert_array_equal(parse("reverse").apply(value), np.transpose(value, (2, 1, 0)), strict=True)
    np.testing.assert_array_equal(parse("reverse").apply(value[..., 0]), parse("transpose").apply(value[..., 0]))
    assert parse("reverse").shape((6, 4, 2)) == (2, 4, 6) and str(parse("reverse")) == "reverse"


@pytest.mark.parametrize(
    "bad", ["reverse(1)", "squeeze", "squeeze(-1)", "unsqueeze(0,1)", "permute(0,0)", "permute", "reshape()"]
)
def test_bad_specs(bad):
    with pytest.raises(ValueError):
        parse(bad)


def test_gates_chain_and_parts_round_trip():
    """The Keras GRU transforms: gate blocks reordered, bias rows split in parts and stacked back."""
    from bridge.core.transforms import parse as parse_

    kernel = np.arange(5 * 18, dtype=np.float32).reshape(5, 18)  # Keras [in, 3h], gates z, r, h
    t = parse_("transpose|gates(zrh->rzh)")
    out = t.apply(kernel)
    assert out.shape == (18, 5) and np.array_equal(out[:6], kernel[:, 6:12].T)  # torch's r first
    assert np.array_equal(t.inverse(kernel.shape).apply(out), kernel)
    assert str(t.inverse(kernel.shape)) == "gates(rzh->zrh)|transpose"
    bias = np.arange(36, dtype=np.float32).reshape(2, 18)
    parts = [parse_(f"row({k})|gates(zrh->rzh)") for k in (0, 1)]
    assert all(p.splits and p.part is None and p.shape((2, 18)) == (18,) for p in parts)
    back = [p.inverse(bias.shape) for p in parts]
    assert [b.part for b in back] == [(0, 2), (1, 2)] and back[1].shape((18,)) == (2, 18)
    assert np.array_equal(np.stack([b.apply(p.apply(bias)) for p, b in zip(parts, back, strict=True)]), bias)
    with pytest.raises(ValueError, match="gates needs"):
        parse_("gates(zrh->rzn)")


def test_terms_and_sum_assemble_a_target_from_two_sources():
    """An LSTM bias: Keras' one value is term 0 (the value) + term 1 (zeros) of torch's two; back, they add up."""
    from bridge.core.transforms import assemble

    terms = [parse(f"term({k},2)") for k in (0, 1)]
    assert all(t.splits and t.part is None and t.shape((4,)) == (4,) for t in terms)
    b = np.array([0.5, -1.25, 3.0, 2.0], dtype=np.float32)
    split = [t.apply(b) for t in terms]
    assert split[0].tobytes() == b.tobytes() and split[1].tobytes() == np.zeros(4, np.float32).tobytes()
    sums = [t.inverse((4,)) for t in terms]
    assert [str(s) for s in sums] == ["sum(0,2)", "sum(1,2)"] and all(s.joins == "sum" for s in sums)
    assert [s.part for s in sums] == [(0, 2), (1, 2)] and str(sums[1].inverse((4,))) == "term(1,2)"
    ih, hh = np.float32([0.1, 0.2, 0.3, 0.4]), np.float32([1e-8, -0.2, 7.0, 0.0])
    total = assemble([(sums[1], sums[1].apply(hh)), (sums[0], sums[0].apply(ih))])  # any order: by part
    assert total.dtype == np.float32 and total.tobytes() == (ih + hh).tobytes()
    assert assemble([(sums[0], b)]) is b
    stacked = assemble([(parse("place(1,2)"), hh), (parse("place(0,2)"), ih)])
    assert stacked.tobytes() == np.stack([ih, hh]).tobytes() and parse("place(0,2)").joins == "place"
    with pytest.raises(ValueError, match="sum needs"):
        parse("sum(2,2)")


def test_blocks_concatenate_a_target_from_three_sources_and_chunks_take_them_back():
    """Keras' query, key, value kernels [E, heads, head_dim] are blocks 0, 1, 2 of torch's in_proj_weight [3E, E]."""
    from bridge.core.transforms import assemble

    kernels = [np.arange(24, dtype=np.float32).reshape(4, 2, 3) + 100 * k for k in range(3)]
    blocks = [parse(f"reshape(4,6)|transpose|block({k},3)") for k in range(3)]
    assert [b.part for b in blocks] == [(0, 3), (1, 3), (2, 3)] and all(b.joins == "block" for b in blocks)
    assert all(b.shape((4, 2, 3)) == (18, 4) and not b.splits for b in blocks)
    whole = assemble([(b, b.apply(k)) for b, k in reversed(list(zip(blocks, kernels, strict=True)))])  # by part
    assert whole.shape == (18, 4) and whole.tobytes() == np.concatenate([k.reshape(4, 6).T for k in kernels]).tobytes()
    chunks = [b.inverse((4, 2, 3)) for b in blocks]
    assert str(chunks[1]) == "chunk(1,3)|transpose|reshape(4,2,3)" and all(c.splits and c.part is None for c in chunks)
    assert all(c.shape((18, 4)) == (4, 2, 3) for c in chunks) and chunks[0].shape((17, 4)) is None
    assert all(c.apply(whole).tobytes() == k.tobytes() for c, k in zip(chunks, kernels, strict=True))
    assert str(chunks[2].inverse((18, 4))) == "reshape(4,6)|transpose|block(2,3)"
    with pytest.raises(ValueError, match=r"block needs \(k,n\[,axis\[,g\]\]\)"):
        parse("block(3,3)")


def test_blocks_along_axis_1_make_a_conv1d_kernel_and_chunks_take_them_back():
    """GPT-2's Conv1D c_attn kernel [E, 3E]: Keras' query, key, value kernels [E, heads, head_dim] side by side."""
    from bridge.core.transforms import assemble

    kernels = [np.arange(24, dtype=np.float32).reshape(4, 2, 3) + 100 * k for k in range(3)]
    blocks = [parse(f"reshape(4,6)|block({k},3,1)") for k in range(3)]
    assert [b.part for b in blocks] == [(0, 3), (1, 3), (2, 3)] and all(b.shape((4, 2, 3)) == (4, 18) for b in blocks)
    whole = assemble([(b, b.apply(k)) for b, k in zip(blocks, kernels, strict=True)])
    assert whole.tobytes() == np.concatenate([k.reshape(4, 6) for k in kernels], axis=1).tobytes()
    chunks = [b.inverse((4, 2, 3)) for b in blocks]
    assert str(chunks[1]) == "chunk(1,3,1)|reshape(4,2,3)" and chunks[0].shape((4, 17)) is None
    assert all(c.apply(whole).tobytes() == k.tobytes() for c, k in zip(chunks, kernels, strict=True))
    assert parse("block(0,3,5)").shape((4, 6)) is None
    with pytest.raises(ValueError, match="chunk needs"):
        parse("chunk(0,3,1,2,1)")


def test_grouped_blocks_interleave_per_group_and_chunks_take_them_back():
    """Three [heads, head_dim] kernels (query, key, value) become one projection whose rows hold per head its query,
    key and value (``g`` = heads groups of 3 blocks), and each comes back out bit-exact."""
    from bridge.core.transforms import assemble

    heads, head_dim, hidden = 2, 3, 4
    kernels = [
        np.arange(hidden * heads * head_dim, dtype=np.float32).reshape(hidden, heads, head_dim) + 100 * k
        for k in range(3)
    ]
    blocks = [parse(f"reshape(4,6)|transpose|block({k},3,0,{heads})") for k in range(3)]
    assert [b.part for b in blocks] == [(0, 3), (1, 3), (2, 3)] and all(b.shape((4, 2, 3)) == (18, 4) for b in blocks)
    whole = assemble([(b, b.apply(k)) for b, k in zip(blocks, kernels, strict=True)])
    per_head = whole.reshape(heads, 3, head_dim, hidden)  # the target's rows: per head, query then key then value
    for k, kernel in enumerate(kernels):
        assert per_head[:, k].tobytes() == np.ascontiguousarray(kernel.transpose(1, 2, 0)).tobytes()
    chunks = [b.inverse((4, 2, 3)) for b in blocks]
    assert str(chunks[2]) == f"chunk(2,3,0,{heads})|transpose|reshape(4,2,3)"
    assert all(c.shape((18, 4)) == (4, 2, 3) for c in chunks) and parse("chunk(0,3,0,4)").shape((18, 4)) is None
    assert all(c.apply(whole).tobytes() == k.tobytes() for c, k in zip(chunks, kernels, strict=True))
    assert parse("block(0,3,0,4)").shape((6, 4)) is None  # 6 rows are not 4 groups
    with pytest.raises(ValueError, match="block needs"):
        parse("block(0,3,0,0)")


def test_unequal_blocks_join_and_cut_back():
    """Phi-3's qkv_proj under grouped-query attention: 4 query heads, 2 key and 2 value heads of size 3, rows of
    unequal blocks joined along axis 0; each cut back out bit-exact."""
    from bridge.core.transforms import assemble

    sizes = (12, 6, 6)
    kernels = [np.arange(5 * n, dtype=np.float32).reshape(5, n // 3, 3) + 100 * k for k, n in enumerate(sizes)]
    joins = [parse(f"reshape(5,{n})|transpose|join({k},0,12,6,6)") for k, n in enumerate(sizes)]
    assert [j.part for j in joins] == [(0, 3), (1, 3), (2, 3)] and all(j.joins == "join" for j in joins)
    assert all(j.shape(k.shape) == (24, 5) and not j.splits for j, k in zip(joins, kernels, strict=True))
    whole = assemble([(j, j.apply(k)) for j, k in reversed(list(zip(joins, kernels, strict=True)))])
    assert whole.tobytes() == np.concatenate([k.reshape(5, -1).T for k in kernels]).tobytes()
    cuts = [j.inverse(k.shape) for j, k in zip(joins, kernels, strict=True)]
    assert str(cuts[1]) == "cut(1,0,12,6,6)|transpose|reshape(5,2,3)" and all(c.splits for c in cuts)
    assert all(c.apply(whole).tobytes() == k.tobytes() for c, k in zip(cuts, kernels, strict=True))
    assert cuts[0].shape((23, 5)) is None and parse("join(1,1,2,3)").shape((4, 3)) == (4, 5)
    with pytest.raises(ValueError, match="join needs"):
        parse("join(2,0,4,4)")


def test_prepend_adds_zero_rows_and_drop_takes_them_away():
    """RoBERTa's position table: transformers keeps two leading rows (its padding offset) KerasHub's lacks."""
    value = np.arange(12, dtype=np.float32).reshape(4, 3)
    grown = parse("prepend(2)").apply(value)
    assert grown.shape == (6, 3) and not grown[:2].any() and grown[2:].tobytes() == value.tobytes()
    assert parse("prepend(2)").shape((4, 3)) == (6, 3)
    assert parse("prepend(2)").inverse((4, 3)) == parse("drop(2)")
    assert parse("drop(2)").apply(grown).tobytes() == value.tobytes()
    assert parse("drop(5)").shape((4, 3)) is None  # fewer rows than it drops: a mismatch
    assert str(parse("drop(2)")) == "drop(2)"


def test_nested_parts_rebuild_a_bank_of_side_by_side_blocks():
    """``row(e)|chunk(k,2,1)`` takes block ``k`` of row ``e`` (one expert's gate or up kernel in a bank that keeps
    them side by side); its inverse ends ``block(k,2,1)|place(e,n)``: part ``2e + k`` of ``2n``, and the parts,
    in any order, assemble into the bank again bit for bit."""
    bank = np.random.default_rng(0).normal(size=(3, 4, 10)).astype(np.float32)
    parts = []
    for e in range(3):
        for k in range(2):
            taken = parse(f"row({e})|chunk({k},2,1)|transpose")
            inverse = taken.inverse(bank.shape)
            assert str(inverse) == f"transpose|block({k},2,1)|place({e},3)"
            assert inverse.part == (2 * e + k, 6)
            value = taken.apply(bank)
            assert inverse.shape(value.shape) == bank.shape
            parts.append((inverse, inverse.apply(value)))
    assert assemble(parts[::-1]).tobytes() == bank.tobytes()


def test_a_four_axis_permute_ending_in_axis_zero_parses() -> None:
    # a conv2d kernel's inverse (torch [out, in, h, w] -> Keras [h, w, in, out]); block/chunk's group check is theirs
    value = np.arange(24, dtype=np.float32).reshape(4, 3, 2, 1)
    assert parse("permute(2,3,1,0)").apply(value).shape == (2, 1, 3, 4)
