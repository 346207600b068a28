"""KerasHub MiT (SegFormer's encoder) <-> transformers 5 ``SegformerModel``, and ``SegFormerBackbone`` with
``SegFormerImageSegmenter`` <-> ``SegformerForSemanticSegmentation`` (logits compared resized to the image, as
KerasHub's segmenter resizes them); KerasHub's ViTDet (SAM's encoder with its neck) converts as transformers'
SamVisionModel (tests/families/keras_hub/test_sam.py).  Tiny models made by each library's own code with random
weights, converted by the CLI, loaded by the other library with nothing missing or left over, compared in fp32 on
NHWC pixels (fed to transformers NCHW), round trips bit-exact, configs the other side cannot express (or computes
otherwise) refused with exit 2."""

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

# two stages on 32x32 images: the first reduces its keys and values by a strided conv (sr 2), the second does not
_MIT = {
    "layerwise_depths": [1, 2],
    "num_layers": 2,
    "layerwise_num_heads": [1, 2],
    "layerwise_sr_ratios": [2, 1],
    "max_drop_path_rate": 0.0,
    "layerwise_patch_sizes": [7, 3],
    "layerwise_strides": [4, 2],
    "image_shape": (32, 32, 3),
    "hidden_dims": [8, 16],
}
_HF = {
    "num_encoder_blocks": 2,
    "depths": [1, 2],
    "sr_ratios": [2, 1],
    "hidden_sizes": [8, 16],
    "patch_sizes": [7, 3],
    "strides": [4, 2],
    "num_attention_heads": [1, 2],
    "mlp_ratios": [4, 4],
    "hidden_act": "gelu_pytorch_tanh",
    "image_size": 32,
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")


def _mit_preset(keras_hub: Any, folder: Path) -> Path:
    model = keras_hub.models.MiTBackbone(**_MIT)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    model.save_to_preset(str(folder / "mit"))
    return folder / "mit"


def _mit_dir(transformers: Any, torch: Any, folder: Path) -> Path:
    """A random SegformerModel, its weights scaled to 0.3 (the test's 0.5 grows the Mix-FFN's activations until
    float32 rounding alone, amplified by the stage norms, passes 1e-5)."""
    model = transformers.SegformerModel(transformers.SegformerConfig(**_HF))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    model.eval().save_pretrained(folder / "hf_mit")
    return folder / "hf_mit"


def _states(torch: Any, model: Any) -> np.ndarray:
    """transformers' last stage, channels last as KerasHub returns it."""
    with torch.no_grad():
        return model(pixel_values=_nchw(torch, _pixels())).last_hidden_state.permute(0, 2, 3, 1).numpy()


def test_mit_to_transformers_same_states(transformers, torch, keras_hub, tmp_path):
    """Overlapping patch convs, the sequence-reduction conv and its norm, the depthwise conv of the Mix-FFN."""
    preset = _mit_preset(keras_hub, tmp_path)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.SegformerModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    assert model.config.hidden_act == "gelu_pytorch_tanh"
    np.testing.assert_allclose(_states(torch, model.eval()), _numpy(backbone(_pixels())), atol=1e-5)


def test_mit_transformers_to_preset_same_states_and_back(transformers, torch, keras_hub, tmp_path):
    src = _mit_dir(transformers, torch, tmp_path)
    model = transformers.SegformerModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    np.testing.assert_allclose(_numpy(backbone(_pixels())), _states(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.SegformerModel.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_mit_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _mit_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(("key", "value"), [("hidden_act", "gelu"), ("layer_norm_eps", 1e-5), ("mlp_ratios", [4, 2])])
def test_mit_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    """transformers' exact gelu (its published SegFormers') against KerasHub's tanh form: refused by name."""
    src = _mit_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


def test_mit_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    preset = _mit_preset(keras_hub, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "MiTBackbone", {"hidden_states"})
    src = _mit_dir(transformers, torch, tmp_path)
    written = _to_preset(src, tmp_path / "written")
    _passes_with_forward(_verify(src, written), "MiTBackbone", {"hidden_states"})


# SegFormer: the MiT above with its decode head (8 filters) and a classifier of 3 classes
def _segmenter_preset(keras_hub: Any, folder: Path) -> Path:
    backbone = keras_hub.models.SegFormerBackbone(
        image_encoder=keras_hub.models.MiTBackbone(**_MIT), projection_filters=8
    )
    task = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=3)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in task.get_weights()])
    for variable in task.weights:  # a variance the batch norm can take
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    task.save_to_preset(str(folder / "segformer"))
    return folder / "segformer"


