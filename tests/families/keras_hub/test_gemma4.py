"""KerasHub Gemma 4 (text) presets <-> transformers ``Gemma4ForCausalLM``, both ways: wider heads and a proportional
partial rotary in the full layers, a window shorter than the batch, each layer's scalar, the final soft cap, keys as
values, shared layers, per-layer embeddings, the published multimodal model's language model; what the
two libraries compute otherwise refused by name."""

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

_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
_SIZES = {
    "vocab_size": 30,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "global_head_dim": 16,
    "sliding_window": 6,
    "layer_types": _TYPES,
    "final_logit_softcapping": 30.0,
    "hidden_size_per_layer_input": 0,
}


_POSITIONS = np.broadcast_to(np.arange(_IDS.shape[1], dtype="int32"), _IDS.shape)
_FEED = {"token_ids": _IDS, "padding_mask": _MASK, "position_ids": _POSITIONS}  # transformers counts from 0 too


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _gemma4(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    config = transformers.Gemma4TextConfig(**(_SIZES | extra))
    model = transformers.Gemma4ForCausalLM(config)
    with torch.no_grad():  # a buffer, left at one by ``_saved``: a misplaced one would not show
        for i, layer in enumerate(model.model.layers):
            layer.layer_scalar.fill_(0.5 + 0.25 * i)
    _saved(model, folder, torch)
    return model


@pytest.mark.slow
def test_gemma4_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    """A transformers Gemma 4 text model becomes a Gemma4CausalLM computing the same logits on a padded batch, and
    back bit for bit."""
    src = tmp_path / "hf"
    model = _gemma4(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())["config"]
    assert (config["global_head_dim"], config["global_rope_partial_rotary_factor"]) == (16, 0.25)
    task = _loaded(keras_hub.models.Gemma4CausalLM.from_preset, preset)
    got = _numpy(task(_FEED))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    assert _loaded(transformers.Gemma4ForCausalLM.from_pretrained, back).config.layer_types == _TYPES


@pytest.mark.slow
def test_gemma4_preset_to_transformers_same_logits_and_round_trip(transformers, torch, keras_hub, tmp_path):
    """A Gemma4Backbone preset -> Gemma4ForCausalLM: same logits; -> preset again: bit-exact, the same config."""
    backbone = keras_hub.models.Gemma4Backbone(
        vocabulary_size=30,
        image_size=None,
        num_layers=4,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=32,
        intermediate_dim=48,
        head_dim=8,
        global_head_dim=16,
        layer_types=_TYPES,
        sliding_window_size=6,
        final_logit_soft_cap=30.0,
        global_rope_partial_rotary_factor=0.25,
        global_rope_wavelength=1_000_000.0,
        local_rope_wavelength=10_000.0,
    )
    task = keras_hub.models.Gemma4CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in task.get_weights()])
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.Gemma4ForCausalLM.from_pretrained, tmp_path / "pt")
    got = _numpy(task(_FEED))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"num_kv_shared_layers": 4}, "num_kv_shared_layers"),
        ({"enable_moe_block": True, "num_experts": 2, "top_k_experts": 1, "moe_intermediate_size": 8}, "moe"),
        ({"tie_word_embeddings": False}, "tie_word_embeddings"),
    ],
)
def test_gemma4_unwritable_configs_exit_2(transformers, torch, extra, named, tmp_path):
    """What the preset writer does not convert is refused by name."""
    _gemma4(transformers, torch, tmp_path / "hf", **extra)
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert named in out


