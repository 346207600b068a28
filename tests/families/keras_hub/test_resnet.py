"""KerasHub ``ResNetBackbone`` / ``ResNetImageClassifier`` <-> transformers 5 ``ResNetModel`` /
``ResNetForImageClassification``, basic and bottleneck blocks, the first stage striding or not.  Tiny models made by
each library's own code in eval mode with random weights and batch-norm statistics, converted by the CLI, loaded by
the other library with nothing missing or left over, the last feature map (channels last) and the logits compared
in fp32, round trips bit-exact, and the variants transformers computes otherwise (v2, vd) refused with exit 2."""

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
    _unnamed,
)
from tests.families.keras_hub.test_seq2seq_vision import _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify
from tests.families.keras_hub.test_vision_families import _nchw

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run

# KerasHub's first stage is 64 filters wide; the second strides by 2, as every later transformers stage does
_KERAS = {
    "basic": {
        "input_conv_filters": [64],
        "stackwise_num_filters": [64, 8],
        "stackwise_num_blocks": [2, 2],
        "stackwise_num_strides": [1, 2],
        "block_type": "basic_block",
    },
    "bottleneck": {
        "input_conv_filters": [8],
        "stackwise_num_filters": [64, 8],
        "stackwise_num_blocks": [2, 1],
        "stackwise_num_strides": [1, 2],
        "block_type": "bottleneck_block",
    },
    "bottleneck_strided": {
        "input_conv_filters": [8],
        "stackwise_num_filters": [64, 8],
        "stackwise_num_blocks": [1, 2],
        "stackwise_num_strides": [2, 2],
        "block_type": "bottleneck_block",
    },
}
_HF = {
    "basic": {"embedding_size": 64, "hidden_sizes": [64, 8], "depths": [2, 2], "layer_type": "basic"},
    "bottleneck": {"embedding_size": 8, "hidden_sizes": [256, 32], "depths": [2, 1], "layer_type": "bottleneck"},
    "bottleneck_strided": {
        "embedding_size": 256,
        "hidden_sizes": [256, 32],
        "depths": [1, 2],
        "layer_type": "bottleneck",
        "downsample_in_first_stage": True,
    },
}
_CLASSES = 3


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")


def _keras_model(keras_hub: Any, variant: str, *, task: bool, **changes: Any) -> Any:
    """A tiny backbone (or classifier over it), random weights and a random batch-norm state."""
    config = {**_KERAS[variant], "input_conv_kernel_sizes": [7], "image_shape": (None, None, 3), **changes}
    model = keras_hub.models.ResNetBackbone(**config)
    if task:
        model = keras_hub.models.ResNetImageClassifier(backbone=model, num_classes=_CLASSES)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 1.5, variable.shape)
        else:
            value = rng.normal(0, 0.2, variable.shape)
        variable.assign(value.astype("float32"))
    return model


def _preset(keras_hub: Any, folder: Path, variant: str, *, task: bool = False, **changes: Any) -> Path:
    path = folder / f"{variant}{'_task' if task else ''}"
    _keras_model(keras_hub, variant, task=task, **changes).save_to_preset(str(path))
    return path


