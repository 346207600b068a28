"""Gemma 3 with its vision tower <-> transformers ``gemma3``, both ways: the vision tower + projector's image
embeddings and the language model's logits on a padded text-only batch agree, round trips are bit-exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _refused_as_preset, _same_tensors, _saved, _to_preset

_IDS = np.array([[2, 10, 11, 12, 13, 14], [2, 20, 21, 0, 0, 0]], dtype="int32")
_LENGTHS = (6, 3)
_MASK = (np.arange(6)[None] < np.array(_LENGTHS)[:, None]).astype("int32")
_IMAGES = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _gemma3_preset(keras_hub: Any, folder: Path) -> Path:
    from keras_hub.src.models.gemma3.gemma3_vision_encoder import Gemma3VisionEncoder

    encoder = Gemma3VisionEncoder(
        image_size=16, patch_size=4, num_heads=2, hidden_dim=8, num_layers=2, intermediate_dim=16, output_dim=16,
        pool_size=2,
    )  # fmt: skip
    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=64, image_size=16, num_layers=2, num_query_heads=2, num_key_value_heads=1, hidden_dim=16,
        intermediate_dim=32, head_dim=8, vision_encoder=encoder, use_post_ffw_norm=True, use_post_attention_norm=True,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    for v in backbone.weights:  # zero biases and unit norms would hide a misplaced variable
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=None).save_to_preset(str(folder))
    return folder


def _gemma3_transformers(transformers: Any, torch: Any, folder: Path) -> Path:
    text = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "query_pre_attn_scalar": 8}  # fmt: skip
    vision = {"image_size": 16, "patch_size": 4, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
              "num_attention_heads": 2}  # fmt: skip
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    return _saved(transformers.Gemma3ForConditionalGeneration(config), folder, torch)


_KERAS_OUTPUTS = """
import sys, numpy as np, keras, keras_hub
preset, arrays = sys.argv[1], np.load(sys.argv[2])
task = keras_hub.models.Gemma3CausalLM.from_preset(preset, preprocessor=None)
images = arrays["images"]
none = images[:0].reshape(len(images), 0, *images.shape[1:])
text_only = {"token_ids": arrays["ids"], "padding_mask": arrays["mask"], "images": none,
             "vision_indices": np.zeros((len(images), 0), "int32"), "vision_mask": np.zeros_like(arrays["ids"])}
np.savez(sys.argv[3], image=keras.ops.convert_to_numpy(task.backbone.vision_encoder(images[:, None])),
         logits=keras.ops.convert_to_numpy(task(text_only)))
"""


def _keras_outputs(preset: Path, folder: Path) -> Any:
    """KerasHub's image embeddings and text-only logits, on the torch backend (its TensorFlow path refuses a
    batch without images), in a process of their own."""
    import os
    import subprocess
    import sys

    np.savez(folder / "in.npz", images=_IMAGES, ids=_IDS, mask=_MASK)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    cmd = [sys.executable, "-c", _KERAS_OUTPUTS, str(preset), str(folder / "in.npz"), str(folder / "out.npz")]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return np.load(folder / "out.npz")


def _same_outputs(transformers: Any, torch: Any, preset: Path, hf: Path) -> None:
    model = transformers.Gemma3ForConditionalGeneration.from_pretrained(hf).eval()
    with torch.no_grad():
        pixels = torch.tensor(_IMAGES).permute(0, 3, 1, 2)
        theirs = model.model.get_image_features(pixel_values=pixels).pooler_output.numpy()
        logits = model(input_ids=torch.tensor(_IDS).long(), attention_mask=torch.tensor(_MASK)).logits.numpy()
    ours = _keras_outputs(preset, preset.parent)
    np.testing.assert_allclose(ours["image"].reshape(theirs.shape), theirs, atol=1e-5)
    for row, n in enumerate(_LENGTHS):  # the real tokens
        np.testing.assert_allclose(ours["logits"][row, :n], logits[row, :n], atol=1e-5)


@pytest.mark.slow
def test_gemma3_vision_preset_to_transformers_and_back(transformers, torch, keras_hub, tmp_path):
    preset = _gemma3_preset(keras_hub, tmp_path / "preset")
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    assert json.loads((tmp_path / "pt" / "config.json").read_text())["model_type"] == "gemma3"
    _same_outputs(transformers, torch, preset, tmp_path / "pt")
    _same_tensors(preset, _to_preset(tmp_path / "pt", tmp_path / "again"))


@pytest.mark.slow
def test_gemma3_vision_transformers_to_preset_and_back(transformers, torch, keras_hub, tmp_path):
    hf = _gemma3_transformers(transformers, torch, tmp_path / "hf")
    preset = _to_preset(hf, tmp_path / "preset")
    _same_outputs(transformers, torch, preset, hf)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _same_tensors(preset, _to_preset(tmp_path / "pt", tmp_path / "again"))


def test_gemma3_vision_unwritable_pooling_exits_2(transformers, torch, tmp_path):
    hf = _gemma3_transformers(transformers, torch, tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps({**config, "mm_tokens_per_image": 3}))
    out = _refused_as_preset(hf, tmp_path / "o")
    assert "mm_tokens_per_image" in out


@pytest.mark.slow
def test_gemma3_vision_weights_match_keras_hubs_importer(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer reads transformers 4's ``vision_tower.vision_model.`` names (transformers 5 saves
    ``vision_tower.``: it fails there) and fixes ``pool_size`` at 4; on a model it can read, with 4 patches pooled a
    side, its weights are bridge's, bit for bit."""
    from safetensors.torch import load_file, save_file

    text = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "query_pre_attn_scalar": 8}  # fmt: skip
    vision = {"image_size": 32, "patch_size": 4, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
              "num_attention_heads": 2, "vision_use_head": False}  # fmt: skip
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    hf = _saved(transformers.Gemma3ForConditionalGeneration(config), tmp_path / "hf", torch)
    ours = keras_hub.models.Backbone.from_preset(str(_to_preset(hf, tmp_path / "preset")))
    old = tmp_path / "hf_v4_names"
    old.mkdir()
    (old / "config.json").write_text((hf / "config.json").read_text())
    tensors = load_file(hf / "model.safetensors")
    renamed = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in tensors.items()}
    save_file(renamed, old / "model.safetensors", metadata={"format": "pt"})
    theirs = keras_hub.models.Backbone.from_preset(str(old))
    assert [w.path for w in theirs.weights] == [w.path for w in ours.weights]
    for a, b in zip(theirs.weights, ours.weights, strict=True):
        assert np.asarray(a.numpy()).tobytes() == np.asarray(b.numpy()).tobytes(), a.path
