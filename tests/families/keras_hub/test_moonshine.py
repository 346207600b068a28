"""Moonshine both ways: tiny ``MoonshineForConditionalGeneration`` (encoder and decoder of their own depths, partial
rotary) written as a preset and KerasHub's own ``MoonshineAudioToText`` converted to transformers,
forwards compared in fp32 on raw audio and a padded decoder batch (encoder and decoder states, logits from the tied
table), round trips bit-exact, configs KerasHub's Moonshine cannot compute refused by name, ``bridge verify``
running both forwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _loaded, _refused_as_preset, _same_tensors, _saved, _to_preset
from tests.families.keras_hub.test_seq2seq_vision import _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward

_DECODER_IDS = np.array([[1, 7, 9, 11, 0, 0], [1, 5, 6, 8, 12, 14]], dtype="int32")
_DECODER_MASK = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], dtype="int32")
_SAMPLES = 4000  # three convolutions' strides leave 9 frames
_CONFIG = {
    "vocab_size": 40,
    "hidden_size": 16,
    "intermediate_size": 48,
    "encoder_num_hidden_layers": 2,
    "decoder_num_hidden_layers": 3,
    "encoder_num_attention_heads": 2,
    "decoder_num_attention_heads": 2,
    "max_position_embeddings": 64,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5},
    "pad_token_id": 0,
}


_CLASSES = "MoonshineBackbone + MoonshineAudioToText"


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _moonshine(
    transformers: Any, torch: Any, folder: Path, class_name: str = "MoonshineForConditionalGeneration"
) -> Path:
    model = getattr(transformers, class_name)(transformers.MoonshineConfig(**_CONFIG))
    return _saved(model, folder / f"hf_{class_name}", torch)


def _same_forward(keras_hub: Any, torch: Any, backbone: Any, model: Any) -> None:
    """Encoder and decoder states and logits of KerasHub's ``backbone`` (its logits from the tied table, as
    ``MoonshineAudioToText`` computes them) and transformers' ``model`` on whole clips and the real decoder tokens."""
    audio = np.random.default_rng(0).normal(size=(2, _SAMPLES)).astype("float32")
    keras_inputs = {
        "encoder_input_values": audio[..., None],
        "encoder_padding_mask": np.ones((2, _SAMPLES), dtype="bool"),
        "decoder_token_ids": _DECODER_IDS,
        "decoder_padding_mask": _DECODER_MASK.astype("bool"),
    }
    out = backbone(keras_inputs)
    task = keras_hub.models.MoonshineAudioToText(backbone=backbone, preprocessor=None)
    with torch.no_grad():
        got = model(
            input_values=torch.tensor(audio),
            attention_mask=torch.ones(2, _SAMPLES, dtype=torch.long),
            decoder_input_ids=torch.tensor(_DECODER_IDS).long(),
            decoder_attention_mask=torch.tensor(_DECODER_MASK).long(),
            output_hidden_states=True,
        )
    real = _DECODER_MASK == 1
    encoded = got.encoder_last_hidden_state.numpy()
    assert encoded.shape[1] == 9
    np.testing.assert_allclose(_numpy(out["encoder_sequence_output"]), encoded, atol=1e-5)
    decoded = got.decoder_hidden_states[-1].numpy()
    np.testing.assert_allclose(_numpy(out["decoder_sequence_output"])[real], decoded[real], atol=1e-5)
    np.testing.assert_allclose(_numpy(task(keras_inputs))[real], got.logits.numpy()[real], atol=1e-5)


@pytest.mark.slow
def test_moonshine_to_preset_same_states_and_logits(transformers, torch, keras_hub, tmp_path):
    """MoonshineForConditionalGeneration -> MoonshineAudioToText: the same states and logits; back bit-exact."""
    src = _moonshine(transformers, torch, tmp_path)
    model = transformers.MoonshineForConditionalGeneration.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    assert json.loads((preset / "task.json").read_text())["registered_name"] == "keras_hub>MoonshineAudioToText"
    # KerasHub's MoonshineAudioToText.from_preset fails on every preset (its own too: its backbone config cannot be
    # read back as a task's part); the backbone loads, and the task adds no weights
    _same_forward(keras_hub, torch, _loaded(keras_hub.models.Backbone.from_preset, preset), model)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")


