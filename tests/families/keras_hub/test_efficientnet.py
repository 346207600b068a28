"""KerasHub EfficientNet (v1 blocks) <-> transformers 5 ``EfficientNetModel`` and ``EfficientNetImageClassifier``
<-> ``EfficientNetForImageClassification``.  Tiny models made by each library's own code with random weights and
non-trivial batch-norm statistics, converted by the CLI, loaded by the other library with nothing missing or left
over, compared in fp32 (eval mode) on NHWC pixels (fed to transformers NCHW), round trips bit-exact, what the two
compute otherwise refused with exit 2."""

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
    _to_preset,
)
from tests.families.keras_hub.test_seq2seq_vision import _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify
from tests.families.keras_hub.test_vision_families import _nchw

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")


def _random(shape: tuple[int, ...], role: str, rng: Any, fan_in: int) -> np.ndarray:
    """Values keeping activations near unit scale through the stages: kernels by their fan-in, norms' scales and
    variances around one, shifts and means small."""
    if role in ("kernel", "weight") and len(shape) > 1:
        return rng.normal(0, 1 / np.sqrt(fan_in), shape).astype("float32")
    if role in ("gamma", "moving_variance", "weight", "running_var"):
        return rng.uniform(0.5, 1.5, shape).astype("float32")
    return rng.normal(0, 0.2, shape).astype("float32")


def _states(torch: Any, model: Any) -> np.ndarray:
    """transformers' last stage, channels last as KerasHub returns it."""
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _pixels())).last_hidden_state.permute(0, 2, 3, 1).numpy()


def _logits(torch: Any, model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _pixels())).logits.numpy()


_EFFICIENT = {
    "stackwise_width_coefficients": [1.0] * 3,
    "stackwise_depth_coefficients": [1.0] * 3,
    "stackwise_kernel_sizes": [3, 3, 5],
    "stackwise_num_repeats": [1, 2, 1],
    "stackwise_input_filters": [32, 16, 24],
    "stackwise_output_filters": [16, 24, 16],
    "stackwise_expansion_ratios": [1, 6, 2],
    "stackwise_squeeze_and_excite_ratios": [0.25] * 3,
    "stackwise_strides": [1, 2, 2],
    "stackwise_block_types": ["v1"] * 3,
    "stackwise_force_input_filters": [0] * 3,
    "stackwise_nores_option": [False] * 3,
    "include_stem_padding": False,
    "stem_conv_padding": "same",
    "use_depth_divisor_as_min_depth": True,
    "cap_round_filter_decrease": True,
    "batch_norm_momentum": 0.99,
    "batch_norm_epsilon": 1e-3,
    "dropout": 0.0,
}
_EFFICIENT_HF = {
    "width_coefficient": 1.0,
    "depth_coefficient": 1.0,
    "kernel_sizes": [3, 3, 5],
    "in_channels": [32, 16, 24],
    "out_channels": [16, 24, 16],
    "strides": [1, 2, 2],
    "num_block_repeats": [1, 2, 1],
    "expand_ratios": [1, 6, 2],
    "depthwise_padding": [1, 3],
    "hidden_dim": 1280,
    "image_size": 32,
}


def _efficientnet_preset(keras_hub: Any, folder: Path, **changes: Any) -> Path:
    backbone = keras_hub.models.EfficientNetBackbone(**{**_EFFICIENT, **changes})
    rng = np.random.default_rng(0)
    for variable in backbone.weights:
        role = variable.path.rsplit("/", 1)[-1]
        shape = tuple(variable.shape)
        fan_in = int(np.prod(shape[:2])) if role == "depthwise_kernel" else int(np.prod(shape[:-1]))
        variable.assign(_random(shape, "kernel" if role == "depthwise_kernel" else role, rng, fan_in))
    backbone.save_to_preset(str(folder / "efficientnet"))
    return folder / "efficientnet"