@pytest.mark.slow
def test_gemma4_keras_hub_importer_agrees_where_heads_are_even(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer on a transformers directory whose full layers keep the sliding layers' head size
    loads the same weights as bridge's preset."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src, global_head_dim=8)
    mine = keras_hub.models.Gemma4Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    theirs = keras_hub.models.Gemma4Backbone.from_preset(str(src))
    differing = {k for k, v in mine.get_config().items() if k != "name" and theirs.get_config().get(k) != v}
    # KerasHub's leaves global_head_dim unset (the same size), keeps transformers' unread per-layer vocabulary and
    # counts a pattern that layer_types overrides
    assert differing <= {"global_head_dim", "vocab_size_per_layer_input", "sliding_window_pattern"}
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.mark.slow
def test_gemma4_keras_hub_importer_misses_wider_full_heads(transformers, torch, keras_hub, tmp_path):
    """Where the full layers' heads are wider, KerasHub's importer reads ``global_head_dim``, which transformers 5's
    save_pretrained does not write (it writes ``per_layer_config``): it builds the full layers at the sliding head
    size and cannot load their kernels; bridge's preset reads ``per_layer_config`` and matches transformers' logits
    (test_gemma4_to_preset_same_logits)."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src)
    assert "global_head_dim" not in json.loads((src / "config.json").read_text())
    with pytest.raises(ValueError, match="reshape"):
        keras_hub.models.Gemma4Backbone.from_preset(str(src))
    mine = keras_hub.models.Gemma4Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    assert mine.get_config()["global_head_dim"] == 16


@pytest.mark.slow
def test_gemma4_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify PRESET TRANSFORMERS_DIR`` runs both forwards and passes."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src)
    preset = _to_preset(src, tmp_path / "preset")
    out = run_cli("verify", str(preset), str(src))
    assert "forward logits" in out and "verdict: PASS" in out


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"attention_logit_soft_cap": 20.0}, "attention_logit_soft_cap"),
        ({"num_kv_shared_layers": 2}, "num_kv_shared_layers"),  # an assistant's: every layer reads another model's
    ],
)
def test_gemma4_preset_unlike_transformers_exit_2(keras_hub, extra, named, tmp_path):
    """A Gemma4Backbone computing what this family does not convert (per-layer inputs; a soft cap transformers'
    text attention lacks) is refused by name."""
    backbone = keras_hub.models.Gemma4Backbone(
        vocabulary_size=30,
        image_size=None,
        num_layers=2,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        intermediate_dim=32,
        head_dim=8,
        layer_types=["sliding_attention", "full_attention"],
        **extra,
    )
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert named in out


_KEYS_AS_VALUES = {"attention_k_eq_v": True, "num_global_key_value_heads": 1}
_SHARED = {"num_kv_shared_layers": 2}  # the last sliding and full layers reuse layers 0's and 1's keys and values
_WIDE = _SHARED | {"use_double_wide_mlp": True}  # the shared layers' feed-forwards twice as wide
# 16 wide: at 4 a position whose gated per-layer input nearly vanishes has its float rounding scaled up by the
# norm after it (both libraries agreeing with float64 to 1e-5 elsewhere)
_PER_LAYER = {"hidden_size_per_layer_input": 16, "vocab_size_per_layer_input": 30}
# transformers config -> the Keras config it becomes (26B A4B and 31B: keys as values; E2B and E4B: shared layers
# and per-layer embeddings; E2B: double-wide)
_FEATURES = [
    (_KEYS_AS_VALUES, {"num_global_key_value_heads": 1}),
    (_SHARED, _SHARED),
    (_WIDE, _WIDE),
    (_KEYS_AS_VALUES | _WIDE, _WIDE | {"num_global_key_value_heads": 1}),
    (_PER_LAYER, _PER_LAYER),
    (_PER_LAYER | _WIDE, _PER_LAYER | _WIDE),
]


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "keras"), _FEATURES)
def test_gemma4_features_to_preset_same_logits(transformers, torch, keras_hub, extra, keras, tmp_path):
    """Full layers whose keys double as values over their own key heads, layers reusing an earlier layer's keys and
    values, double-wide feed-forwards there: the same logits on a padded batch, and back bit for bit."""
    src = tmp_path / "hf"
    model = _gemma4(transformers, torch, src, **extra)
    preset = _to_preset(src, tmp_path / "preset")
    config = json.loads((preset / "config.json").read_text())["config"]
    assert {k: config[k] for k in keras} == keras
    task = _loaded(keras_hub.models.Gemma4CausalLM.from_preset, preset)
    got = _numpy(task(_FEED))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")
    written = json.loads((back / "config.json").read_text())
    assert {k: written[k] for k in extra if k != "num_global_key_value_heads"} == {
        k: v for k, v in extra.items() if k != "num_global_key_value_heads"
    }


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "keras"), [*_FEATURES, ({}, {"num_global_key_value_heads": 2})])
def test_gemma4_features_preset_to_transformers(transformers, torch, keras_hub, extra, keras, tmp_path):
    """A Gemma4Backbone with ``num_global_key_value_heads`` (-> ``attention_k_eq_v``), ``num_kv_shared_layers`` or
    ``use_double_wide_mlp`` -> Gemma4ForCausalLM: the same logits; -> preset again: bit-exact, the same config."""
    backbone = keras_hub.models.Gemma4Backbone(
        vocabulary_size=30,
        image_size=None,
        num_layers=4,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=32,
        intermediate_dim=48,
        head_dim=8,
        global_head_dim=16,
        layer_types=_TYPES,
        sliding_window_size=6,
        global_rope_partial_rotary_factor=0.25,
        global_rope_wavelength=1_000_000.0,
        local_rope_wavelength=10_000.0,
        **keras,
    )
    task = keras_hub.models.Gemma4CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in task.get_weights()])
    path = tmp_path / "preset"
    task.save_to_preset(str(path))
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model = _loaded(transformers.Gemma4ForCausalLM.from_pretrained, tmp_path / "pt")
    assert model.config.attention_k_eq_v == ("num_global_key_value_heads" in keras)
    got = _numpy(task(_FEED))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"num_key_value_heads": 1}, "attention_k_eq_v is false"),  # fewer full key heads with values of their own
        ({"sliding_window": 4}, "per_layer_config"),
    ],
)
def test_gemma4_full_layer_overrides_unlike_keras_hub_exit_2(transformers, torch, override, named, tmp_path):
    """A full layer's ``per_layer_config`` that KerasHub Gemma 4 cannot build (its own key heads beside values of
    their own; another key) is refused by name."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src)
    config = json.loads((src / "config.json").read_text())
    config["per_layer_config"] = {k: v | override for k, v in config["per_layer_config"].items()}
    (src / "config.json").write_text(json.dumps(config))
    out = _refused_as_preset(src, tmp_path / "o")
    assert named in out


