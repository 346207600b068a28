"""KerasHub dual-tower presets (CLIP, SigLIP) <-> transformers 5, both ways: tiny models made by each library's
own code (random weights), converted by the CLI and loaded by the other library; both towers and the image-text
logits compared in fp32 (and by ``bridge verify``), round trips bit-exact, configs KerasHub cannot express refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _refused_as_preset

VOCAB, SEQ, IMAGE, PATCH = 50, 10, 8, 4


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _clip(keras_hub: Any, image: int = IMAGE) -> Any:
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=PATCH, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32, image_shape=(image, image, 3)
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=VOCAB,
        embedding_dim=16,
        hidden_dim=16,
        num_layers=3,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=SEQ,
    )
    model = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12)
    rng = np.random.default_rng(0)
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))
    # KerasHub initialises the vision position ids to zeros; its released presets hold 0..n-1, as transformers uses
    embedding = model.vision_encoder.embedding
    embedding.position_ids.assign(np.arange(embedding.num_positions)[None])
    return model


def _verified(source: Path, out: Path, backbone: str) -> None:
    """``bridge verify`` runs both models on images and token ids: the image-text logits within 1e-5."""
    from tests.families.keras_hub.test_verify_forward import _passes_with_forward, _verify

    _passes_with_forward(_verify(source, out), backbone, {"logits_per_image", "logits_per_text"})


def _numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


@pytest.mark.slow
def test_clip_preset_to_transformers_same_towers_and_logits(transformers, torch, keras_hub, tmp_path: Path):
    model = _clip(keras_hub)
    preset, out = tmp_path / "preset", tmp_path / "pt"
    model.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    assert json.loads((out / "config.json").read_text())["architectures"] == ["CLIPModel"]
    _verified(preset, out, "CLIPBackbone")
    loaded, info = transformers.CLIPModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    rng = np.random.default_rng(1)
    # the end token is the highest id (as CLIP's vocabulary has it): KerasHub pools at argmax, transformers too
    ids = rng.integers(1, VOCAB - 1, size=(2, 7)).astype("int32")
    ids[0, 4], ids[0, 5:], ids[1, 6] = VOCAB - 1, 0, VOCAB - 1  # the first row padded after its end token
    images = rng.standard_normal((2, IMAGE, IMAGE, 3)).astype("float32")
    logits = model({"token_ids": ids, "images": images})
    text, vision = _numpy(model.text_encoder({"token_ids": ids})), _numpy(model.vision_encoder({"images": images}))
    pixels = torch.tensor(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        ours = loaded(input_ids=torch.tensor(ids).long(), pixel_values=pixels)
        pooled = loaded.vision_model(pixel_values=pixels).pooler_output.numpy()
    # the real tokens (up to each row's end token); KerasHub's text tower ends with a layer norm of epsilon 1e-6
    # where transformers' one layer_norm_eps is 1e-5 (the other norms): a difference of that order
    for row, end in enumerate((4, 6)):
        np.testing.assert_allclose(
            text[row, : end + 1], ours.text_model_output.last_hidden_state[row, : end + 1], atol=5e-5
        )
    np.testing.assert_allclose(vision[:, 0], pooled, atol=1e-5)
    np.testing.assert_allclose(_numpy(logits["text_logits"]), ours.logits_per_text.numpy(), atol=1e-5)
    np.testing.assert_allclose(_numpy(logits["vision_logits"]), ours.logits_per_image.numpy(), atol=1e-5)
    # the values reach transformers' names bit-exact
    from safetensors.numpy import load_file

    saved = load_file(out / "model.safetensors")
    assert np.array_equal(saved["logit_scale"], _numpy(model.get_layer("clip_head").logit_scale))
    assert np.array_equal(saved["text_projection.weight"], _numpy(model.text_projection.kernel).T)


def test_clip_activation_transformers_lacks_exits_2(keras_hub, tmp_path: Path):
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=PATCH,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(8, 8, 3),
        intermediate_activation="softplus",
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=VOCAB, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32
    )
    preset = tmp_path / "preset"
    keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12).save_to_preset(
        str(preset)
    )
    output = run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert "intermediate_activation" in output and "softplus" in output


def _clip_config(transformers: Any, **text: Any) -> Any:
    """A tiny transformers CLIP whose towers differ in width, depth and head size."""
    return transformers.CLIPConfig(
        text_config={
            "vocab_size": VOCAB,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "max_position_embeddings": SEQ,
            "eos_token_id": 2,
            "bos_token_id": None,
            **text,
        },
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE,
            "patch_size": PATCH,
        },
        projection_dim=12,
    )


@pytest.mark.slow
def test_clip_transformers_to_preset_same_logits_and_back_bit_exact(transformers, torch, keras_hub, tmp_path: Path):
    from tests.families.keras_hub.test_preset_writer import _loaded, _same_tensors, _saved

    source = _saved(transformers.CLIPModel(_clip_config(transformers)), tmp_path / "hf", torch)
    preset, back = tmp_path / "preset", tmp_path / "back"
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    model = _loaded(keras_hub.models.CLIPBackbone.from_preset, preset)
    reference = transformers.CLIPModel.from_pretrained(source).eval()
    rng = np.random.default_rng(1)
    ids = rng.integers(1, VOCAB - 1, size=(2, 7)).astype("int32")
    ids[0, 4], ids[0, 5:], ids[1, 6] = VOCAB - 1, 0, VOCAB - 1  # padded after the end token
    images = rng.standard_normal((2, IMAGE, IMAGE, 3)).astype("float32")
    logits = model({"token_ids": ids, "images": images})
    vision = _numpy(model.vision_encoder({"images": images}))
    pixels = torch.tensor(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        ours = reference(input_ids=torch.tensor(ids).long(), pixel_values=pixels)
        pooled = reference.vision_model(pixel_values=pixels).pooler_output.numpy()
    np.testing.assert_allclose(vision[:, 0], pooled, atol=1e-5)
    np.testing.assert_allclose(_numpy(logits["vision_logits"]), ours.logits_per_image.numpy(), atol=1e-5)
    np.testing.assert_allclose(_numpy(logits["text_logits"]), ours.logits_per_text.numpy(), atol=1e-5)
    embedding = model.vision_encoder.embedding  # transformers' 0..n-1 buffer, written as KerasHub holds it
    assert np.array_equal(_numpy(embedding.position_ids), np.arange(embedding.num_positions)[None])
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(source / "model.safetensors", back / "model.safetensors")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ({"layer_norm_eps": 1e-6}, "layer_norm_eps"),
        ({"hidden_act": "gelu_new"}, "hidden_act"),
        ({"eos_token_id": 7}, "eos_token_id"),
    ],
)
def test_clip_config_keras_hub_cannot_express_exits_2(transformers, torch, tmp_path: Path, text, named):
    from tests.families.keras_hub.test_preset_writer import _saved

    source = _saved(transformers.CLIPModel(_clip_config(transformers, **text)), tmp_path / "hf", torch)
    out = _refused_as_preset(source, tmp_path / "kh")
    assert named in out


def _siglip(keras_hub: Any) -> Any:
    """A tiny KerasHub SigLIP whose towers differ in width, depth and head size, every weight random."""
    vision = keras_hub.models.SigLIPVisionEncoder(
        patch_size=PATCH, hidden_dim=24, num_layers=2, num_heads=2, intermediate_dim=32, image_shape=(IMAGE, IMAGE, 3)
    )
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=VOCAB,
        embedding_dim=16,
        hidden_dim=16,
        num_layers=3,
        num_heads=4,
        intermediate_dim=32,
        max_sequence_length=SEQ,
        projection_dim=24,  # the vision tower's width: the head compares them
    )
    model = keras_hub.models.SigLIPBackbone(vision_encoder=vision, text_encoder=text)
    rng = np.random.default_rng(0)
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))
    return model


def _siglip_outputs(model: Any, reference: Any, torch: Any) -> tuple[dict[str, np.ndarray], Any, Any]:
    """KerasHub's and transformers' outputs on one batch of token ids (every row its full length: both pool the
    last token) and images, and transformers' pooled image."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, VOCAB, size=(2, SEQ)).astype("int32")
    images = rng.standard_normal((2, IMAGE, IMAGE, 3)).astype("float32")
    ours = {k: _numpy(v) for k, v in model({"token_ids": ids, "images": images}).items()}
    ours["pooled"] = _numpy(model.vision_encoder({"images": images}))
    ours["text"] = _numpy(model.text_encoder({"token_ids": ids}))
    pixels = torch.tensor(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        theirs = reference(input_ids=torch.tensor(ids).long(), pixel_values=pixels)
        pooled = reference.vision_model(pixel_values=pixels).pooler_output
    return ours, theirs, pooled


def _same_siglip(ours: dict[str, np.ndarray], theirs: Any, pooled: Any) -> None:
    np.testing.assert_allclose(ours["pooled"], pooled.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["text"], theirs.text_model_output.pooler_output.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["vision_logits"], theirs.logits_per_image.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["text_logits"], theirs.logits_per_text.numpy(), atol=1e-5)


@pytest.mark.slow
def test_siglip_preset_to_transformers_and_back_same_logits(transformers, torch, keras_hub, tmp_path: Path):
    model = _siglip(keras_hub)
    preset, out, back = tmp_path / "preset", tmp_path / "pt", tmp_path / "back"
    model.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    loaded, info = transformers.SiglipModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    _same_siglip(*_siglip_outputs(model, loaded.eval(), torch))
    run_cli("convert", str(out), "--to", "tensorflow", "--target", "keras-hub", "-o", str(back))
    import h5py

    with h5py.File(preset / "model.weights.h5") as a, h5py.File(back / "model.weights.h5") as b:
        names: list[str] = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:  # every variable, the position ids (written 0..n-1) too
            assert a[name].dtype == b[name].dtype and a[name][()].tobytes() == b[name][()].tobytes(), name


@pytest.mark.slow
def test_siglip_transformers_to_preset_same_logits_and_back_bit_exact(transformers, torch, keras_hub, tmp_path: Path):
    from tests.families.keras_hub.test_preset_writer import _loaded, _same_tensors, _saved

    config = transformers.SiglipConfig(
        text_config={
            "vocab_size": VOCAB,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "max_position_embeddings": SEQ,
            "projection_size": 24,
        },
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE,
            "patch_size": PATCH,
        },
    )
    source = _saved(transformers.SiglipModel(config), tmp_path / "hf", torch)
    preset, back = tmp_path / "preset", tmp_path / "back"
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    model = _loaded(keras_hub.models.SigLIPBackbone.from_preset, preset)
    _verified(source, preset, "SigLIPBackbone")
    _same_siglip(*_siglip_outputs(model, transformers.SiglipModel.from_pretrained(source).eval(), torch))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(source / "model.safetensors", back / "model.safetensors")