@pytest.mark.slow
def test_moonshine_audio_to_text_to_transformers_same_states_and_logits(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own MoonshineAudioToText (random weights) -> transformers, loaded with nothing left out; the same
    states and logits; written back to a preset bit-exact (its rotary frequencies computed as KerasHub computes them).
    KerasHub cannot load its own task preset, so the task is built on the loaded backbone."""
    backbone = keras_hub.models.MoonshineBackbone(
        vocabulary_size=40,
        filter_dim=16,
        encoder_num_layers=2,
        decoder_num_layers=3,
        hidden_dim=16,
        intermediate_dim=48,
        encoder_num_heads=4,
        decoder_num_heads=4,
        feedforward_expansion_factor=3,
        max_position_embeddings=64,
        partial_rotary_factor=0.62,
        rope_theta=500.0,
    )
    task = keras_hub.models.MoonshineAudioToText(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    trainable = {id(w) for w in task.trainable_weights}
    task.set_weights(
        [rng.normal(0, 0.5, w.shape).astype("float32") if id(w) in trainable else _numpy(w) for w in task.weights]
    )
    preset, out = tmp_path / "preset", tmp_path / "pt"
    task.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    model, info = transformers.MoonshineForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    _same_forward(keras_hub, torch, _loaded(keras_hub.models.Backbone.from_preset, preset), model.eval())
    report = json.loads(run_cli("verify", str(preset), str(out), "--json"))
    _passes_with_forward(report, _CLASSES, {"hidden_states", "encoder_hidden_states", "logits"})
    back = _to_preset(out, tmp_path / "back")
    _same_tensors(preset / "model.weights.h5", back / "model.weights.h5")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("decoder_hidden_act", "gelu"),
        ("encoder_num_key_value_heads", 1),
        ("pad_head_dim_to_multiple_of", 8),
        ("intermediate_size", 40),
        ("partial_rotary_factor", 0.625),  # an odd 5 of the 8-wide heads' channels
        ("decoder_num_attention_heads", 4),
    ],
)
def test_unwritable_moonshine_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _moonshine(transformers, torch, tmp_path, "MoonshineModel")
    config = json.loads((src / "config.json").read_text())
    if key == "partial_rotary_factor":
        config["rope_parameters"][key] = value
    else:
        config[key] = value
    (src / "config.json").write_text(json.dumps(config))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("decoder_use_swiglu_activation", False),
        ("filter_dim", 8),
        ("partial_rotary_factor", 0.4),
        ("decoder_num_heads", 4),
    ],
)
def test_unwritable_moonshine_preset_exits_2(keras_hub, tmp_path, key, value):
    """A preset transformers' Moonshine cannot compute: refused by its key (the partial rotary factor rotating an
    odd 3 channels of the 8-wide heads, which KerasHub rounds down to 2; a decoder of other head counts than the
    encoder's, which transformers builds with the encoder's)."""
    sizes = {"filter_dim": 16, "partial_rotary_factor": 0.5, "decoder_num_heads": 2, key: value}
    backbone = keras_hub.models.MoonshineBackbone(
        vocabulary_size=40,
        encoder_num_layers=1,
        decoder_num_layers=1,
        hidden_dim=16,
        intermediate_dim=32,
        encoder_num_heads=2,
        feedforward_expansion_factor=2,
        **sizes,
    )
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert key in out


@pytest.mark.slow
def test_verify_runs_moonshine_forward_of_written_preset(keras_hub, transformers, torch, tmp_path):
    src = _moonshine(transformers, torch, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    report = json.loads(run_cli("verify", str(src), str(preset), "--json"))
    _passes_with_forward(report, _CLASSES, {"hidden_states", "encoder_hidden_states", "logits"})