def _hf_dir(transformers: Any, torch: Any, folder: Path, variant: str, *, task: bool = False) -> Path:
    config = transformers.ResNetConfig(**_HF[variant], num_labels=_CLASSES)
    model = (transformers.ResNetForImageClassification if task else transformers.ResNetModel)(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(7)
    path = folder / f"hf_{variant}{'_task' if task else ''}"
    model.eval().save_pretrained(path)
    return path


def _hf_out(torch: Any, model: Any) -> np.ndarray:
    """The logits of a classifier, else the last feature map channels last as KerasHub returns it."""
    with torch.no_grad():
        out = model(pixel_values=_nchw(torch, _pixels()))
    return out.logits.numpy() if hasattr(out, "logits") else out.last_hidden_state.permute(0, 2, 3, 1).numpy()


def _hf_class(transformers: Any, task: bool) -> Any:
    return transformers.ResNetForImageClassification if task else transformers.ResNetModel


def _keras_load(keras_hub: Any, task: bool) -> Any:
    return keras_hub.models.ImageClassifier.from_preset if task else keras_hub.models.Backbone.from_preset


@pytest.mark.parametrize("task", [False, True], ids=["backbone", "classifier"])
@pytest.mark.parametrize("variant", list(_KERAS))
def test_preset_to_transformers_same_outputs(transformers, torch, keras_hub, tmp_path, variant, task):
    preset = _preset(keras_hub, tmp_path, variant, task=task)
    keras_model = _loaded(_keras_load(keras_hub, task), preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = _hf_class(transformers, task).from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    expected = _numpy(keras_model(_pixels(), training=False))
    assert np.abs(expected).max() > 0.1  # a non-trivial output
    np.testing.assert_allclose(_hf_out(torch, model.eval()), expected, atol=1e-5)


@pytest.mark.parametrize("task", [False, True], ids=["backbone", "classifier"])
@pytest.mark.parametrize("variant", list(_HF))
def test_transformers_to_preset_same_outputs_and_back(transformers, torch, keras_hub, tmp_path, variant, task):
    src = _hf_dir(transformers, torch, tmp_path, variant, task=task)
    model = _hf_class(transformers, task).from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    keras_model = _loaded(_keras_load(keras_hub, task), preset)
    if task:
        assert type(keras_model).__name__ == "ResNetImageClassifier"
    np.testing.assert_allclose(_numpy(keras_model(_pixels(), training=False)), _hf_out(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = _hf_class(transformers, task).from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):  # KerasHub keeps no step count
            continue
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


@pytest.mark.parametrize("task", [False, True], ids=["backbone", "classifier"])
@pytest.mark.parametrize("variant", ["basic", "bottleneck"])
def test_preset_round_trip_bit_exact(keras_hub, tmp_path, variant, task):
    path = _preset(keras_hub, tmp_path, variant, task=task)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("variant", "changes", "named"),
    [
        ("basic", {"use_pre_activation": True}, "use_pre_activation"),
        ("bottleneck", {"block_type": "bottleneck_block_vd"}, "bottleneck_block_vd"),
        ("basic", {"block_type": "basic_block_vd"}, "basic_block_vd"),
        ("bottleneck", {"input_conv_filters": [8, 8, 8], "input_conv_kernel_sizes": [3, 3, 3]}, "input_conv"),
        ("bottleneck", {"stackwise_num_strides": [1, 1]}, "stackwise_num_strides"),
    ],
)
def test_unconvertible_preset_exits_2(keras_hub, tmp_path, variant, changes, named):
    """ResNet v2 (pre-activation), the vd blocks and stem, a stage after the first not striding by 2."""
    preset = _preset(keras_hub, tmp_path, variant, **changes)
    out = run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert named in out


@pytest.mark.parametrize(
    ("variant", "key", "value"),
    [
        ("basic", "hidden_act", "gelu"),
        ("bottleneck", "downsample_in_bottleneck", True),
        ("basic", "embedding_size", 32),  # transformers would project the first stage's shortcut
        ("basic", "downsample_in_first_stage", True),
        ("bottleneck", "hidden_sizes", [128, 32]),  # KerasHub's first stage is 64 filters wide
        ("bottleneck", "layer_type", "preactivation"),
    ],
)
def test_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, variant, key, value):
    src = _hf_dir(transformers, torch, tmp_path, variant)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


def test_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    preset = _preset(keras_hub, tmp_path, "bottleneck")
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "ResNetBackbone", {"hidden_states"})
    src = _hf_dir(transformers, torch, tmp_path, "basic", task=True)
    written = _to_preset(src, tmp_path / "written")
    _passes_with_forward(_verify(src, written), "ResNetBackbone + ResNetImageClassifier", {"hidden_states", "logits"})