@pytest.mark.slow
@pytest.mark.parametrize("extra", [_WIDE, _PER_LAYER | _WIDE])
def test_gemma4_keras_hub_importer_agrees_on_shared_layers_and_per_layer_inputs(
    transformers, torch, keras_hub, extra, tmp_path
):
    """KerasHub's own importer loads the same weights as bridge's preset for shared, double-wide layers and per-layer
    embeddings (full layers at the sliding head size, which it reads)."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src, global_head_dim=8, **extra)
    mine = keras_hub.models.Gemma4Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    theirs = keras_hub.models.Gemma4Backbone.from_preset(str(src))
    differing = {k for k, v in mine.get_config().items() if k != "name" and theirs.get_config().get(k) != v}
    assert differing <= {"global_head_dim", "vocab_size_per_layer_input", "sliding_window_pattern"}
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.mark.slow
def test_gemma4_keras_hub_importer_misses_keys_as_values(transformers, torch, keras_hub, tmp_path):
    """KerasHub's importer reads ``num_global_key_value_heads``, which transformers 5's save_pretrained does not write
    (it writes ``per_layer_config``): it builds the full layers with values of their own at the sliding layers' key
    heads and cannot load them; bridge's preset keeps the full layers' one key head doubling as values and matches
    transformers' logits (test_gemma4_features_to_preset_same_logits)."""
    src = tmp_path / "hf"
    _gemma4(transformers, torch, src, global_head_dim=8, **_KEYS_AS_VALUES)
    assert "num_global_key_value_heads" not in json.loads((src / "config.json").read_text())
    with pytest.raises(ValueError, match="reshape"):
        keras_hub.models.Gemma4Backbone.from_preset(str(src))
    mine = keras_hub.models.Gemma4Backbone.from_preset(str(_to_preset(src, tmp_path / "preset")))
    assert mine.get_config()["num_global_key_value_heads"] == 1


def _published(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Any:
    """A tiny ``Gemma4ForConditionalGeneration``: the text model beside a vision tower (as the published ones)."""
    text = transformers.Gemma4TextConfig(**(_SIZES | extra))
    vision = transformers.Gemma4VisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2
    )
    config = transformers.Gemma4Config(text_config=text.to_dict(), vision_config=vision.to_dict(), audio_config=None)
    model = transformers.Gemma4ForConditionalGeneration(config)
    with torch.no_grad():
        for i, layer in enumerate(model.model.language_model.layers):
            layer.layer_scalar.fill_(0.5 + 0.25 * i)
    _saved(model, folder, torch)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, _KEYS_AS_VALUES, _PER_LAYER | _WIDE])
def test_gemma4_published_language_model_to_preset(transformers, torch, keras_hub, extra, tmp_path):
    """A multimodal ``gemma4`` model (the published checkpoints' type) becomes a Gemma4CausalLM of its language model
    computing the same text logits on a padded batch, the vision tower left out with a note; back as text-only
    ``gemma4_text`` holding the language model's tensors bit for bit."""
    from safetensors.numpy import load_file

    src = tmp_path / "hf"
    model = _published(transformers, torch, src, **extra)
    preset = tmp_path / "preset"
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    assert "vision tower" in out
    task = _loaded(keras_hub.models.Gemma4CausalLM.from_preset, preset)
    got = _numpy(task(_FEED))
    np.testing.assert_allclose(got[_MASK == 1], _logits(torch, model)[_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    assert json.loads((back / "config.json").read_text())["model_type"] == "gemma4_text"
    prefix = "model.language_model."
    language = {
        "model." + k.removeprefix(prefix): v
        for k, v in load_file(src / "model.safetensors").items()
        if k.startswith(prefix)
    }
    written = load_file(back / "model.safetensors")
    assert set(written) == set(language)
    for name, value in language.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)


def test_gemma4_published_experts_refused_by_name(transformers, torch, tmp_path):
    """A multimodal Gemma 4 whose language model has mixture-of-experts blocks (26B A4B) is refused by name."""
    _published(
        transformers,
        torch,
        tmp_path / "hf",
        enable_moe_block=True,
        num_experts=2,
        top_k_experts=1,
        moe_intermediate_size=8,
    )
    out = _refused_as_preset(tmp_path / "hf", tmp_path / "o")
    assert "enable_moe_block" in out


@pytest.mark.slow
def test_gemma4_published_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify TRANSFORMERS_DIR PRESET`` on a multimodal Gemma 4 runs both forwards (the model fed text as
    a language model) and passes."""
    src = tmp_path / "hf"
    _published(transformers, torch, src, **_PER_LAYER)
    out = run_cli("verify", str(src), str(_to_preset(src, tmp_path / "preset")))
    assert "forward logits" in out and "verdict: PASS" in out
