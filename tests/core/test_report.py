"""The folded plan report: rows fold only where sources and targets fold together, number for number."""

from __future__ import annotations

from bridge.report import fold_pairs


def test_numbered_layers_fold_into_one_row():
    pairs = [
        (f"bert/encoder/layer_{i}/output/dense/kernel", f"bert.encoder.layer.{i}.output.dense.weight")
        for i in range(12)
    ]
    assert fold_pairs(pairs) == [
        ("bert/encoder/layer_{0..11}/output/dense/kernel", "bert.encoder.layer.{0..11}.output.dense.weight", 12)
    ]


def test_a_tf_output_index_does_not_stop_folding():
    pairs = [(f"tf_bert_model/bert/encoder/layer_._{i}/query/bias:0", f"encoder.layer.{i}.query.bias") for i in (0, 1)]
    assert fold_pairs(pairs) == [
        ("tf_bert_model/bert/encoder/layer_._{0..1}/query/bias:0", "encoder.layer.{0..1}.query.bias", 2)
    ]


def test_rows_are_never_paired_by_position():
    pairs = [
        ("layers/dense/vars/0", "fc1.weight"),
        ("layers/dense_1/vars/0", "fc2.weight"),
        ("layers/lstm/lstm_cell/vars/0", "rnn.weight_ih_l0"),
    ]
    assert fold_pairs(pairs) == [(s, t, 1) for s, t in pairs]


def test_crossed_numbers_stay_apart():
    pairs = [("enc/layer_0/kernel", "enc.layer.1.weight"), ("enc/layer_1/kernel", "enc.layer.0.weight")]
    assert fold_pairs(pairs) == [(s, t, 1) for s, t in pairs]
