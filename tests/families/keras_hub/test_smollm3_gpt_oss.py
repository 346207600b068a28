"""KerasHub SmolLM3 presets <-> transformers SmolLM3, both ways: NoPE layers, the tied token table and each
layer's saved rotary frequencies computed as KerasHub computes them; what the backbone cannot express refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_llama3_smollm import _IDS, _MASK, _logits
from tests.families.keras_hub.test_preset_writer import (
    _loaded,
    _refused_as_preset,
    _same_tensors,
    _saved,
    _to_preset,
    _unnamed,
)
from tests.families.keras_hub.test_presets import _numpy

# Four layers, the third without rotary (transformers' ``no_rope_layers`` 0 there)
_SIZES = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
_NO_ROPE = [1, 1, 0, 1]


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _smollm3(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    config = transformers.SmolLM3Config(
        vocab_size=30,
        intermediate_size=64,
        no_rope_layers=_NO_ROPE,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **_SIZES,
        **extra,
    )
    model = transformers.SmolLM3ForCausalLM(config)
    _saved(model, folder, torch)
    return model


@pytest.mark.slow
def test_smollm3_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    """A transformers SmolLM3 becomes a SmolLM3CausalLM computing the same logits on a padded batch, and back bit
    for bit."""
    src = tmp_path / "hf"
    model = _smollm3(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())
    assert config["module"] == "keras_hub.src.models.smollm3.smollm3_backbone"
    assert config["config"]["rope_layer_enabled_list"] == [bool(x) for x in _NO_ROPE]
    task = _loaded(keras_hub.models.SmolLM3CausalLM.from_preset, preset)
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    assert json.loads((back / "config.json").read_text())["no_rope_layers"] == _NO_ROPE


@pytest.mark.slow
def test_smollm3_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A SmolLM3Backbone preset -> SmolLM3ForCausalLM: same logits; -> preset again: bit-exact (the rotary
    frequencies too), the same config."""
    backbone = keras_hub.models.SmolLM3Backbone(
        vocabulary_size=30,
        hidden_dim=32,
        intermediate_dim=64,
        num_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_bias=False,
        attention_dropout=0.0,
        rope_layer_enabled_list=[True, False, True],
        layer_types=["full_attention"] * 3,
        mlp_bias=False,
        layer_norm_epsilon=1e-6,
        max_position_embeddings=128,
        rope_theta=10000.0,
        partial_rotary_factor=1.0,
    )
    task = keras_hub.models.SmolLM3CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    trained = [w.trainable for w in task.weights]
    task.set_weights(
        [
            rng.normal(0, 0.3, w.shape).astype("float32") if t else w
            for w, t in zip(task.get_weights(), trained, strict=True)
        ]
    )
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.SmolLM3ForCausalLM.from_pretrained, tmp_path / "pt")
    assert model.config.no_rope_layers == [1, 0, 1]
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tie_word_embeddings": False}, "tie_word_embeddings"),
        ({"attention_bias": True}, "attention_bias"),
        ({"use_sliding_window": True, "sliding_window": 8, "layer_types": ["sliding_attention"] * 4}, "sliding"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "rope_type linear"),
    ],
)
def test_smollm3_unwritable_configs_exit_2(transformers, torch, extra, named, tmp_path):
    """What KerasHub's SmolLM3 does not compute is refused by name."""
    _smollm3(transformers, torch, tmp_path / "hf", **extra)
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert named in out