_TINY = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}


def test_siglip_without_its_attention_head_exits_2(transformers, torch, tmp_path: Path):
    from tests.families.keras_hub.test_preset_writer import _saved

    config = transformers.SiglipConfig(
        text_config={"vocab_size": VOCAB, **_TINY},
        vision_config={**_TINY, "image_size": IMAGE, "patch_size": PATCH, "vision_use_head": False},
    )
    source = _saved(transformers.SiglipModel(config), tmp_path / "hf", torch)
    out = _refused_as_preset(source, tmp_path / "kh")
    assert "vision_use_head" in out


_WORDS = ["h", "e", "l", "o", "w", "r", "d", "!", "o</w>", "d</w>", "!</w>", "he", "ll", "hell", "hello</w>"]
_MERGES = ["h e", "l l", "he ll", "hell o</w>", "w o", "wo r", "wor l", "worl d</w>"]


@pytest.mark.slow
def test_clip_bpe_vocabulary_both_ways_same_ids(transformers, torch, keras_hub, tmp_path: Path):
    """transformers' CLIPTokenizer files -> the preset's assets KerasHub's CLIPTokenizer reads -> the same files."""
    from tests.families.keras_hub.test_preset_writer import _saved

    source = _saved(transformers.CLIPModel(_clip_config(transformers)), tmp_path / "hf", torch)
    words = ["<|startoftext|>", "<|endoftext|>", *_WORDS, "wo", "wor", "worl", "world</w>"]
    (source / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (source / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    transformers.CLIPTokenizer(str(source / "vocab.json"), str(source / "merges.txt")).save_pretrained(source)
    preset, back = tmp_path / "preset", tmp_path / "back"
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    text = "hello world!"
    theirs = transformers.AutoTokenizer.from_pretrained(source)(text)["input_ids"]
    ours = _numpy(keras_hub.models.CLIPTokenizer.from_preset(str(preset))(text)).tolist()
    assert ours == theirs[1:-1] == [words.index(w) for w in ("hello</w>", "world</w>", "!</w>")]  # less start, end
    assert transformers.AutoTokenizer.from_pretrained(back)(text)["input_ids"] == theirs
    for name in ("vocab.json", "merges.txt"):
        assert (back / name).read_bytes() == (source / name).read_bytes(), name


def test_siglip_activation_transformers_lacks_exits_2(keras_hub, tmp_path: Path):
    vision = keras_hub.models.SigLIPVisionEncoder(
        patch_size=PATCH,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(IMAGE, IMAGE, 3),
        intermediate_activation="softplus",
    )
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=VOCAB, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32
    )
    preset = tmp_path / "preset"
    keras_hub.models.SigLIPBackbone(vision_encoder=vision, text_encoder=text).save_to_preset(str(preset))
    output = run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert "intermediate_activation" in output and "softplus" in output
