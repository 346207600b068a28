"""A did-you-mean points only at a tensor of the same role (a query for a query, a bias for a bias): `role` reads
it from the last name components of either side's names, and `closest` offers nothing rather than another role."""

from __future__ import annotations

import pytest

from bridge.core.naming import closest, role


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bert/encoder/layer_0/attention/self/query/kernel", ("query", "weight")),
        ("bert/tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0", ("query", "weight")),
        ("encoder.layer.0.attention.attn.q.weight", ("query", "weight")),
        ("encoder.layer.0.attention.attn.k.bias", ("key", "bias")),
        ("model.layers.0.self_attn.v_proj.weight", ("value", "weight")),
        ("bert.encoder.layer.0.attention.output.dense.weight", ("output", "weight")),
        ("encoder.layer.0.attention.attn.o.weight", ("output", "weight")),
        ("bert/encoder/layer_0/output/LayerNorm/gamma", ("norm", "weight")),
        ("bert.encoder.layer.0.output.LayerNorm.bias", ("norm", "bias")),
        ("model/h0/ln_1/b", ("norm", "bias")),
        ("bert/embeddings/word_embeddings", (None, None)),
        ("bert.embeddings.word_embeddings.weight", (None, "weight")),
        ("layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE", (None, "weight")),
        ("BertForPreTraining", (None, None)),
    ],
)
def test_role_is_read_from_the_last_components(name: str, expected: tuple[str | None, str | None]) -> None:
    assert role(name) == expected


def test_a_query_is_never_offered_a_key() -> None:
    # The nearest string of another role (the key) was offered before; the query's own counterpart is absent here.
    pool = [("encoder.layer.0.attention.attn.k.weight", (16, 16)), ("encoder.layer.0.attention.attn.v.bias", (16,))]
    assert closest("encoder.layer.0.attention.self.query.weight", (16, 16), pool) is None


def test_a_bias_is_never_offered_a_weight() -> None:
    pool = [("bert.encoder.layer.0.output.LayerNorm.bias", (16,))]
    assert closest("bert/encoder/layer_0/output/LayerNorm/gamma", (16,), pool) is None
    assert closest("bert/encoder/layer_0/output/LayerNorm/beta", (16,), pool) == 0


def test_the_same_role_across_namings_is_offered() -> None:
    pool = [
        ("encoder.layer.0.attention.attn.k.weight", (16, 16)),
        ("encoder.layer.0.attention.attn.q.weight", (16, 16)),
        ("encoder.layer.0.attention.attn.q.bias", (16,)),
    ]
    assert closest("encoder.layer.0.attention.self.query.weight", (16, 16), pool) == 1
    assert closest("encoder.layer.0.attention.self.query.bias", (16,), pool) == 2


def test_names_without_a_role_are_still_compared() -> None:
    # class names, Keras layer names: no role on either side, the string and shape decide as before
    assert closest("BertForPretraining", (), [("BertForPreTraining", ()), ("BertModel", ())]) == 0
    assert closest("dense_1/kernel", (4, 2), [("dense_1/kernel/.ATTRIBUTES/VARIABLE_VALUE", (4, 2))]) == 0
