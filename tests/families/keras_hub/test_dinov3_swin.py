"""KerasHub DINOv3 and Swin <-> transformers 5 ``DINOv3ViTModel`` and ``SwinModel``: tiny models made by each
library's own code with random weights, converted by the CLI, loaded by the other library with nothing missing or
left over, last hidden states compared in fp32 on NHWC pixels (fed to transformers NCHW), round trips bit-exact,
configs the other side cannot express refused with exit 2, KerasHub's own importers compared with bridge's preset."""

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
from tests.families.keras_hub.test_seq2seq_vision import _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify
from tests.families.keras_hub.test_vision_families import _nchw, _pixels

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run

_SIZES = {"patch_size": 4, "num_layers": 2, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32}
# a head of 8: two rotary frequencies per axis
# what changes the math: registers (rotary positions skip them), the gated MLP and its activation, missing biases,
# the layer norms' epsilon, the rotary base; the second has neither registers nor a mask token
_DINOV3 = {
    "gated": {
        "num_register_tokens": 2,
        "use_gated_mlp": True,
        "hidden_activation": "silu",
        "use_key_bias": False,
        "use_mlp_bias": False,
        "layer_norm_eps": 1e-6,
        "rope_theta": 50.0,
    },
    "plain": {"num_register_tokens": 0, "use_mask_token": False, "use_proj_bias": False},
}
_HF = {
    "gated": {"num_register_tokens": 3, "use_gated_mlp": True, "hidden_act": "silu", "key_bias": False},
    "plain": {"num_register_tokens": 0, "layer_norm_eps": 1e-6, "value_bias": False, "rope_theta": 10.0},
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _keras_preset(keras_hub: Any, variant: str, folder: Path) -> Path:
    model = keras_hub.models.DINOV3Backbone(image_shape=(8, 8, 3), **_SIZES, **_DINOV3[variant])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    model.save_to_preset(str(folder / variant))
    return folder / variant


def _transformers_dir(transformers: Any, torch: Any, variant: str, folder: Path) -> Path:
    config = transformers.DINOv3ViTConfig(
        image_size=8,
        patch_size=4,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        **_HF[variant],
    )
    return _saved(transformers.DINOv3ViTModel(config), folder / f"hf_{variant}", torch)


def _states(torch: Any, model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _pixels())).last_hidden_state.numpy()


@pytest.mark.parametrize("variant", sorted(_DINOV3))
def test_dinov3_to_transformers_same_states(transformers, torch, keras_hub, tmp_path, variant):
    """Rotary positions over the patches after the class and register tokens; the mask token and register table
    transformers always holds written as its own starting zeros where the preset has none."""
    preset = _keras_preset(keras_hub, variant, tmp_path)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.DINOv3ViTModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    np.testing.assert_allclose(_states(torch, model.eval()), _numpy(backbone(_pixels())), atol=1e-5)


@pytest.mark.parametrize("variant", sorted(_HF))
def test_transformers_to_preset_same_states_and_back(transformers, torch, keras_hub, tmp_path, variant):
    """transformers' own model -> a preset KerasHub loads without a warning: the same last hidden states, the same
    variables as KerasHub's own importer reads from that directory; back to transformers bit for bit."""
    src = _transformers_dir(transformers, torch, variant, tmp_path)
    model = transformers.DINOv3ViTModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    np.testing.assert_allclose(_numpy(backbone(_pixels())), _states(torch, model), atol=1e-5)
    imported = keras_hub.models.DINOV3Backbone.from_preset(str(src))  # KerasHub's convert_dinov3: agrees
    assert [w.shape for w in imported.weights] == [w.shape for w in backbone.weights]
    for mine, theirs in zip(backbone.weights, imported.weights, strict=True):
        assert np.array_equal(_numpy(mine), _numpy(theirs)), mine.path
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.DINOv3ViTModel.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


