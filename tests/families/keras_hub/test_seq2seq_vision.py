"""KerasHub encoder-decoder and vision presets (BART, T5, Whisper, ViT) written by KerasHub's own ``save_to_preset``
(tiny models, random weights), converted to transformers 5 and loaded there, forwards compared in fp32: each
library called directly with the same inputs (Whisper's and ViT's channels-last features turned channels-first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli

ENCODER_IDS = np.array([[0, 7, 9, 11, 2, 1, 1, 1], [0, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")
DECODER_IDS = np.array([[2, 0, 7, 9, 1, 1], [2, 0, 5, 6, 8, 12]], dtype="int32")  # BART pads with 1


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def seq2seq_batch(torch: Any, enc_ids: np.ndarray, dec_ids: np.ndarray, pad_id: int = 1) -> tuple[dict, dict, Any, Any]:
    """One padded encoder-decoder batch (the ids' 1s mark padding) as KerasHub's inputs and as transformers'
    arguments, the padding written as ``pad_id`` (the model's own), and the two masks."""
    enc_mask, dec_mask = (enc_ids != 1).astype("int32"), (dec_ids != 1).astype("int32")
    enc_ids, dec_ids = np.where(enc_mask == 1, enc_ids, pad_id), np.where(dec_mask == 1, dec_ids, pad_id)
    keras_inputs = {
        "encoder_token_ids": enc_ids,
        "encoder_padding_mask": enc_mask,
        "decoder_token_ids": dec_ids,
        "decoder_padding_mask": dec_mask,
    }
    torch_kwargs = {
        "input_ids": torch.tensor(enc_ids).long(),
        "attention_mask": torch.tensor(enc_mask).long(),
        "decoder_input_ids": torch.tensor(dec_ids).long(),
        "decoder_attention_mask": torch.tensor(dec_mask).long(),
    }
    return keras_inputs, torch_kwargs, enc_mask, dec_mask


def _converted(model: Any, folder: Path, transformers_class: Any) -> Any:
    """``model`` with random weights saved as a preset, converted, loaded by transformers with nothing left out."""
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    preset, out = folder / "preset", folder / "pt"
    model.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    assert json.loads((out / "config.json").read_text())["architectures"] == [transformers_class.__name__]
    loaded, info = transformers_class.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    return loaded.eval()


@pytest.mark.slow
def test_bart_to_transformers_same_states(transformers, torch, keras_hub, tmp_path):
    """Encoder and decoder blocks (two layer classes), position tables offset by two rows, padded batches."""
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    model = _converted(backbone, tmp_path, transformers.BartModel)
    keras_inputs, torch_kwargs, enc_mask, dec_mask = seq2seq_batch(torch, ENCODER_IDS, DECODER_IDS)
    out = backbone(keras_inputs)
    with torch.no_grad():
        got = model(**torch_kwargs)
    encoded = _numpy(out["encoder_sequence_output"])
    decoded = _numpy(out["decoder_sequence_output"])
    np.testing.assert_allclose(got.encoder_last_hidden_state.numpy()[enc_mask == 1], encoded[enc_mask == 1], atol=1e-5)
    np.testing.assert_allclose(got.last_hidden_state.numpy()[dec_mask == 1], decoded[dec_mask == 1], atol=1e-5)


@pytest.mark.slow
def test_whisper_to_transformers_same_states(transformers, torch, keras_hub, tmp_path):
    """Input convolutions, keys without a bias, a padded decoder batch over 16 frames of 8 mel bins."""
    backbone = keras_hub.models.WhisperBackbone(
        vocabulary_size=30,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        num_mels=8,
        max_encoder_sequence_length=16,
        max_decoder_sequence_length=8,
    )
    model = _converted(backbone, tmp_path, transformers.WhisperModel)
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
    np.testing.assert_allclose(got.encoder_last_hidden_state.numpy(), _numpy(out["encoder_sequence_output"]), atol=1e-5)
    decoded = _numpy(out["decoder_sequence_output"])
    np.testing.assert_allclose(got.last_hidden_state.numpy()[mask == 1], decoded[mask == 1], atol=1e-5)


@pytest.mark.slow
def test_vit_to_transformers_same_states(transformers, torch, keras_hub, tmp_path):
    """Patch convolution, class token, position table; KerasHub takes NHWC pixels, transformers NCHW."""
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    model = _converted(backbone, tmp_path, transformers.ViTModel)
    pixels = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    with torch.no_grad():
        got = model(pixel_values=torch.tensor(pixels).permute(0, 3, 1, 2)).last_hidden_state.numpy()
    np.testing.assert_allclose(got, _numpy(backbone(pixels)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("gated", "activation"), [(False, "relu"), (True, "relu"), (True, "gelu")])
def test_t5_to_transformers_same_states(transformers, torch, keras_hub, tmp_path, gated, activation):
    """Encoder and decoder blocks in one layer class (decoder numbered after the encoder), the relative attention
    table in each stack's first block only, a gated feed-forward or not, padded batches. A gated exact gelu is not
    transformers' "gated-gelu" (the tanh form): the two gelus would differ by about 1e-3."""
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=30,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        key_value_dim=4,
        dropout=0.0,
        activation=activation,
        use_gated_activation=gated,
    )
    model = _converted(backbone, tmp_path, transformers.T5Model)
    keras_inputs, torch_kwargs, enc_mask, dec_mask = seq2seq_batch(torch, ENCODER_IDS, DECODER_IDS, pad_id=0)  # T5's
    out = backbone(keras_inputs)
    with torch.no_grad():
        got = model(**torch_kwargs)
    encoded = _numpy(out["encoder_sequence_output"])
    decoded = _numpy(out["decoder_sequence_output"])
    np.testing.assert_allclose(got.encoder_last_hidden_state.numpy()[enc_mask == 1], encoded[enc_mask == 1], atol=1e-5)
    np.testing.assert_allclose(got.last_hidden_state.numpy()[dec_mask == 1], decoded[dec_mask == 1], atol=1e-5)
