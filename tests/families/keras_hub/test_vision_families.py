"""KerasHub DINOv2 and DeiT <-> transformers 5 (``Dinov2Model``; ``DeiTModel``, ``DeiTForImageClassification``):
tiny models made by each library's own code with random weights, converted by the CLI, loaded by the other library
with nothing missing or left over, forwards compared in fp32 on NHWC pixels (fed to transformers NCHW), round trips
bit-exact, configs the other side cannot express refused with exit 2.  Images are of the trained size: KerasHub's
DINOv2 resamples its position table to another size with its own bicubic kernel."""

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
from tests.families.keras_hub.test_seq2seq_vision import _converted, _numpy
from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run

_SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}
_HF = {"image_size": 8, "patch_size": 4, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2}
# DINOv2: the plain MLP with a mask token; the SwiGLU one without
_DINOV2 = {"plain": {"use_swiglu_ffn": False}, "swiglu": {"use_swiglu_ffn": True, "use_mask_token": False}}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")


def _nchw(torch: Any, pixels: np.ndarray) -> Any:
    return torch.tensor(pixels).permute(0, 3, 1, 2)


def _dinov2_backbone(keras_hub: Any, variant: str) -> Any:
    return keras_hub.models.DINOV2Backbone(
        patch_size=4, image_shape=(8, 8, 3), position_embedding_shape=(8, 8, 3), **_SIZES, **_DINOV2[variant]
    )


def _deit_classifier(keras_hub: Any) -> Any:
    backbone = keras_hub.models.DeiTBackbone(image_shape=(8, 8, 3), patch_size=4, **_SIZES)
    return keras_hub.models.DeiTImageClassifier(backbone=backbone, num_classes=3)


def _keras_preset(keras_hub: Any, name: str, folder: Path) -> Path:
    model = _deit_classifier(keras_hub) if name == "deit" else _dinov2_backbone(keras_hub, name)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    if name != "deit":  # the table the forward reads, as KerasHub rebuilds it from the trained one on loading
        model.embeddings.interpolated_position_embeddings.assign(model.embeddings.position_embeddings)
    model.save_to_preset(str(folder / name))
    return folder / name


def _transformers_dir(transformers: Any, torch: Any, name: str, folder: Path) -> Path:
    if name == "deit":
        config = transformers.DeiTConfig(intermediate_size=16, num_labels=3, **_HF)
        return _saved(transformers.DeiTForImageClassification(config), folder / "hf_deit", torch)
    config = transformers.Dinov2Config(mlp_ratio=2, **_HF, **_DINOV2[name])
    return _saved(transformers.Dinov2Model(config), folder / f"hf_{name}", torch)


@pytest.mark.parametrize("variant", ["plain", "swiglu"])
def test_dinov2_to_transformers_same_states(transformers, torch, keras_hub, tmp_path, variant):
    """Layer scales, the plain MLP or the SwiGLU (KerasHub's joined gate and up kernel), the mask token or none."""
    preset = _keras_preset(keras_hub, variant, tmp_path)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.Dinov2Model.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    with torch.no_grad():
        got = model(pixel_values=_nchw(torch, _pixels())).last_hidden_state.numpy()
    np.testing.assert_allclose(got, _numpy(backbone(_pixels())), atol=1e-5)