@pytest.mark.parametrize("variant", ["gated"])
def test_preset_round_trip_bit_exact(keras_hub, tmp_path, variant):
    """A save_to_preset preset (registers, mask token) -> transformers -> preset: every variable and the config."""
    path = _keras_preset(keras_hub, variant, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden_act", "gelu_new"), ("hidden_act", "gelu_pytorch_tanh"), ("patch_size", [4, 2])],
)
def test_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _transformers_dir(transformers, torch, "plain", tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


def test_unwritable_dinov3_preset_exits_2(keras_hub, tmp_path):
    """An activation transformers' DINOv3 has no name for (Keras' softplus)."""
    keras_hub.models.DINOV3Backbone(image_shape=(8, 8, 3), hidden_activation="softplus", **_SIZES).save_to_preset(
        str(tmp_path / "preset")
    )
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert "hidden_activation" in out


def test_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """``bridge verify`` between a written preset and its source, both ways, runs and passes the forward."""
    preset = _keras_preset(keras_hub, "gated", tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "DINOV3Backbone", {"hidden_states"})
    src = _transformers_dir(transformers, torch, "gated", tmp_path)
    _passes_with_forward(_verify(src, _to_preset(src, tmp_path / "written")), "DINOV3Backbone", {"hidden_states"})


# Swin: 16x16 images in 2x2 patches, windows of 4: stage 0 (8x8) shifts its second block's windows, stage 1 (4x4)
# has one window (no shift), a patch merging between them
_SWIN = {"image_size": 16, "patch_size": 2, "embed_dim": 8, "depths": [2, 2], "num_heads": [2, 4], "window_size": 4}


def _swin_pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")


def _swin_preset(keras_hub: Any, folder: Path, qkv_bias: bool = True) -> Path:
    sizes = {k: v for k, v in _SWIN.items() if k != "image_size"}
    model = keras_hub.models.SwinTransformerBackbone(
        image_shape=(16, 16, 3), mlp_ratio=2.0, drop_path=0.0, qkv_bias=qkv_bias, **sizes
    )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    model.save_to_preset(str(folder / "swin"))
    return folder / "swin"


def _swin_dir(transformers: Any, torch: Any, folder: Path, **extra: Any) -> Path:
    config = transformers.SwinConfig(mlp_ratio=2.0, **_SWIN, **extra)
    return _saved(transformers.SwinModel(config), folder / "hf_swin", torch)


def _swin_states(torch: Any, model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _swin_pixels())).last_hidden_state.numpy()


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_swin_to_transformers_same_states(transformers, torch, keras_hub, tmp_path, qkv_bias):
    """The fused query-key-value kernel split in three, relative position tables, shifted windows, patch merging;
    the relative position index neither side saves computed alike."""
    preset = _swin_preset(keras_hub, tmp_path, qkv_bias)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.SwinModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    np.testing.assert_allclose(_swin_states(torch, model.eval()), _numpy(backbone(_swin_pixels())), atol=1e-5)


def test_swin_transformers_to_preset_same_states_and_back(transformers, torch, keras_hub, tmp_path):
    """transformers' SwinModel -> a preset KerasHub loads without a warning: the same states, the same variables
    as KerasHub's own importer (convert_swin_transformer) reads; back to transformers bit for bit."""
    src = _swin_dir(transformers, torch, tmp_path)
    model = transformers.SwinModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    np.testing.assert_allclose(_numpy(backbone(_swin_pixels())), _swin_states(torch, model), atol=1e-5)
    imported = keras_hub.models.SwinTransformerBackbone.from_preset(str(src))
    for mine, theirs in zip(backbone.weights, imported.weights, strict=True):
        assert np.array_equal(_numpy(mine), _numpy(theirs)), mine.path
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.SwinModel.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_swin_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _swin_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("key", "value"),
    [("use_absolute_embeddings", True), ("hidden_act", "relu"), ("layer_norm_eps", 1e-6), ("patch_size", [2, 4])],
)
def test_swin_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _swin_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


def test_swin_unwritable_preset_exits_2(keras_hub, tmp_path):
    """A backbone without the patch embeddings' norm transformers' Swin always applies."""
    sizes = {k: v for k, v in _SWIN.items() if k != "image_size"}
    keras_hub.models.SwinTransformerBackbone(image_shape=(16, 16, 3), patch_norm=False, **sizes).save_to_preset(
        str(tmp_path / "preset")
    )
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert "patch_norm" in out


def test_swin_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    preset = _swin_preset(keras_hub, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "SwinTransformerBackbone", {"hidden_states"})
    src = _swin_dir(transformers, torch, tmp_path)
    written = _to_preset(src, tmp_path / "written")
    _passes_with_forward(_verify(src, written), "SwinTransformerBackbone", {"hidden_states"})
