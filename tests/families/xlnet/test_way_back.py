"""transformers XLNet -> zihangdai/xlnet's TF1 layout: the original comes back (TensorFlow's reader)."""

from __future__ import annotations

import json

import pytest

from tests.families.original_back import FIXTURES, model_names, round_trip


@pytest.mark.parametrize(
    ("folder", "class_name"), [("pretrain", "XLNetLMHeadModel"), ("regression", "XLNetForSequenceClassification")]
)
def test_checkpoint_comes_back_bit_for_bit(tmp_path, tf, folder, class_name):
    """Per-layer bias rows stacked again; the task head under its own task name; mask_emb only where it was."""
    original = FIXTURES / "xlnet-tf1" / folder
    out = round_trip(tf, tmp_path, original / "xlnet_model.ckpt", class_name, "xlnet", "xlnet_model.ckpt")
    assert model_names(tf, out / "xlnet_model.ckpt") == model_names(tf, original / "xlnet_model.ckpt")
    expected = json.loads((original / "xlnet_config.json").read_text())
    assert json.loads((out / "xlnet_config.json").read_text()) == expected
