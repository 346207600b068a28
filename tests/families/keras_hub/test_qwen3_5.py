"""KerasHub Qwen 3.5 (text) presets <-> transformers ``qwen3_5_text``, both ways: full-attention and gated
delta-net layers mixed, each layer with only its type's variables; logits on a padded batch longer than one
delta-rule chunk (64 tokens); what the backbone cannot express refused by name."""

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

_TYPES = ["linear_attention", "full_attention", "linear_attention", "linear_attention"]
_TEXT = {
    "vocab_size": 40,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 8,
    "layer_types": _TYPES,
    "max_position_embeddings": 256,
}
_LENGTH = 70  # past one 64-token chunk of the delta rule
_IDS = np.random.default_rng(1).integers(1, 40, (3, _LENGTH)).astype("int32")
_MASK = np.ones_like(_IDS)
_MASK[0, 50:] = 0  # right padding
_MASK[1, :9] = 0  # left padding: both libraries zero the padded states, so the real tokens' values agree too
_IDS = np.where(_MASK == 1, _IDS, 0)


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _qwen3_5(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    config = transformers.Qwen3_5TextConfig(**(_TEXT | extra))
    model = transformers.Qwen3_5ForCausalLM(config)
    _saved(model, folder, torch)
    generator = torch.Generator().manual_seed(0)  # fixed decays: the same float32 error on every run
    with torch.no_grad():  # smaller matrices and decays: the delta rule's float32 error, within either library
        # (transformers' chunked vs its recurrent form), reaches 3e-5 on logits of 12 with every weight N(0, 0.5),
        # like the error of full attention on such logits
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.mul_(0.4)
            if name.endswith("A_log"):
                p.copy_(torch.empty_like(p).uniform_(0.05, 0.5, generator=generator).log())
        model.model.norm.weight.mul_(0.1).sub_(0.8)  # a scale about 0.2: logits of about 1
    model.save_pretrained(folder)
    return model


def _logits(torch: Any, model: Any) -> np.ndarray:
    with torch.no_grad():
        ids, mask = torch.tensor(_IDS).long(), torch.tensor(_MASK).long()
        return np.asarray(model(input_ids=ids, attention_mask=mask).logits.numpy())


def _same_logits(task: Any, torch: Any, model: Any) -> None:
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("tied", [False, True])
def test_qwen3_5_to_preset_same_logits(transformers, torch, keras_hub, tmp_path, tied):
    """A transformers Qwen 3.5 text model becomes a Qwen3_5CausalLM computing the same logits on a padded batch
    (left and right), and back bit for bit with the same layer types."""
    src = tmp_path / "hf"
    model = _qwen3_5(transformers, torch, src, tie_word_embeddings=tied)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())
    assert config["module"] == "keras_hub.src.models.qwen3_5.qwen3_5_backbone"
    assert config["config"]["layer_types"] == _TYPES and config["config"]["sliding_window_size"] is None
    task = _loaded(keras_hub.models.Qwen3_5CausalLM.from_preset, preset)
    _same_logits(task, torch, model)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    written = json.loads((back / "config.json").read_text())
    assert (written["model_type"], written["layer_types"]) == ("qwen3_5_text", _TYPES)


@pytest.mark.slow
def test_qwen3_5_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A Qwen3_5Backbone preset -> Qwen3_5ForCausalLM (nothing missing or unexpected): same logits; -> preset
    again: bit-exact, the same config but for the sliding window (none: transformers attends over everything)."""
    backbone = keras_hub.models.Qwen3_5Backbone(
        vocabulary_size=40,
        num_layers=4,
        num_query_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_dim=32,
        intermediate_dim=48,
        layer_types=["full_attention", "linear_attention", "linear_attention", "full_attention"],
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        sliding_window_size=None,
    )
    task = keras_hub.models.Qwen3_5CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    for w in task.weights:  # scaled as :func:`_qwen3_5` scales transformers' weights
        value = rng.normal(0, 0.2 if len(w.shape) > 1 else 0.3, w.shape)
        if w.path.endswith("A_log"):
            value = np.log(rng.uniform(0.05, 0.5, w.shape))
        if w.path.startswith("sequence_output_layernorm"):
            value = value * 0.1 - 0.8
        w.assign(value.astype("float32"))
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.Qwen3_5ForCausalLM.from_pretrained, tmp_path / "pt")
    _same_logits(task, torch, model)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"attention_bias": True}, "attention_bias"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "rope_type linear"),
        ({"linear_num_value_heads": 3}, "linear_num_value_heads 3"),
    ],
)
def test_qwen3_5_unwritable_configs_exit_2(transformers, torch, extra, named, tmp_path):
    """What KerasHub's Qwen 3.5 does not compute is refused by name."""
    _qwen3_5(transformers, torch, tmp_path / "hf", **extra)
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert named in out


@pytest.mark.slow
def test_qwen3_5_keras_hub_importer_agrees(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer loads the same weights as bridge's preset.  It knows only the multimodal model_type
    ``qwen3_5`` (a text-only ``qwen3_5_text`` directory is refused), so it reads the same directory with that
    model_type and the names transformers' multimodal Qwen 3.5 saves (``model.language_model.*``, which
    ``Qwen3_5ForCausalLM`` reads as its own), its text keys at the top level as its importer accepts them."""
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "hf"
    _qwen3_5(transformers, torch, src)
    with pytest.raises(ValueError, match="qwen3_5_text"):
        keras_hub.models.Qwen3_5Backbone.from_preset(str(src))
    mine = keras_hub.models.Qwen3_5Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(config | {"model_type": "qwen3_5"}))
    tensors = load_file(src / "model.safetensors")
    renamed = {n.replace("model.", "model.language_model.", 1): v for n, v in tensors.items()}
    save_file(renamed, src / "model.safetensors", metadata={"format": "pt"})
    theirs = keras_hub.models.Qwen3_5Backbone.from_preset(str(src))
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.mark.slow
def test_qwen3_5_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify PRESET TRANSFORMERS_DIR`` runs both forwards and passes."""
    src = tmp_path / "hf"
    _qwen3_5(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    out = run_cli("verify", str(preset), str(src))
    assert "forward logits" in out and "verdict: PASS" in out
