"""Decoders whose transformers side fuses query, key and value into one projection, per head (GPT-NeoX, BLOOM,
Falcon): tiny models made by each library, converted both ways, forwards compared on a padded batch, round trips
bit-exact, what KerasHub cannot compute refused by name."""

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
from tests.families.keras_hub.test_presets import IDS, MASK, _numpy, _randomized

# KerasHub backbone -> (its causal LM, transformers' causal LM, config class, Keras sizes, transformers sizes)
FAMILIES: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any]]] = {
    "GPTNeoXBackbone": (  # half of each head rotated (rotary_percentage), the rest passed through
        "GPTNeoXCausalLM",
        "GPTNeoXForCausalLM",
        "GPTNeoXConfig",
        {"num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "max_sequence_length": 16}
        | {"rotary_percentage": 0.5, "layer_norm_epsilon": 1e-6, "rotary_max_wavelength": 500},
        {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16}
        | {"hidden_act": "gelu_new", "tie_word_embeddings": True, "layer_norm_eps": 1e-6}
        | {"rope_parameters": {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5}},
    ),
    "BloomBackbone": (  # ALiBi; query_key_value's rows per head, four heads interleaved
        "BloomCausalLM",
        "BloomForCausalLM",
        "BloomConfig",
        {"num_heads": 4, "hidden_dim": 16, "intermediate_dim": 64, "layer_norm_epsilon": 1e-6},
        {"hidden_size": 16, "n_head": 4, "layer_norm_epsilon": 1e-6, "tie_word_embeddings": True},
    ),
    "FalconBackbone": (  # ALiBi, sequential, multi-head with biases: KerasHub's one Falcon form
        "FalconCausalLM",
        "FalconForCausalLM",
        "FalconConfig",
        {"num_attention_heads": 4, "hidden_dim": 16, "intermediate_dim": 48},
        {"hidden_size": 16, "num_attention_heads": 4, "ffn_hidden_size": 48, "tie_word_embeddings": True}
        | {"alibi": True, "new_decoder_architecture": False, "multi_query": False, "parallel_attn": False}
        | {"bias": True, "activation": "gelu"},
    ),
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _preset(keras_hub: Any, backbone_class: str, folder: Path) -> tuple[Path, Any]:
    backbone_type = getattr(keras_hub.models, backbone_class)
    backbone = _randomized(backbone_type(vocabulary_size=30, num_layers=2, **FAMILIES[backbone_class][3]))
    path = folder / backbone_class
    backbone.save_to_preset(str(path))
    return path, backbone


def _transformers_model(transformers: Any, torch: Any, backbone_class: str, folder: Path) -> tuple[Path, Any]:
    _, _, class_name, config_name, _, sizes = ("", *FAMILIES[backbone_class])
    config = getattr(transformers, config_name)(vocab_size=30, num_hidden_layers=2, **sizes)
    model = getattr(transformers, class_name)(config)
    return _saved(model, folder / class_name, torch), model


def _logits(torch: Any, model: Any, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()


@pytest.mark.parametrize("backbone_class", sorted(FAMILIES))
@pytest.mark.slow
def test_preset_to_transformers_same_logits(transformers, torch, keras_hub, backbone_class, tmp_path):
    path, backbone = _preset(keras_hub, backbone_class, tmp_path)
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    target = FAMILIES[backbone_class][1]
    assert json.loads((out / "config.json").read_text())["architectures"] == [target]
    model, info = getattr(transformers, target).from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    ids = np.where(MASK == 1, IDS, 0)
    hidden = _numpy(backbone({"token_ids": ids, "padding_mask": MASK}))
    expected = _numpy(backbone.token_embedding(hidden, reverse=True))
    np.testing.assert_allclose(_logits(torch, model.eval(), ids)[MASK == 1], expected[MASK == 1], atol=1e-5)


@pytest.mark.parametrize("backbone_class", sorted(FAMILIES))
@pytest.mark.slow
def test_transformers_to_preset_same_logits(transformers, torch, keras_hub, backbone_class, tmp_path):
    src, model = _transformers_model(transformers, torch, backbone_class, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    task_class = FAMILIES[backbone_class][0]
    assert json.loads((preset / "task.json").read_text())["registered_name"] == f"keras_hub>{task_class}"
    task = _loaded(getattr(keras_hub.models, task_class).from_preset, preset)
    _loaded(keras_hub.models.Backbone.from_preset, preset)
    ids = np.where(MASK == 1, IDS, 0)
    got = _numpy(task({"token_ids": ids, "padding_mask": MASK}))
    np.testing.assert_allclose(got[MASK == 1], _logits(torch, model, ids)[MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


@pytest.mark.parametrize("backbone_class", sorted(FAMILIES))
def test_preset_round_trip_bit_exact(keras_hub, backbone_class, tmp_path):
    path, _ = _preset(keras_hub, backbone_class, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


UNWRITABLE: list[tuple[str, str, Any]] = [
    ("GPTNeoXBackbone", "use_parallel_residual", False),
    ("GPTNeoXBackbone", "attention_bias", False),
    ("GPTNeoXBackbone", "tie_word_embeddings", False),
    ("GPTNeoXBackbone", "hidden_act", "relu"),
    ("BloomBackbone", "apply_residual_connection_post_layernorm", True),
    ("BloomBackbone", "tie_word_embeddings", False),
    *(("FalconBackbone", k, v) for k, v in (("alibi", False), ("parallel_attn", True), ("multi_query", True))),
    *(("FalconBackbone", k, v) for k, v in (("new_decoder_architecture", True), ("bias", False))),
    ("FalconBackbone", "num_kv_heads", 2),
    ("FalconBackbone", "layer_norm_epsilon", 1e-6),
]


@pytest.mark.parametrize(("backbone_class", "key", "value"), UNWRITABLE)
def test_unwritable_config_exits_2(transformers, torch, backbone_class, key, value, tmp_path):
    src, _ = _transformers_model(transformers, torch, backbone_class, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


@pytest.mark.parametrize("backbone_class", sorted(FAMILIES))
@pytest.mark.slow
def test_verify_runs_both_forwards(keras_hub, backbone_class, tmp_path):
    """``bridge verify`` of a preset and its conversion runs KerasHub's forward and transformers' and passes."""
    path, _ = _preset(keras_hub, backbone_class, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    report = json.loads(run_cli("verify", str(path), str(tmp_path / "pt"), "--json"))
    assert report["ok"] and report["forward"]["status"] == "pass", report
    assert all(o["max_abs"] <= 1e-5 for o in report["outputs"])
