"""PaliGemma <-> transformers ``paligemma``, both ways: the vision tower + projector's image embeddings and the
logits of an image + prompt + response batch (padded; the prompt attended bidirectionally, the response causally)
agree, round trips are bit-exact; KerasHub's own importer is compared with bridge on a tiny transformers model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _loaded, _refused_as_preset, _same_tensors, _saved, _to_preset

_IDS = np.array([[2, 10, 11, 12, 13, 14], [2, 20, 21, 22, 0, 0]], dtype="int32")
_LENGTHS = (6, 4)
_MASK = (np.arange(6)[None] < np.array(_LENGTHS)[:, None]).astype("int32")
_RESPONSE = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], dtype="int32")  # the rest: the prompt
_IMAGES = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
_PATCHES = 16  # (16 / 4) ** 2
_TEXT = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}  # fmt: skip
_VISION = {"image_size": 16, "patch_size": 4, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2,
           "num_attention_heads": 2}  # fmt: skip


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _paligemma_preset(keras_hub: Any, folder: Path) -> Path:
    backbone = keras_hub.models.PaliGemmaBackbone(
        vocabulary_size=64, image_size=16, num_layers=2, num_query_heads=2, num_key_value_heads=1, hidden_dim=16,
        intermediate_dim=32, head_dim=8, vit_patch_size=4, vit_num_heads=2, vit_hidden_dim=8, vit_num_layers=2,
        vit_intermediate_dim=12,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    for v in backbone.weights:  # zero biases and unit norms would hide a misplaced variable
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    keras_hub.models.PaliGemmaCausalLM(backbone=backbone, preprocessor=None).save_to_preset(str(folder))
    return folder


def _paligemma_transformers(transformers: Any, torch: Any, folder: Path, **config: Any) -> Path:
    pali = transformers.PaliGemmaConfig(
        text_config={"model_type": "gemma", **_TEXT}, vision_config=_VISION, image_token_index=64, projection_dim=16,
        **config,
    )  # fmt: skip
    return _saved(transformers.PaliGemmaForConditionalGeneration(pali), folder, torch)


def _same_outputs(transformers: Any, torch: Any, keras_hub: Any, preset: Path, hf: Path) -> None:
    model = transformers.PaliGemmaForConditionalGeneration.from_pretrained(hf).eval()
    image_token = model.config.image_token_id
    prefix = np.ones((2, _PATCHES), "int64")
    with torch.no_grad():
        pixels = torch.tensor(_IMAGES).permute(0, 3, 1, 2)
        theirs = model.model.get_image_features(pixel_values=pixels).pooler_output.numpy()
        logits = model(
            input_ids=torch.tensor(np.concatenate([prefix * image_token, _IDS], 1)),
            pixel_values=pixels,
            attention_mask=torch.tensor(np.concatenate([prefix, _MASK], 1)),
            token_type_ids=torch.tensor(np.concatenate([prefix * 0, _RESPONSE], 1)),
        ).logits.numpy()[:, _PATCHES:]
    task = _loaded(lambda p: keras_hub.models.PaliGemmaCausalLM.from_preset(p, preprocessor=None), preset)
    image = np.asarray(task.backbone.vit_encoder(_IMAGES))
    ours = np.asarray(task({"images": _IMAGES, "token_ids": _IDS, "padding_mask": _MASK, "response_mask": _RESPONSE}))
    np.testing.assert_allclose(image, theirs, atol=1e-5)
    # random weights of 0.5 drive the residual stream past 20 and the logits to about 9: fp32 rounding alone leaves
    # about 3e-6 of their scale between the libraries (the same on KerasHub's torch backend)
    scale = max(1.0, float(np.abs(logits).max()))
    for row, n in enumerate(_LENGTHS):  # the real tokens
        np.testing.assert_allclose(ours[row, :n], logits[row, :n], atol=1e-5 * scale)


@pytest.mark.slow
def test_paligemma_preset_to_transformers_and_back(transformers, torch, keras_hub, tmp_path):
    preset = _paligemma_preset(keras_hub, tmp_path / "preset")
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    assert json.loads((tmp_path / "pt" / "config.json").read_text())["model_type"] == "paligemma"
    _same_outputs(transformers, torch, keras_hub, preset, tmp_path / "pt")
    _same_tensors(preset, _to_preset(tmp_path / "pt", tmp_path / "again"))


@pytest.mark.slow
def test_paligemma_transformers_to_preset_and_back(transformers, torch, keras_hub, tmp_path):
    hf = _paligemma_transformers(transformers, torch, tmp_path / "hf")
    preset = _to_preset(hf, tmp_path / "preset")
    _same_outputs(transformers, torch, keras_hub, preset, hf)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _same_tensors(preset, _to_preset(tmp_path / "pt", tmp_path / "again"))


def test_paligemma_unwritable_vision_activation_exits_2(transformers, torch, tmp_path):
    hf = _paligemma_transformers(transformers, torch, tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    config["vision_config"]["hidden_act"] = "relu"
    (hf / "config.json").write_text(json.dumps(config))
    out = _refused_as_preset(hf, tmp_path / "o")
    assert "hidden_act" in out


@pytest.mark.slow
def test_paligemma_weights_match_keras_hubs_importer(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer reads transformers 4's ``vision_tower.vision_model.`` names (transformers 5 saves
    ``vision_tower.``), takes ``head_dim`` from ``text_config.num_image_tokens`` (transformers' ``head_dim`` is its
    own key: the importer builds another backbone wherever they differ) and cuts the embeddings to
    ``image_token_index`` rows (bridge keeps every row, whose logits transformers computes).  On a model it can read
    (head_dim = num_image_tokens = 16, image_token_index = vocab_size), its weights are bridge's, bit for bit."""
    from safetensors.torch import load_file, save_file

    pali = transformers.PaliGemmaConfig(
        text_config={"model_type": "gemma", **_TEXT, "head_dim": 16}, vision_config=_VISION, image_token_index=64,
        projection_dim=16,
    )  # fmt: skip
    hf = _saved(transformers.PaliGemmaForConditionalGeneration(pali), tmp_path / "hf", torch)
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


