"""transformers T5 / mT5 -> Mesh TensorFlow's layout (--target t5): the original comes back, and its
operative_config.gin gives the same config when read again."""

from __future__ import annotations

import json

import pytest

from bridge.commands.convert import convert
from tests.families.original_back import FIXTURES, model_names, round_trip


@pytest.mark.parametrize(
    ("version", "class_name"),
    [
        ("v1_0", "T5ForConditionalGeneration"),
        ("v1_1", "T5ForConditionalGeneration"),
        ("v1_1", "MT5ForConditionalGeneration"),
    ],
)
def test_checkpoint_comes_back_bit_for_bit(tmp_path, tf, version, class_name):
    original = FIXTURES / "t5-tf1" / version / "model.ckpt-1000"
    out = round_trip(tf, tmp_path, original, class_name, "t5", "model.ckpt")
    assert model_names(tf, out / "model.ckpt") == model_names(tf, original)
    assert (out / "operative_config.gin").is_file()
    convert(out, to="pytorch", target=class_name, out=tmp_path / "again")
    first = json.loads((tmp_path / "pt" / "config.json").read_text())
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == first
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        tmp_path / "pt" / "model.safetensors"
    ).read_bytes()


def test_encoder_only_writes_no_decoder(tmp_path, tf):
    original = FIXTURES / "t5-tf1" / "v1_1" / "model.ckpt-1000"
    out = round_trip(tf, tmp_path, original, "T5EncoderModel", "t5", "model.ckpt")
    names = model_names(tf, out / "model.ckpt")
    assert names and not any(n.startswith("decoder/") for n in names)
