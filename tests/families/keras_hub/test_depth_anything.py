"""KerasHub ``DepthAnythingBackbone`` + ``DepthAnythingDepthEstimator`` <-> transformers 5
``DepthAnythingForDepthEstimation``: a DINOv2 encoder (families/dinov2.py's table under ``backbone.``), the DPT neck
(reassemble factors 4, 2, 1, 0.5: transposed, none and strided resizes) and the depth head.  Tiny models made by each
library's own code with random weights, converted by the CLI, loaded by the other library with nothing missing or
left over, predicted depth compared in fp32 at the trained image size (both libraries output the image's size:
KerasHub ``[B, H, W, 1]``, transformers ``[B, H, W]``), round trips bit-exact, unwritable configs exit 2."""

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
    _to_preset,
    _unnamed,
)
from tests.families.keras_hub.test_seq2seq_vision import _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify
from tests.families.keras_hub.test_vision_families import _nchw, _same_but_interpolated

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run

_SIZE, _PATCH = 16, 2  # 8x8 patches: each reassemble factor gives a whole feature map
_NECK = {"reassemble_factors": [4, 2, 1, 0.5], "neck_hidden_dims": [4, 8, 8, 16], "fusion_hidden_dim": 8}
_FEATURES = ["stage1", "stage2", "stage3", "stage4"]
# random weights' scale: the neck's unnormed residual convolutions grow larger ones' depths to hundreds, where
# float32 rounding alone passes 1e-5
_SCALE = 0.1


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, _SIZE, _SIZE, 3)).astype("float32")


def _preset(keras_hub: Any, folder: Path, kind: str = "relative", apply_layernorm: bool = True) -> Path:
    encoder = keras_hub.models.DINOV2Backbone(
        patch_size=_PATCH,
        num_layers=4,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(_SIZE, _SIZE, 3),
        position_embedding_shape=(_SIZE, _SIZE, 3),  # as the DINOv2 writer spells it
        apply_layernorm=apply_layernorm,
    )
    backbone = keras_hub.models.DepthAnythingBackbone(
        image_encoder=encoder, **_NECK, head_hidden_dim=4, head_in_index=-1, feature_keys=_FEATURES
    )
    task = keras_hub.models.DepthAnythingDepthEstimator(
        backbone=backbone,
        depth_estimation_type=kind,
        max_depth=20.0 if kind == "metric" else None,
        preprocessor=None,
    )
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, _SCALE, w.shape).astype("float32") for w in task.get_weights()])
    # the table the forward reads, as KerasHub rebuilds it from the trained one on loading
    encoder.embeddings.interpolated_position_embeddings.assign(encoder.embeddings.position_embeddings)
    task.save_to_preset(str(folder / "depth"))
    return folder / "depth"


def _hf_dir(transformers: Any, torch: Any, folder: Path, **settings: Any) -> Path:
    backbone = transformers.Dinov2Config(
        image_size=_SIZE,
        patch_size=_PATCH,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_ratio=4,
        layer_norm_eps=1e-6,
        out_features=_FEATURES,
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=_PATCH,
        reassemble_hidden_size=16,
        reassemble_factors=_NECK["reassemble_factors"],
        neck_hidden_sizes=_NECK["neck_hidden_dims"],
        fusion_hidden_size=8,
        head_hidden_size=4,
        **settings,
    )
    model = transformers.DepthAnythingForDepthEstimation(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * _SCALE)
    model.eval().save_pretrained(folder / "hf_depth")
    return folder / "hf_depth"


def _depth(torch: Any, model: Any) -> np.ndarray:
    """transformers' predicted depth ``[B, H, W]`` with KerasHub's channel axis."""
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _pixels())).predicted_depth[..., None].numpy()


def _keras_depth(task: Any) -> np.ndarray:
    return _numpy(task(_pixels(), training=False)["depths"])