# MetaCLIP 2 <-> transformers ``metaclip_2``: the image-text logits and the pooled image agree, round trips bit-exact
_EOS = 2  # KerasHub's MetaCLIP 2 pools the text at the first token 2


def _metaclip_preset(keras_hub: Any, folder: Path) -> Path:
    from keras_hub.src.models.metaclip_2.metaclip_2_text_encoder import MetaCLIP2TextEncoder
    from keras_hub.src.models.metaclip_2.metaclip_2_vision_encoder import MetaCLIP2VisionEncoder

    vision = MetaCLIP2VisionEncoder(
        patch_size=4, hidden_dim=8, num_layers=2, num_heads=2, intermediate_dim=16, image_shape=(16, 16, 3)
    )
    text = MetaCLIP2TextEncoder(
        vocabulary_size=64, embedding_dim=12, hidden_dim=12, num_layers=3, num_heads=3, intermediate_dim=16,
        max_sequence_length=12,
    )  # fmt: skip
    backbone = keras_hub.models.MetaCLIP2Backbone(vision_encoder=vision, text_encoder=text, projection_dim=6)
    rng = np.random.default_rng(1)
    for v in backbone.weights:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    backbone.save_to_preset(str(folder))
    return folder


def _metaclip_transformers(transformers: Any, torch: Any, folder: Path, eos: int = _EOS) -> Path:
    text = {"vocab_size": 64, "hidden_size": 12, "intermediate_size": 16, "num_hidden_layers": 3,
            "num_attention_heads": 3, "max_position_embeddings": 12, "eos_token_id": eos,
            "bos_token_id": None}  # fmt: skip
    vision = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 16, "patch_size": 4}  # fmt: skip
    config = transformers.MetaClip2Config(text_config=text, vision_config=vision, projection_dim=6)
    return _saved(transformers.MetaClip2Model(config), folder, torch)