def _segformer_dir(transformers: Any, torch: Any, folder: Path) -> Path:
    config = transformers.SegformerConfig(**_HF, decoder_hidden_size=8, num_labels=3)
    model = transformers.SegformerForSemanticSegmentation(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        model.decode_head.batch_norm.running_mean.copy_(torch.randn(8, generator=generator) * 0.3)
        model.decode_head.batch_norm.running_var.copy_(torch.rand(8, generator=generator) + 0.5)
        model.decode_head.batch_norm.num_batches_tracked.fill_(7)
    model.eval().save_pretrained(folder / "hf_segformer")
    return folder / "hf_segformer"


def _logits(torch: Any, model: Any) -> np.ndarray:
    """transformers' logits (a quarter of the image) resized to the image as KerasHub's segmenter resizes them
    (bilinear, half-pixel centres), channels last."""
    with torch.no_grad():
        logits = model(pixel_values=_nchw(torch, _pixels())).logits
        resized = torch.nn.functional.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1).numpy()


def test_segformer_to_transformers_same_logits(transformers, torch, keras_hub, tmp_path):
    preset = _segmenter_preset(keras_hub, tmp_path)
    task = _loaded(keras_hub.models.ImageSegmenter.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.SegformerForSemanticSegmentation.from_pretrained(
        tmp_path / "pt", output_loading_info=True
    )
    assert not any(info.values()), info
    np.testing.assert_allclose(_logits(torch, model.eval()), _numpy(task(_pixels(), training=False)), atol=1e-5)


def test_segformer_transformers_to_preset_same_logits_and_back(transformers, torch, keras_hub, tmp_path):
    src = _segformer_dir(transformers, torch, tmp_path)
    model = transformers.SegformerForSemanticSegmentation.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.ImageSegmenter.from_preset, preset)
    assert type(task).__name__ == "SegFormerImageSegmenter"
    np.testing.assert_allclose(_numpy(task(_pixels(), training=False)), _logits(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.SegformerForSemanticSegmentation.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):  # a training step count KerasHub has no variable for
            assert int(back[key]) == 0
            continue
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_segformer_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _segmenter_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (_encoder_unnamed(json.loads((p / "config.json").read_text())) for p in (path, again))
    assert written == original
    original, written = (_unnamed(json.loads((p / "task.json").read_text())) for p in (path, again))
    original["config"]["backbone"], written["config"]["backbone"] = (
        _encoder_unnamed(c["config"]["backbone"]) for c in (original, written)
    )
    assert written == original


def _encoder_unnamed(serialized: dict[str, Any]) -> dict[str, Any]:
    """A SegFormerBackbone's config without its own and its nested encoder's counted layer names."""
    config = _unnamed(serialized)
    return config | {"config": config["config"] | {"image_encoder": _unnamed(config["config"]["image_encoder"])}}


def test_segformer_verify_compares_resized_logits(transformers, torch, keras_hub, tmp_path):
    """KerasHub's backbone ends in the decode head (no transformers base model's output to match): verify compares
    the segmenter's logits with transformers' resized to the image, both ways."""
    preset = _segmenter_preset(keras_hub, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "SegFormerBackbone + SegFormerImageSegmenter", {"logits"})
    src = _segformer_dir(transformers, torch, tmp_path)
    written = _to_preset(src, tmp_path / "written")
    report = _verify(src, written)
    _passes_with_forward(report, "SegFormerBackbone + SegFormerImageSegmenter", {"logits"})
    assert any(n.startswith("hidden_states not compared") for n in report["notes"]), report["notes"]


def test_segformer_exact_gelu_exits_2(transformers, torch, tmp_path):
    src = _segformer_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    assert "hidden_act" in _refused_as_preset(src, tmp_path / "o")