@pytest.mark.parametrize(("kind", "apply_layernorm"), [("relative", True), ("metric", False)])
def test_preset_to_transformers_same_depth(transformers, torch, keras_hub, tmp_path, kind, apply_layernorm):
    preset = _preset(keras_hub, tmp_path, kind, apply_layernorm)
    task = _loaded(keras_hub.models.DepthEstimator.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.DepthAnythingForDepthEstimation.from_pretrained(
        tmp_path / "pt", output_loading_info=True
    )
    assert not any(info.values()), info
    assert model.config.depth_estimation_type == kind
    np.testing.assert_allclose(_depth(torch, model.eval()), _keras_depth(task), atol=1e-5)


@pytest.mark.parametrize("settings", [{}, {"depth_estimation_type": "metric", "max_depth": 20}])
def test_transformers_to_preset_same_depth_and_back(transformers, torch, keras_hub, tmp_path, settings):
    src = _hf_dir(transformers, torch, tmp_path, **settings)
    model = transformers.DepthAnythingForDepthEstimation.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.DepthEstimator.from_preset, preset)
    assert type(task).__name__ == "DepthAnythingDepthEstimator"
    np.testing.assert_allclose(_keras_depth(task), _depth(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def _encoder_unnamed(serialized: dict[str, Any]) -> dict[str, Any]:
    config = _unnamed(serialized)
    return config | {"config": config["config"] | {"image_encoder": _unnamed(config["config"]["image_encoder"])}}


def test_preset_round_trip_bit_exact(keras_hub, tmp_path):
    """preset -> transformers -> preset: every variable back bit for bit (DINOv2's interpolated position table comes
    back as zeros, KerasHub rebuilding it on loading), the same backbone and estimator configs."""
    path = _preset(keras_hub, tmp_path, "metric")
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_but_interpolated(path, again, "layers/functional/layers/")  # that table: zeros, rebuilt on loading
    original, written = (_encoder_unnamed(json.loads((p / "config.json").read_text())) for p in (path, again))
    assert written == original
    original, written = (_unnamed(json.loads((p / "task.json").read_text())) for p in (path, again))
    original["config"]["backbone"], written["config"]["backbone"] = (
        _encoder_unnamed(c["config"]["backbone"]) for c in (original, written)
    )
    assert written == original


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_depth", 5), ("depth_estimation_type", "log"), ("reassemble_hidden_size", 8), ("patch_size", 4)],
)
def test_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _hf_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    assert key in _refused_as_preset(src, tmp_path / "o")


@pytest.mark.parametrize(("key", "value"), [("reshape_hidden_states", True), ("hidden_act", "relu")])
def test_unwritable_encoder_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _hf_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    config["backbone_config"][key] = value
    (src / "config.json").write_text(json.dumps(config))
    assert key in _refused_as_preset(src, tmp_path / "o")


def test_verify_compares_predicted_depth(transformers, torch, keras_hub, tmp_path):
    """The estimator's depth against transformers' (channels last), both ways; a backbone alone (its head's last
    activation left to the task) says the depth was not compared."""
    preset = _preset(keras_hub, tmp_path, "metric")
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    described = "DepthAnythingBackbone + DepthAnythingDepthEstimator"
    _passes_with_forward(_verify(preset, tmp_path / "pt"), described, {"predicted_depth"})
    src = _hf_dir(transformers, torch, tmp_path)
    _passes_with_forward(_verify(src, _to_preset(src, tmp_path / "written")), described, {"predicted_depth"})
    alone = tmp_path / "alone"
    keras_hub.models.Backbone.from_preset(str(preset)).save_to_preset(str(alone))
    report = _verify(alone, tmp_path / "pt")
    assert any(n.startswith("predicted_depth not compared") for n in report["notes"]), report["notes"]


def test_fractional_max_depth_exits_2(keras_hub, tmp_path):
    """transformers 5's DepthAnythingConfig holds a whole max_depth only: a metric estimator of 20.5 is refused."""
    preset = _preset(keras_hub, tmp_path, "metric")
    task = json.loads((preset / "task.json").read_text())
    task["config"]["max_depth"] = 20.5
    (preset / "task.json").write_text(json.dumps(task))
    assert "max_depth" in run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