def _efficientnet_dir(transformers: Any, torch: Any, folder: Path) -> Path:
    model = transformers.EfficientNetModel(transformers.EfficientNetConfig(**_EFFICIENT_HF))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
                continue
            shape = tuple(tensor.shape)
            value = _random(shape, name.rsplit(".", 1)[-1], rng, int(np.prod(shape[1:])))
            tensor.copy_(torch.from_numpy(value))
    model.eval().save_pretrained(folder / "hf_efficientnet")
    return folder / "hf_efficientnet"


def test_efficientnet_to_transformers_same_states(transformers, torch, keras_hub, tmp_path):
    """Depthwise kernels, squeeze-excite, swish, batch norms of epsilon 1e-3, the 1280-filter top."""
    preset = _efficientnet_preset(keras_hub, tmp_path)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.EfficientNetModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    np.testing.assert_allclose(_states(torch, model.eval()), _numpy(backbone(_pixels())), atol=1e-5)


def test_efficientnet_transformers_to_preset_same_states_and_back(transformers, torch, keras_hub, tmp_path):
    src = _efficientnet_dir(transformers, torch, tmp_path)
    model = transformers.EfficientNetModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    np.testing.assert_allclose(_numpy(backbone(_pixels())), _states(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.EfficientNetModel.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_efficientnet_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _efficientnet_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"include_stem_padding": True}, "include_stem_padding"),
        ({"stackwise_block_types": ["v1", "fused", "v1"]}, "stackwise_block_types"),
        ({"stackwise_squeeze_and_excite_ratios": [0.25, 0.5, 0.25]}, "stackwise_squeeze_and_excite_ratios"),
    ],
)
def test_efficientnet_unconvertible_preset_exits_2(keras_hub, tmp_path, changes, named):
    preset = _efficientnet_preset(keras_hub, tmp_path, **changes)
    assert named in run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)


@pytest.mark.parametrize(("key", "value"), [("depthwise_padding", []), ("hidden_act", "relu")])
def test_efficientnet_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    """transformers' default depthwise padding (right and bottom heavier) against KerasHub's even padding."""
    src = _efficientnet_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    assert key in _refused_as_preset(src, tmp_path / "o")


def test_efficientnet_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    preset = _efficientnet_preset(keras_hub, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "EfficientNetBackbone", {"hidden_states"})
    src = _efficientnet_dir(transformers, torch, tmp_path)
    _passes_with_forward(_verify(src, _to_preset(src, tmp_path / "written")), "EfficientNetBackbone", {"hidden_states"})


def test_efficientnet_classifier_both_ways_same_logits(transformers, torch, keras_hub, tmp_path):
    """Mean-pooled then one dense layer on both sides."""
    backbone = keras_hub.models.EfficientNetBackbone(**_EFFICIENT)
    task = keras_hub.models.EfficientNetImageClassifier(backbone=backbone, num_classes=3, dropout=0.1)
    rng = np.random.default_rng(0)
    for variable in task.weights:
        role, shape = variable.path.rsplit("/", 1)[-1], tuple(variable.shape)
        fan_in = int(np.prod(shape[:2])) if role == "depthwise_kernel" else int(np.prod(shape[:-1]))
        variable.assign(_random(shape, "kernel" if role == "depthwise_kernel" else role, rng, fan_in))
    task.save_to_preset(str(tmp_path / "task"))
    run_cli("convert", str(tmp_path / "task"), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.EfficientNetForImageClassification.from_pretrained(
        tmp_path / "pt", output_loading_info=True
    )
    assert not any(info.values()), info
    np.testing.assert_allclose(_logits(torch, model.eval()), _numpy(task(_pixels(), training=False)), atol=1e-5)
    written = _loaded(keras_hub.models.ImageClassifier.from_preset, _to_preset(tmp_path / "pt", tmp_path / "back"))
    assert type(written).__name__ == "EfficientNetImageClassifier" and written.pooling == "avg"
    np.testing.assert_allclose(_numpy(written(_pixels(), training=False)), _logits(torch, model), atol=1e-5)
    _same_tensors(tmp_path / "task", tmp_path / "back")