def _same_metaclip(transformers: Any, torch: Any, keras_hub: Any, preset: Path, hf: Path) -> None:
    model = transformers.MetaClip2Model.from_pretrained(hf).eval()
    ids = np.array([[5, 9, 7, _EOS, 0, 0, 0], [6, 8, 10, 11, 12, 13, _EOS]], dtype="int32")  # padded after the end
    images = _IMAGES
    backbone = _loaded(keras_hub.models.MetaCLIP2Backbone.from_preset, preset)
    ours = backbone({"token_ids": ids, "images": images})
    pixels = torch.tensor(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(ids).long(), pixel_values=pixels)
        pooled = model.vision_model(pixel_values=pixels).pooler_output.numpy()  # the class token, post-normed
    np.testing.assert_allclose(np.asarray(ours["vision_logits"]), theirs.logits_per_image.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours["text_logits"]), theirs.logits_per_text.numpy(), atol=1e-5)
    encoded = backbone.vision_encoder({"images": images})
    mine = np.asarray(backbone.vision_post_layer_norm(np.asarray(encoded)[:, 0]))
    np.testing.assert_allclose(mine, pooled, atol=1e-5)


@pytest.mark.slow
def test_metaclip2_preset_to_transformers_and_back(transformers, torch, keras_hub, tmp_path):
    preset = _metaclip_preset(keras_hub, tmp_path / "preset")
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    assert json.loads((tmp_path / "pt" / "config.json").read_text())["architectures"] == ["MetaClip2Model"]
    _same_metaclip(transformers, torch, keras_hub, preset, tmp_path / "pt")
    _same_tensors(preset, _to_preset(tmp_path / "pt", tmp_path / "again"))


@pytest.mark.slow
def test_metaclip2_transformers_to_preset_and_back(transformers, torch, keras_hub, tmp_path):
    hf = _metaclip_transformers(transformers, torch, tmp_path / "hf")
    preset = _to_preset(hf, tmp_path / "preset")
    _same_metaclip(transformers, torch, keras_hub, preset, hf)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    _same_tensors(hf / "model.safetensors", tmp_path / "pt" / "model.safetensors")


def test_metaclip2_other_end_token_exits_2(transformers, torch, tmp_path):
    hf = _metaclip_transformers(transformers, torch, tmp_path / "hf", eos=63)
    out = _refused_as_preset(hf, tmp_path / "o")
    assert "eos_token_id" in out


@pytest.mark.slow
def test_metaclip2_weights_match_keras_hubs_importer(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own MetaCLIP 2 importer reads the names transformers 5 saves; its weights are bridge's, bit for
    bit, in the same order (its encoders' layers are named otherwise: ``embedding/`` for
    ``meta_clip2_vision_encoder_embedding/``)."""
    hf = _metaclip_transformers(transformers, torch, tmp_path / "hf")
    ours = keras_hub.models.Backbone.from_preset(str(_to_preset(hf, tmp_path / "preset")))
    theirs = keras_hub.models.Backbone.from_preset(str(hf))
    assert len(theirs.weights) == len(ours.weights)
    for a, b in zip(theirs.weights, ours.weights, strict=True):
        assert np.asarray(a.numpy()).tobytes() == np.asarray(b.numpy()).tobytes(), a.path


def test_paligemma2_preset_exits_2(keras_hub, tmp_path):
    """A Gemma 2 language model (PaliGemma 2: post norms, soft caps) is refused, naming what it holds."""
    backbone = keras_hub.models.PaliGemmaBackbone(
        vocabulary_size=64, image_size=16, num_layers=1, num_query_heads=2, num_key_value_heads=1, hidden_dim=16,
        intermediate_dim=32, head_dim=8, vit_patch_size=4, vit_num_heads=2, vit_hidden_dim=8, vit_num_layers=1,
        vit_intermediate_dim=12, use_post_ffw_norm=True, use_post_attention_norm=True,
    )  # fmt: skip
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert "Gemma 2" in out and "PaliGemmaBackbone" in out
