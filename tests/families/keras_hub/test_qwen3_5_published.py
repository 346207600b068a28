"""The published Qwen 3.5 form (transformers' multimodal ``qwen3_5``: the text model under
``model.language_model.``, a vision tower under ``model.visual.``) -> a Qwen3_5CausalLM preset of its language model,
the same weights as KerasHub's own importer and the same logits as transformers' model on text; and Qwen 3.5 MoE
presets <-> transformers ``qwen3_5_moe_text`` both ways (a bank of experts, saved one by one)."""

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
from tests.families.keras_hub.test_qwen3_5 import _TEXT, _TYPES, _same_logits

_VISION = {
    "depth": 1,
    "hidden_size": 16,
    "num_heads": 2,
    "intermediate_size": 24,
    "out_hidden_size": 32,
    "patch_size": 4,
    "num_position_embeddings": 16,
}
_MOE = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 12, "shared_expert_intermediate_size": 20}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _scaled(torch: Any, model: Any, norm: Any) -> None:
    """Weights scaled as :func:`tests.families.keras_hub.test_qwen3_5._qwen3_5` scales them (logits of about 1,
    decays the delta rule keeps within float32 error)."""
    generator = torch.Generator().manual_seed(0)  # fixed decays: the same float32 error on every run
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.mul_(0.4)
            if name.endswith("A_log"):
                p.copy_(torch.empty_like(p).uniform_(0.05, 0.5, generator=generator).log())
        norm.weight.mul_(0.1).sub_(0.8)


def _published(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    config = transformers.Qwen3_5Config(text_config=_TEXT | extra, vision_config=_VISION)
    model = transformers.Qwen3_5ForConditionalGeneration(config)
    _saved(model, folder, torch)
    _scaled(torch, model, model.model.language_model.norm)
    model.save_pretrained(folder)
    return model


def _moe(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    model = transformers.Qwen3_5MoeForCausalLM(transformers.Qwen3_5MoeTextConfig(**(_TEXT | _MOE | extra)))
    _saved(model, folder, torch)
    _scaled(torch, model, model.model.norm)
    model.save_pretrained(folder)
    return model


@pytest.mark.slow
def test_published_qwen3_5_to_preset_same_logits_and_importer(transformers, torch, keras_hub, tmp_path):
    """A transformers Qwen3_5ForConditionalGeneration directory becomes a Qwen3_5CausalLM of its language model (the
    vision tower left out, said so) computing transformers' logits on a padded text batch, with KerasHub's importer's
    weights bit for bit; written back as text-only ``qwen3_5_text`` holding the language model's very tensors."""
    from safetensors.numpy import load_file

    src = tmp_path / "hf"
    model = _published(transformers, torch, src)
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "p"))
    assert "vision tower (model.visual.*) is not converted" in out
    preset = tmp_path / "p"
    config = json.loads((preset / "config.json").read_text())["config"]
    assert config["layer_types"] == _TYPES and config["vision_encoder"] is None
    task = _loaded(keras_hub.models.Qwen3_5CausalLM.from_preset, preset)
    _same_logits(task, torch, model)
    theirs = keras_hub.models.Qwen3_5Backbone.from_preset(str(src))  # KerasHub's importer (builds the tower too)
    by_path = {w.path: _numpy(w) for w in theirs.weights}
    for w in task.backbone.weights:
        np.testing.assert_array_equal(_numpy(w), by_path[w.path])
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    assert json.loads((back / "config.json").read_text())["model_type"] == "qwen3_5_text"
    written, published = load_file(back / "model.safetensors"), load_file(src / "model.safetensors")
    for name, value in written.items():
        np.testing.assert_array_equal(value, published[name.replace("model.", "model.language_model.", 1)])
    text = _loaded(transformers.Qwen3_5ForCausalLM.from_pretrained, back)
    _same_logits(task, torch, text)


def test_published_qwen3_5_unwritable_config_exits_2(transformers, torch, tmp_path):
    """The nested text settings are checked as text-only Qwen 3.5's are."""
    _published(transformers, torch, tmp_path / "hf", hidden_act="gelu")
    assert "hidden_act" in _refused_as_preset(tmp_path / "hf", tmp_path / "o")


@pytest.mark.slow
def test_qwen3_5_moe_to_preset_same_logits_and_back(transformers, torch, keras_hub, tmp_path):
    """A transformers Qwen 3.5 MoE becomes a Qwen3_5MoeCausalLM computing the same logits on a padded batch, and
    back bit for bit (the experts saved one by one, as transformers saves them)."""
    src = tmp_path / "hf"
    model = _moe(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.Qwen3_5MoeCausalLM.from_preset, preset)
    _same_logits(task, torch, model)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    assert json.loads((back / "config.json").read_text())["model_type"] == "qwen3_5_moe_text"


@pytest.mark.slow
def test_qwen3_5_moe_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A Qwen3_5MoeBackbone preset -> Qwen3_5MoeForCausalLM (nothing missing or unexpected): same logits; -> preset
    again: bit-exact, the same config but for the sliding window."""
    backbone = keras_hub.models.Qwen3_5MoeBackbone(
        vocabulary_size=40,
        num_layers=4,
        num_query_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_dim=32,
        moe_intermediate_dim=12,
        shared_expert_intermediate_size=20,
        num_experts=4,
        top_k=2,
        layer_types=["full_attention", "linear_attention", "linear_attention", "full_attention"],
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        sliding_window_size=None,
    )
    task = keras_hub.models.Qwen3_5MoeCausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    for w in task.weights:
        value = rng.normal(0, 0.2 if len(w.shape) > 1 else 0.3, w.shape)
        if w.path.endswith("A_log"):
            value = np.log(rng.uniform(0.05, 0.5, w.shape))
        if w.path.startswith("sequence_output_layernorm"):
            value = value * 0.1 - 0.8
        w.assign(value.astype("float32"))
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.Qwen3_5MoeForCausalLM.from_pretrained, tmp_path / "pt")
    _same_logits(task, torch, model)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("extra", "named"),
    [({"hidden_act": "gelu"}, "hidden_act"), ({"linear_num_value_heads": 3}, "linear_num_value_heads 3")],
)
def test_qwen3_5_moe_unwritable_configs_exit_2(transformers, torch, extra, named, tmp_path):
    """What KerasHub's Qwen 3.5 MoE does not compute is refused by name."""
    _moe(transformers, torch, tmp_path / "hf", **extra)
    assert named in _refused_as_preset(tmp_path / "hf", tmp_path / "o")


@pytest.mark.slow
@pytest.mark.parametrize("make", [_published, _moe], ids=["published", "moe"])
def test_qwen3_5_published_and_moe_verify_run_both_forwards(transformers, torch, keras_hub, make, tmp_path):
    """``bridge verify TRANSFORMERS_DIR PRESET`` runs both forwards and passes: the multimodal model fed text as a
    language model (not as a dual-tower one), the MoE with its routing."""
    src = tmp_path / "hf"
    make(transformers, torch, src)
    out = run_cli("verify", str(src), str(_to_preset(src, tmp_path / "preset")))
    assert "forward logits" in out and "verdict: PASS" in out
