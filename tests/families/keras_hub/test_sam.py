"""SAM's image encoder: KerasHub ``ViTDetBackbone`` (windowed attention with decomposed relative positions, global
layers, SAM's neck) <-> transformers 5 ``SamVisionModel`` (the same encoder with the same neck).  Tiny models made
by each library's own code with random weights, converted by the CLI, loaded by the other library with nothing
missing or left over, the image embeddings compared in fp32 (KerasHub normalizes its images itself; transformers
is fed the same pixels normalized as SamProcessor does), round trips bit-exact, configs the other side cannot
express refused with exit 2."""

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

# 4x4 patches: windows of 3 (padded to 6x6, as both libraries pad) in layers 0 and 2, layer 1 global
_VITDET = {
    "hidden_size": 8,
    "num_layers": 3,
    "intermediate_dim": 16,
    "num_heads": 2,
    "global_attention_layer_indices": [1],
    "image_shape": (32, 32, 3),
    "patch_size": 8,
    "num_output_channels": 4,
    "window_size": 3,
}
_HF = {
    "hidden_size": 8,
    "num_hidden_layers": 3,
    "mlp_dim": 16,
    "num_attention_heads": 2,
    "global_attn_indexes": [1],
    "image_size": 32,
    "patch_size": 8,
    "output_channels": 4,
    "window_size": 3,
}
_MEAN, _STD = np.array([0.485, 0.456, 0.406], "float32"), np.array([0.229, 0.224, 0.225], "float32")


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")


def _vitdet_preset(keras_hub: Any, folder: Path) -> Path:
    model = keras_hub.models.ViTDetBackbone(**_VITDET)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    model.save_to_preset(str(folder / "vitdet"))
    return folder / "vitdet"


def _sam_vision_dir(transformers: Any, torch: Any, folder: Path) -> Path:
    """A random SamVisionModel (its relative position tables too, which transformers initializes to zeros)."""
    model = transformers.SamVisionModel(transformers.SamVisionConfig(**_HF))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    model.eval().save_pretrained(folder / "hf_sam_vision")
    return folder / "hf_sam_vision"


def _embeddings(torch: Any, model: Any) -> np.ndarray:
    """transformers' image embeddings (the neck's output) of the pixels normalized as SamProcessor does, channels
    last as KerasHub returns them."""
    with torch.no_grad():
        out = model(pixel_values=_nchw(torch, (_pixels() - _MEAN) / _STD)).last_hidden_state
    return out.permute(0, 2, 3, 1).numpy()


def test_vitdet_to_transformers_same_embeddings(transformers, torch, keras_hub, tmp_path):
    preset = _vitdet_preset(keras_hub, tmp_path)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.SamVisionModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    assert model.config.window_size == 3 and model.config.global_attn_indexes == [1]
    np.testing.assert_allclose(_embeddings(torch, model.eval()), _numpy(backbone(_pixels())), atol=1e-5)


def test_vitdet_transformers_to_preset_same_embeddings_and_back(transformers, torch, keras_hub, tmp_path):
    src = _sam_vision_dir(transformers, torch, tmp_path)
    model = transformers.SamVisionModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == "ViTDetBackbone"
    np.testing.assert_allclose(_numpy(backbone(_pixels())), _embeddings(torch, model), atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.SamVisionModel.from_pretrained(tmp_path / "back").state_dict()
    assert back.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_vitdet_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _vitdet_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


@pytest.mark.parametrize(
    ("key", "value"), [("hidden_act", "gelu_new"), ("qkv_bias", False), ("use_rel_pos", False), ("use_abs_pos", False)]
)
def test_vitdet_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, key, value):
    src = _sam_vision_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    assert key in _refused_as_preset(src, tmp_path / "o")


def test_vitdet_without_relative_positions_exits_2(keras_hub, tmp_path):
    """A preset whose layers lack the relative position tables: refused by name, not a traceback."""
    keras_hub.models.ViTDetBackbone(**_VITDET, use_rel_pos=False).save_to_preset(str(tmp_path / "vitdet"))
    out = run_cli("convert", str(tmp_path / "vitdet"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=2)
    assert "use_rel_pos" in out


def test_vitdet_verify_runs_both_forwards(transformers, torch, keras_hub, tmp_path):
    """verify feeds KerasHub the pixels and transformers the same pixels normalized (the family's declaration)."""
    preset = _vitdet_preset(keras_hub, tmp_path)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _passes_with_forward(_verify(preset, tmp_path / "pt"), "ViTDetBackbone", {"hidden_states"})
    src = _sam_vision_dir(transformers, torch, tmp_path)
    written = _to_preset(src, tmp_path / "written")
    _passes_with_forward(_verify(src, written), "ViTDetBackbone", {"hidden_states"})


# SAM: the encoder above (8 output channels), a prompt encoder of width 8, a two-way mask decoder of 2 blocks
def _sam_preset(keras_hub: Any, folder: Path) -> Path:
    from keras_hub.src.models.sam.sam_mask_decoder import SAMMaskDecoder
    from keras_hub.src.models.sam.sam_prompt_encoder import SAMPromptEncoder

    backbone = keras_hub.models.SAMBackbone(
        image_encoder=keras_hub.models.ViTDetBackbone(**{**_VITDET, "num_output_channels": 8}),
        prompt_encoder=SAMPromptEncoder(
            hidden_size=8, image_embedding_size=(4, 4), input_image_size=(32, 32), mask_in_channels=4
        ),
        mask_decoder=SAMMaskDecoder(
            hidden_size=8,
            num_layers=2,
            intermediate_dim=16,
            num_heads=2,
            embedding_dim=8,
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=16,
        ),
    )
    task = keras_hub.models.SAMImageSegmenter(backbone=backbone)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in task.get_weights()])
    task.save_to_preset(str(folder / "sam"))
    return folder / "sam"


