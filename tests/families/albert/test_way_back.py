"""transformers ALBERT -> google-research/albert's TF1 layout: the original comes back (TensorFlow's reader)."""

from __future__ import annotations

import json

from tests.families.original_back import FIXTURES, model_names, round_trip

ORIGINAL = FIXTURES / "albert-tf1"


def test_pretraining_checkpoint_comes_back_bit_for_bit(tmp_path, tf):
    out = round_trip(tf, tmp_path, ORIGINAL / "model.ckpt", "AlbertForPreTraining", "albert", "model.ckpt")
    assert model_names(tf, out / "model.ckpt") == model_names(tf, ORIGINAL / "model.ckpt")
    assert json.loads((out / "albert_config.json").read_text()) == json.loads(
        (ORIGINAL / "albert_config.json").read_text()
    )


def test_base_model_writes_the_encoder_and_pooler_only(tmp_path, tf):
    out = round_trip(tf, tmp_path, ORIGINAL / "model.ckpt", "AlbertModel", "albert", "model.ckpt")
    names = model_names(tf, out / "model.ckpt")
    assert "bert/pooler/dense/kernel" in names and not any(n.startswith("cls/") for n in names)