@pytest.mark.slow
def test_smollm3_keras_hub_importer_agrees(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer on the same transformers directory loads the same weights as bridge's preset."""
    src = tmp_path / "hf"
    _smollm3(transformers, torch, src)
    mine = keras_hub.models.SmolLM3Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    theirs = keras_hub.models.SmolLM3Backbone.from_preset(str(src))
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.mark.slow
def test_smollm3_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify PRESET TRANSFORMERS_DIR`` runs both forwards and passes."""
    src = tmp_path / "hf"
    _smollm3(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    out = run_cli("verify", str(preset), str(src))
    assert "forward logits" in out and "verdict: PASS" in out


# GPT-OSS: full and sliding layers alternating as KerasHub's backbone has them, YaRN with KerasHub's fixed
# parameters and a factor that changes the frequencies, a window shorter than the batch
_YARN = {"beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 4096, "truncate": False}
_GPT_OSS = {
    "vocab_size": 30,
    "hidden_size": 32,
    "intermediate_size": 16,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "sliding_window": 6,
    "layer_types": ["full_attention", "sliding_attention"] * 2,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, **_YARN},
    "max_position_embeddings": 128,
}


def _gpt_oss(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    config = transformers.GptOssConfig(**(_GPT_OSS | extra))
    config._attn_implementation = "eager"
    model = transformers.GptOssForCausalLM(config)
    _saved(model, folder, torch)
    return model


@pytest.mark.slow
def test_gpt_oss_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    """A transformers GPT-OSS becomes a GptOssCausalLM computing the same logits on a padded batch, and back bit for
    bit (the window one token shorter in KerasHub's count, which leaves out the query itself)."""
    src = tmp_path / "hf"
    model = _gpt_oss(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())["config"]
    assert (config["sliding_window"], config["rope_scaling_factor"]) == (5, 4.0)
    task = _loaded(keras_hub.models.GptOssCausalLM.from_preset, preset)
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    written = json.loads((back / "config.json").read_text())
    assert written["rope_parameters"] == _GPT_OSS["rope_parameters"]
    assert (written["sliding_window"], written["layer_types"]) == (6, _GPT_OSS["layer_types"])


@pytest.mark.slow
def test_gpt_oss_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A GptOssBackbone preset -> GptOssForCausalLM: same logits; -> preset again: bit-exact, the same config."""
    backbone = keras_hub.models.GptOssBackbone(
        vocabulary_size=30,
        num_layers=2,
        num_query_heads=4,
        hidden_dim=32,
        intermediate_dim=16,
        num_key_value_heads=2,
        num_experts=4,
        top_k=2,
        head_dim=8,
        sliding_window=7,
        rope_scaling_factor=2.0,
        rope_max_wavelength=10000.0,
    )
    task = keras_hub.models.GptOssCausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in task.get_weights()])
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.GptOssForCausalLM.from_pretrained, tmp_path / "pt")
    model.config._attn_implementation = "eager"
    got = _numpy(task({"token_ids": _IDS, "padding_mask": _MASK}))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"layer_types": ["sliding_attention", "full_attention"] * 2}, "layer_types"),
        (
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0, **_YARN, "truncate": True}},
            "truncate",
        ),
        (
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0, **_YARN, "beta_fast": 16.0}},
            "beta_fast",
        ),
        (
            {
                "rope_parameters": {
                    "rope_type": "yarn",
                    "rope_theta": 1e4,
                    "factor": 4.0,
                    **_YARN,
                    "attention_factor": 1.5,
                }
            },
            "attention_factor",
        ),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "rope_type linear"),
        ({"tie_word_embeddings": True}, "tie_word_embeddings"),
        ({"swiglu_limit": 5.0}, "swiglu_limit"),
    ],
)
def test_gpt_oss_unwritable_configs_exit_2(transformers, torch, extra, named, tmp_path):
    """What KerasHub's GPT-OSS does not compute is refused by name (transformers' default layer order, sliding
    first, among it)."""
    _gpt_oss(transformers, torch, tmp_path / "hf", **extra)
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert named in out


def test_gpt_oss_quantized_source_exits_2(transformers, torch, tmp_path):
    """An MXFP4 checkpoint (what real GPT-OSS checkpoints hold) is refused by name, with how to dequantize it."""
    _gpt_oss(transformers, torch, tmp_path / "hf")
    config = json.loads((tmp_path / "hf/config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4"}
    (tmp_path / "hf/config.json").write_text(json.dumps(config))
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert "quantization_config mxfp4" in out and "dequantize" in out.lower()


@pytest.mark.slow
def test_gpt_oss_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify PRESET TRANSFORMERS_DIR`` runs both forwards and passes."""
    src = tmp_path / "hf"
    _gpt_oss(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    out = run_cli("verify", str(preset), str(src))
    assert "forward logits" in out and "verdict: PASS" in out


@pytest.mark.slow
def test_gpt_oss_keras_hub_importer_reads_only_mxfp4(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer reads only MXFP4 expert blocks: the float checkpoint transformers saves (the one
    bridge converts above, logits matching) it cannot load at all."""
    src = tmp_path / "hf"
    _gpt_oss(transformers, torch, src)
    with pytest.raises(Exception, match="gate_up_proj_blocks"):
        keras_hub.models.GptOssBackbone.from_preset(str(src))
