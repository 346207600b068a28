"""KerasHub Llama 3 presets <-> transformers Llama, both ways: Llama 3.1's ``llama3`` rotary smoothing computed
alike, the backbone class chosen on the way to a preset, what differs refused by name."""

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
from tests.families.keras_hub.test_presets import _numpy

# Head size 8: four frequencies, wavelengths ~6, ~63, ~628 and ~6283 positions; against a pretraining length of 64
# (high / low wavelength bounds 16 and 64) one is kept, one smoothed and two divided by the factor.
_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
_KERAS_ROPE = {
    "rope_max_wavelength": 10000.0,
    "rope_frequency_adjustment_factor": 8.0,
    "rope_low_freq_factor": 1.0,
    "rope_high_freq_factor": 4.0,
    "rope_pretraining_sequence_length": 64,
}
# A padded batch long enough that the scaled frequencies turn by a good part of a circle.
_LENGTH = 48
_IDS = np.random.default_rng(1).integers(1, 30, (2, _LENGTH)).astype("int32")
_MASK = np.ones_like(_IDS)
_MASK[0, 30:] = 0
_IDS = np.where(_MASK == 1, _IDS, 0)


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _llama(transformers: Any, torch: Any, folder: Path, rope: dict[str, Any] | None = None, tied: bool = False) -> Any:
    parameters = {"rope_type": "llama3", "rope_theta": 10000.0, **_ROPE} if rope is None else rope
    config = transformers.LlamaConfig(
        vocab_size=30, intermediate_size=64, rope_parameters=parameters, tie_word_embeddings=tied, **_SIZES
    )
    model = transformers.LlamaForCausalLM(config)
    _saved(model, folder, torch)
    return model


def _logits(torch: Any, model: Any) -> np.ndarray:
    with torch.no_grad():
        ids, mask = torch.tensor(_IDS).long(), torch.tensor(_MASK).long()
        return np.asarray(model(input_ids=ids, attention_mask=mask).logits.numpy())


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.slow
def test_llama3_to_preset_same_logits(transformers, torch, keras_hub, tied, tmp_path):
    """A Llama with Llama 3.1's rotary smoothing becomes a Llama3CausalLM computing the same logits, and back
    bit for bit."""
    src = tmp_path / "hf"
    model = _llama(transformers, torch, src, tied=tied)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())
    assert config["registered_name"] == "keras_hub>Llama3Backbone"
    assert config["module"] == "keras_hub.src.models.llama3.llama3_backbone"
    assert {k: config["config"][k] for k in _KERAS_ROPE} == _KERAS_ROPE
    task = _loaded(keras_hub.models.Llama3CausalLM.from_preset, preset)
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    rope = json.loads((back / "config.json").read_text())["rope_parameters"]
    assert rope == {"rope_type": "llama3", "rope_theta": 10000.0, **_ROPE}


def test_scaling_matters_at_this_length(transformers, torch, tmp_path):
    """The proof above has teeth: the same weights unscaled give other logits."""
    scaled = _llama(transformers, torch, tmp_path / "a")
    plain = _llama(transformers, torch, tmp_path / "b", rope={"rope_type": "default", "rope_theta": 10000.0})
    assert np.abs(_logits(torch, scaled) - _logits(torch, plain))[_MASK == 1].max() > 1e-2


@pytest.mark.slow
def test_llama3_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A Llama3Backbone preset with the smoothing -> LlamaForCausalLM: same logits; -> preset again: bit-exact, the
    same config."""
    sizes = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}
    backbone = keras_hub.models.Llama3Backbone(vocabulary_size=30, num_layers=2, **sizes, **_KERAS_ROPE)
    task = keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)  # logits near one: 1e-5 is then well above float32's rounding of 32-wide sums
    task.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in task.get_weights()])
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.LlamaForCausalLM.from_pretrained, tmp_path / "pt")
    assert model.config.rope_parameters["rope_type"] == "llama3"
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


def test_backbone_class_chosen_by_tokenizer_and_rope(transformers, torch, tmp_path):
    """Llama 3 where the rotary is Llama 3.1's or the vocabulary byte-level BPE (tokenizer.json without
    tokenizer.model); Llama (1/2) otherwise."""
    plain = {"rope_type": "default", "rope_theta": 10000.0}
    _llama(transformers, torch, tmp_path / "plain", rope=plain)

    def written(folder: Path) -> str:
        out = _to_preset(folder, tmp_path / f"out_{len(list(tmp_path.iterdir()))}")
        return str(json.loads((out / "config.json").read_text())["registered_name"])

    assert written(tmp_path / "plain") == "keras_hub>LlamaBackbone"
    (tmp_path / "plain" / "tokenizer.json").write_text("{}")
    assert written(tmp_path / "plain") == "keras_hub>Llama3Backbone"
    (tmp_path / "plain" / "tokenizer.model").write_bytes(b"")
    (tmp_path / "plain").rename(tmp_path / "spm")
    assert written(tmp_path / "spm") == "keras_hub>LlamaBackbone"
    _llama(transformers, torch, tmp_path / "scaled")
    assert written(tmp_path / "scaled") == "keras_hub>Llama3Backbone"


@pytest.mark.parametrize("kind", ["yarn", "linear", "dynamic"])
def test_other_rope_kinds_exit_2(transformers, torch, kind, tmp_path):
    """The scaled kinds KerasHub's Llama does not compute are refused by name."""
    _llama(transformers, torch, tmp_path / "hf")
    config = json.loads((tmp_path / "hf/config.json").read_text())
    config["rope_parameters"] = {"rope_type": kind, "rope_theta": 10000.0, "factor": 2.0}
    (tmp_path / "hf/config.json").write_text(json.dumps(config))
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert f"rope_type {kind}" in out


def test_position_scaling_preset_exits_2(keras_hub, tmp_path):
    """KerasHub's rope_position_scaling_factor (positions divided) has no transformers Llama counterpart here."""
    sizes = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=30, num_layers=1, rope_position_scaling_factor=2.0, **sizes
    )
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert "rope_position_scaling_factor" in out


@pytest.mark.slow
def test_keras_hub_importer_drops_transformers5_scaling(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer on the same transformers directory: the same weights, but it reads the smoothing
    from ``rope_scaling``, which transformers 5 no longer writes (``rope_parameters``): its model computes
    unscaled frequencies, so its logits differ from transformers' where bridge's match."""
    src = tmp_path / "hf"
    model = _llama(transformers, torch, src)
    ours = _to_preset(src, tmp_path / "preset")
    theirs = keras_hub.models.Llama3Backbone.from_preset(str(src))
    assert theirs.rope_low_freq_factor is None  # the smoothing lost
    mine = keras_hub.models.Llama3Backbone.from_preset(str(ours))
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert a.path.split("/")[-1] == b.path.split("/")[-1]
        np.testing.assert_array_equal(_numpy(a), _numpy(b))
    expected = _logits(torch, model)
    inputs = {"token_ids": _IDS, "padding_mask": _MASK}
    task = keras_hub.models.Llama3CausalLM(backbone=theirs, preprocessor=None)
    assert np.abs(_numpy(task(inputs)) - expected)[_MASK == 1].max() > 1e-3
