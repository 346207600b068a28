"""transformers 5 -> KerasHub presets for BART, ViT and Whisper: tiny models saved by transformers' own
``save_pretrained`` (random weights), written as presets, loaded by KerasHub's ``from_preset``, forwards compared
in fp32 with each library called directly; round trips both ways bit-exact where the tables are complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import (
    _loaded,
    _refused_as_preset,
    _same_tensors,
    _saved,
    _to_preset,
    _unnamed,
)
from tests.families.keras_hub.test_seq2seq_vision import DECODER_IDS, ENCODER_IDS, _numpy, seq2seq_batch

_SEQ2SEQ = {
    "vocab_size": 30,
    "d_model": 8,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 16,
    "decoder_ffn_dim": 16,
}
# special tokens inside the tiny vocabulary (Whisper's defaults are OpenAI's, past it)
_SPECIAL = {"pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, "decoder_start_token_id": 0}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _bart(transformers: Any, torch: Any, folder: Path) -> tuple[Path, Any]:
    config = transformers.BartConfig(max_position_embeddings=16, activation_function="gelu", **_SEQ2SEQ)
    model = transformers.BartForConditionalGeneration(config)
    path = _saved(model, folder / "hf_bart", torch)
    with torch.no_grad():  # the position tables' two offset rows, which no preset keeps: zeros
        for table in (model.model.encoder.embed_positions, model.model.decoder.embed_positions):
            table.weight[:2].zero_()
    model.save_pretrained(path)
    return path, model


def _whisper(transformers: Any, torch: Any, folder: Path) -> tuple[Path, Any]:
    config = transformers.WhisperConfig(
        num_mel_bins=8, max_source_positions=8, max_target_positions=8, **_SPECIAL, **_SEQ2SEQ
    )
    return _saved(transformers.WhisperModel(config), folder / "hf_whisper", torch), None


def _vit(transformers: Any, torch: Any, folder: Path) -> Path:
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16
    )
    return _saved(transformers.ViTModel(config, add_pooling_layer=False), folder / "hf_vit", torch)


@pytest.mark.slow
def test_bart_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    """BartForConditionalGeneration -> BartSeq2SeqLM: logits of the real tokens of padded batches; back bit-exact
    (final_logits_bias zeros, as KerasHub computes none; the offset rows zeros, which no preset keeps)."""
    src, model = _bart(transformers, torch, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    assert json.loads((preset / "task.json").read_text())["registered_name"] == "keras_hub>BartSeq2SeqLM"
    task = _loaded(keras_hub.models.BartSeq2SeqLM.from_preset, preset)
    assert type(_loaded(keras_hub.models.Backbone.from_preset, preset)).__name__ == "BartBackbone"
    keras_inputs, torch_kwargs, _, dec_mask = seq2seq_batch(torch, ENCODER_IDS, DECODER_IDS)
    got = task(keras_inputs)
    with torch.no_grad():
        expected = model(**torch_kwargs).logits.numpy()
    np.testing.assert_allclose(_numpy(got)[dec_mask == 1], expected[dec_mask == 1], atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")


@pytest.mark.slow
def test_whisper_to_preset_same_states(transformers, torch, keras_hub, tmp_path):
    """WhisperModel -> WhisperBackbone (keys without a bias on both sides): encoder and decoder states; back
    bit-exact."""
    src, _ = _whisper(transformers, torch, tmp_path)
    model = transformers.WhisperModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    features = np.random.default_rng(1).normal(size=(2, 16, 8)).astype("float32")  # [batch, frames, mels]
    ids = np.where(DECODER_IDS == 1, 0, DECODER_IDS + 2)
    mask = (ids != 0).astype("int32")
    out = backbone({"encoder_features": features, "decoder_token_ids": ids, "decoder_padding_mask": mask})
    with torch.no_grad():
        got = model(
            input_features=torch.tensor(features).permute(0, 2, 1),
            decoder_input_ids=torch.tensor(ids).long(),
            decoder_attention_mask=torch.tensor(mask).long(),
        )
    np.testing.assert_allclose(_numpy(out["encoder_sequence_output"]), got.encoder_last_hidden_state.numpy(), atol=1e-5)
    decoded = _numpy(out["decoder_sequence_output"])
    np.testing.assert_allclose(decoded[mask == 1], got.last_hidden_state.numpy()[mask == 1], atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")


@pytest.mark.slow
def test_vit_to_preset_same_states(transformers, torch, keras_hub, tmp_path):
    """ViTModel (no pooler) -> ViTBackbone: the hidden states of NHWC pixels; back bit-exact."""
    src = _vit(transformers, torch, tmp_path)
    model = transformers.ViTModel.from_pretrained(src, add_pooling_layer=False).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    pixels = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    with torch.no_grad():
        expected = model(pixel_values=torch.tensor(pixels).permute(0, 3, 1, 2)).last_hidden_state.numpy()
    np.testing.assert_allclose(_numpy(backbone(pixels)), expected, atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.ViTModel.from_pretrained(tmp_path / "back").state_dict()
    pooler = {n: t for n, t in back.items() if n.startswith("pooler.")}
    assert pooler and all(not t.any() for t in pooler.values())  # the pooler KerasHub lacks: zeros
    for name, value in model.state_dict().items():  # the rest bit for bit (written under transformers 5's names)
        assert back[name].numpy().tobytes() == value.numpy().tobytes(), name


def _keras_preset(keras_hub: Any, name: str, folder: Path) -> Path:
    models = keras_hub.models
    sizes = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8}
    if name == "bart":
        backbone = models.BartBackbone(vocabulary_size=30, intermediate_dim=16, max_sequence_length=16, **sizes)
        model: Any = models.BartSeq2SeqLM(backbone=backbone, preprocessor=None)
    elif name == "whisper":
        model = models.WhisperBackbone(
            vocabulary_size=30,
            intermediate_dim=16,
            num_mels=8,
            max_encoder_sequence_length=16,
            max_decoder_sequence_length=8,
            **sizes,
        )
    else:
        model = models.ViTBackbone(image_shape=(8, 8, 3), patch_size=4, mlp_dim=16, **sizes)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    model.save_to_preset(str(folder / name))
    return folder / name


@pytest.mark.parametrize("name", ["bart", "vit", "whisper"])
@pytest.mark.slow
def test_seq2seq_vision_preset_round_trip_bit_exact(keras_hub, name, tmp_path):
    """A save_to_preset preset -> transformers -> preset: every variable back bit for bit, the same configs."""
    path = _keras_preset(keras_hub, name, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    for file in ("config.json", "task.json") if name == "bart" else ("config.json",):
        original, written = (json.loads((p / file).read_text()) for p in (path, again))
        assert _unnamed(written) == _unnamed(original), file


@pytest.mark.parametrize(
    ("key", "value"), [("decoder_layers", 3), ("activation_function", "relu"), ("scale_embedding", True)]
)
def test_unwritable_bart_config_exits_2(transformers, torch, key, value, tmp_path):
    src, _ = _bart(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out