def _sam_dir(transformers: Any, torch: Any, folder: Path) -> Path:
    config = transformers.SamConfig(
        vision_config={**_HF, "output_channels": 8, "num_pos_feats": 4},
        prompt_encoder_config={"hidden_size": 8, "image_size": 32, "patch_size": 8, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 8,
            "mlp_dim": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
            "layer_norm_eps": 1e-5,
        },
    )
    model = transformers.SamModel(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    model.eval().save_pretrained(folder / "hf_sam")
    return folder / "hf_sam"


def _sam_outputs(torch: Any, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """transformers' image embeddings (channels last), its three masks and their IoU scores for one foreground
    point (transformers pads a point prompt without a box with a not-a-point token)."""
    with torch.no_grad():
        embeddings = model.get_image_embeddings(_nchw(torch, (_pixels()[:1] - _MEAN) / _STD))
        out = model(
            image_embeddings=embeddings,
            input_points=torch.tensor([[[[10.0, 20.0]]]]),
            input_labels=torch.tensor([[[1]]]),
            multimask_output=True,
        )
    return embeddings.permute(0, 2, 3, 1).numpy(), out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()


def _keras_sam_outputs(task: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KerasHub's, for the same point and the not-a-point token transformers adds, given explicitly (KerasHub adds
    none): the multimask outputs are its masks 1-3."""
    out = task(
        {
            "images": _pixels()[:1],
            "points": np.array([[[10.0, 20.0], [0.0, 0.0]]], "float32"),
            "labels": np.array([[1.0, -1.0]], "float32"),
            "boxes": np.zeros((1, 0, 2, 2), "float32"),
            "masks": np.zeros((1, 0, 32, 32, 1), "float32"),
        }
    )
    embeddings = _numpy(task.backbone.image_encoder(_pixels()[:1]))
    return embeddings, _numpy(out["masks"])[0, 1:], _numpy(out["iou_pred"])[0, 1:]


def _same_sam(keras: tuple[np.ndarray, ...], torch_side: tuple[np.ndarray, ...]) -> None:
    for name, a, b in zip(("image embeddings", "masks", "iou"), keras, torch_side, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)


def test_sam_to_transformers_same_masks(transformers, torch, keras_hub, tmp_path):
    preset = _sam_preset(keras_hub, tmp_path)
    task = _loaded(keras_hub.models.ImageSegmenter.from_preset, preset)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    model, info = transformers.SamModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not any(info.values()), info
    _same_sam(_keras_sam_outputs(task), _sam_outputs(torch, model.eval()))


def test_sam_transformers_to_preset_same_masks_and_back(transformers, torch, keras_hub, tmp_path):
    src = _sam_dir(transformers, torch, tmp_path)
    model = transformers.SamModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.ImageSegmenter.from_preset, preset)
    assert type(task).__name__ == "SAMImageSegmenter"
    _same_sam(_keras_sam_outputs(task), _sam_outputs(torch, model))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    back = transformers.SamModel.from_pretrained(tmp_path / "back").state_dict()
    for key, value in model.state_dict().items():
        assert back[key].numpy().tobytes() == value.numpy().tobytes(), key


def test_sam_preset_round_trip_bit_exact(keras_hub, tmp_path):
    path = _sam_preset(keras_hub, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)


@pytest.mark.parametrize(
    ("part", "key", "value"),
    [
        ("mask_decoder_config", "layer_norm_eps", 1e-6),  # transformers' default and its published SAMs'
        ("mask_decoder_config", "attention_downsample_rate", 1),
        ("vision_config", "hidden_act", "gelu_new"),
        ("vision_config", "num_pos_feats", 8),
    ],
)
def test_sam_unwritable_transformers_config_exits_2(transformers, torch, tmp_path, part, key, value):
    src = _sam_dir(transformers, torch, tmp_path)
    config = json.loads((src / "config.json").read_text())
    config[part][key] = value
    (src / "config.json").write_text(json.dumps(config))
    assert key in _refused_as_preset(src, tmp_path / "o")


def test_sam_backbone_without_its_decoder_reports_gaps(keras_hub, tmp_path):
    """A SAMBackbone saved without its segmenter never built its mask decoder (only the task calls it), so the preset
    holds no decoder weights: the plan's gaps are reported by name (exit 1), nothing written."""
    preset = _sam_preset(keras_hub, tmp_path)
    backbone = keras_hub.models.SAMBackbone.from_config(json.loads((preset / "config.json").read_text())["config"])
    backbone.save_to_preset(str(tmp_path / "alone"))
    out = run_cli("convert", str(tmp_path / "alone"), "--to", "pytorch", "-o", str(tmp_path / "o"), code=1)
    assert "mask_decoder.iou_token.weight" in out
    assert not (tmp_path / "o").exists()