def test_deit_classifier_to_transformers_same_logits(transformers, torch, keras_hub, tmp_path):
    """Class and distillation tokens, the classifier over the class token: hidden states and logits."""
    task = _deit_classifier(keras_hub)
    model = _converted(task, tmp_path, transformers.DeiTForImageClassification)
    with torch.no_grad():
        got = model(pixel_values=_nchw(torch, _pixels()), output_hidden_states=True)
    np.testing.assert_allclose(got.logits.numpy(), _numpy(task(_pixels())), atol=1e-5)
    states = got.hidden_states[-1]  # before the final norm: compare the backbone's normed output instead
    assert states.shape == (2, 6, 8)
    base = transformers.DeiTModel.from_pretrained(tmp_path / "pt", add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = base(pixel_values=_nchw(torch, _pixels())).last_hidden_state.numpy()
    np.testing.assert_allclose(hidden, _numpy(task.backbone(_pixels())), atol=1e-5)


@pytest.mark.parametrize("name", ["plain", "swiglu", "deit"])
def test_transformers_to_preset_same_outputs_and_back(transformers, torch, keras_hub, tmp_path, name):
    """transformers' own models -> presets KerasHub loads without a warning: the same hidden states (DeiT: logits);
    back to transformers bit for bit (the files transformers wrote, its own names)."""
    src = _transformers_dir(transformers, torch, name, tmp_path)
    cls = transformers.DeiTForImageClassification if name == "deit" else transformers.Dinov2Model
    model = cls.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    keras_model = _loaded(
        keras_hub.models.ImageClassifier.from_preset if name == "deit" else keras_hub.models.Backbone.from_preset,
        preset,
    )
    with torch.no_grad():
        out = model(pixel_values=_nchw(torch, _pixels()))
    expected = out.logits if name == "deit" else out.last_hidden_state
    np.testing.assert_allclose(_numpy(keras_model(_pixels())), expected.numpy(), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = cls.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


@pytest.mark.parametrize("name", ["plain", "swiglu", "deit"])
def test_preset_round_trip_bit_exact(keras_hub, tmp_path, name):
    """A save_to_preset preset -> transformers -> preset: every variable back bit for bit, the same configs
    (DINOv2's interpolated position table comes back as zeros, KerasHub rebuilding it on loading: not compared)."""
    path = _keras_preset(keras_hub, name, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    if name == "deit":
        _same_tensors(path, again)
    else:
        _same_but_interpolated(path, again)
    for file in ("config.json", "task.json") if name == "deit" else ("config.json",):
        original, written = (json.loads((p / file).read_text()) for p in (path, again))
        assert _unnamed(written) == _unnamed(original), file


def _same_but_interpolated(a: Path, b: Path, encoder: str = "layers/") -> None:
    """Every model tensor of ``a`` bit for bit in ``b`` but the interpolated position table of the DINOv2 encoder
    whose layers are under ``encoder``."""
    import bridge

    with bridge.load(a) as x, bridge.load(b) as y:
        xs = {r.name: r for r in x.values() if r.kind == "model"}
        ys = {r.name: r for r in y.values() if r.kind == "model"}
        assert sorted(xs) == sorted(ys)
        interpolated = sorted(n for n in xs if n.startswith(f"{encoder}dinov2_embedding/vars/"))[-2]  # trainable: first
        for name, r in xs.items():
            if name != interpolated:
                assert r.numpy().tobytes() == ys[name].numpy().tobytes(), name


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("plain", "layer_norm_eps", 1e-5),
        ("plain", "hidden_act", "gelu_new"),
        ("swiglu", "qkv_bias", False),
        ("deit", "hidden_act", "relu"),
        ("deit", "num_channels", 1),
    ],
)
def test_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, name, key, value):
    src = _transformers_dir(transformers, torch, name, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"image_shape": (16, 16, 3)}, "position_embedding_shape"),  # KerasHub resamples the table to 16x16
        ({"num_register_tokens": 2}, "num_register_tokens"),
    ],
)
def test_unwritable_dinov2_preset_exits_2(keras_hub, tmp_path, extra, named):
    kwargs = {"patch_size": 4, "image_shape": (8, 8, 3), "position_embedding_shape": (8, 8, 3), **_SIZES, **extra}
    keras_hub.models.DINOV2Backbone(**kwargs).save_to_preset(str(tmp_path / "preset"))
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert named in out


@pytest.mark.parametrize(
    ("name", "classes", "outputs"),
    [
        ("swiglu", "DINOV2Backbone", {"hidden_states"}),
        # DeiTBackbone's one input is unnamed (``keras_tensor_<n>``): an image backbone's single input, the images
        ("deit", "DeiTBackbone + DeiTImageClassifier", {"hidden_states", "logits"}),
    ],
)
def test_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path, name, classes, outputs):
    """``bridge verify`` between a written preset and its source, both ways, runs and passes the forward."""
    preset = _keras_preset(keras_hub, name, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), classes, outputs)
    src = _transformers_dir(transformers, torch, name, tmp_path)
    _passes_with_forward(_verify(src, _to_preset(src, tmp_path / "written")), classes, outputs)
