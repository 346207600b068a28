"""KerasHub encoder families ESM-2, FNet and XLNet, both ways: tiny models made by each library's own code with random
weights, converted by the CLI, loaded by the other library with nothing missing; forwards on a padded batch within
1e-5 on the real tokens; round trips bit-exact; configs the backbone cannot express refused (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _loaded, _refused_as_preset, _same_tensors, _saved, _to_preset
from tests.families.keras_hub.test_presets import _numpy, _randomized

# ESM-2 pads with id 1 (its <pad>).  KerasHub's ESMBackbone masks the keys that hold it on the torch backend only:
# on TensorFlow its mask [batch, 1, seq, 1] masks queries instead, so padded rows are compared on the torch backend
# (a subprocess), unpadded rows here.
ESM_IDS = np.array([[0, 7, 9, 11, 2, 1, 1, 1], [0, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")
ESM_MASK = (ESM_IDS != 1).astype("int32")
FULL = ESM_MASK.all(axis=1)
_ESM_SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "pad_token_id": 1}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _pt(torch: Any, ids: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    return {"input_ids": torch.tensor(ids).long(), "attention_mask": torch.tensor(mask).long()}


def _torch_backend_hidden(preset: Path, folder: Path) -> np.ndarray:
    """The preset's backbone on ``ESM_IDS``, run by KerasHub on the torch backend in a process of its own."""
    import os
    import subprocess
    import sys

    out = folder / "hidden.npy"
    script = (
        "import sys, numpy as np, keras, keras_hub; "
        "b = keras_hub.models.Backbone.from_preset(sys.argv[1]); "
        "np.save(sys.argv[2], keras.ops.convert_to_numpy(b({'token_ids': np.load(sys.argv[3])})))"
    )
    np.save(folder / "ids.npy", ESM_IDS)
    env = os.environ | {"KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, "-c", script, str(preset), str(out), str(folder / "ids.npy")], env=env, check=True)
    return np.load(out)


def _state(model: Any) -> dict[str, bytes]:
    return {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("pre_norm", (True, False))
@pytest.mark.slow
def test_esm_preset_to_transformers_same_hidden_states(transformers, torch, keras_hub, pre_norm, tmp_path):
    """Rotary frequencies computed, the pooler and contact head (KerasHub has none) zeros; back bit-exact."""
    backbone = _randomized(keras_hub.models.ESMBackbone(vocabulary_size=33, use_pre_layer_norm=pre_norm, **_ESM_SIZES))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.EsmModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    assert not model.contact_head.regression.weight.detach().numpy().any()
    with torch.no_grad():
        hidden = model.eval()(**_pt(torch, ESM_IDS, ESM_MASK))[0].numpy()
    expected = _numpy(backbone({"token_ids": ESM_IDS}))
    np.testing.assert_allclose(hidden[FULL], expected[FULL], atol=1e-5)
    padded = _torch_backend_hidden(tmp_path / "preset", tmp_path)
    np.testing.assert_allclose(hidden[ESM_MASK == 1], padded[ESM_MASK == 1], atol=1e-5)
    again = _to_preset(out, tmp_path / "again")
    _same_tensors(tmp_path / "preset", again)


def _pt_esm(transformers: Any, torch: Any, folder: Path, **config: Any) -> tuple[Path, Any]:
    settings = {
        "vocab_size": 33,
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "pad_token_id": 1,
        "mask_token_id": 32,
        "position_embedding_type": "rotary",
        "emb_layer_norm_before": False,
        "token_dropout": False,
    }
    model = transformers.EsmModel(transformers.EsmConfig(**(settings | config)))
    return _saved(model, folder, torch), model


@pytest.mark.slow
def test_esm_transformers_to_preset_same_hidden_states(transformers, torch, keras_hub, tmp_path):
    """transformers 5's saved names (``LayerNorm.gamma``, the rotary buffer under ``*``) read; the pooler and contact
    head dropped as expected; back to transformers, every tensor bit-exact (the rotary buffer recomputed)."""
    src, model = _pt_esm(transformers, torch, tmp_path / "hf", emb_layer_norm_before=True)
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == "ESMBackbone"
    with torch.no_grad():
        hidden = model(**_pt(torch, ESM_IDS, ESM_MASK))[0].numpy()
    got = _numpy(backbone({"token_ids": ESM_IDS}))
    np.testing.assert_allclose(got[FULL], hidden[FULL], atol=1e-5)
    assert not np.allclose(got[~FULL][ESM_MASK[~FULL] == 1], hidden[~FULL][ESM_MASK[~FULL] == 1], atol=1e-3)
    padded = _torch_backend_hidden(preset, tmp_path)
    np.testing.assert_allclose(padded[ESM_MASK == 1], hidden[ESM_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    again = transformers.EsmModel.from_pretrained(back)
    kept = {k: v for k, v in _state(model).items() if not k.startswith(("pooler.", "contact_head."))}
    assert {k: v for k, v in _state(again).items() if k in kept} == kept


@pytest.mark.slow
def test_esm_keras_hub_importer_agrees(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own importer (convert_esm.py) cannot read transformers 5's save_pretrained (its ``LayerNorm.gamma``
    names); on the transformers directory bridge writes it reads the same weights as bridge's preset holds."""
    src, _ = _pt_esm(transformers, torch, tmp_path / "hf", emb_layer_norm_before=True)
    with pytest.raises(Exception, match="LayerNorm.weight"):
        keras_hub.models.Backbone.from_preset(str(src))
    preset = _to_preset(src, tmp_path / "preset")
    out = tmp_path / "pt"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    mine = keras_hub.models.Backbone.from_preset(str(preset))
    theirs = keras_hub.models.Backbone.from_preset(str(out))
    for a, b in zip(mine.weights, theirs.weights, strict=True):
        assert _numpy(a).tobytes() == _numpy(b).tobytes(), a.path


def test_esm_token_dropout_noted_and_absolute_refused(transformers, torch, tmp_path):
    """token_dropout (transformers rescales the embeddings; KerasHub does not): a note; an absolute position table
    (read a row apart by the two libraries): exit 2 naming the key."""
    src, _ = _pt_esm(transformers, torch, tmp_path / "hf", token_dropout=True)
    assert "token_dropout" in run_cli("check", str(src), "--to", "tensorflow", "--target", "keras-hub")
    absolute, _ = _pt_esm(transformers, torch, tmp_path / "abs", position_embedding_type="absolute")
    out = _refused_as_preset(absolute, tmp_path / "o")
    assert "position_embedding_type" in out and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_esm_verify_runs_the_forward(transformers, torch, keras_hub, tmp_path):
    """``bridge verify PRESET DIR`` runs both forwards on a padded batch: it passes on the torch backend and, on
    TensorFlow, finds KerasHub's query-side padding mask (the real tokens attend to padding there)."""
    import os
    import subprocess
    import sys

    backbone = _randomized(keras_hub.models.ESMBackbone(vocabulary_size=33, **_ESM_SIZES))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    command = [sys.executable, "-m", "bridge", "verify", str(tmp_path / "preset"), str(out)]
    env = os.environ | {"KERAS_BACKEND": "torch"}
    on_torch = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert on_torch.returncode == 0, on_torch.stdout + on_torch.stderr
    assert "forward hidden_states" in on_torch.stdout and "(torch backend)" in on_torch.stdout
    on_tensorflow = run_cli("verify", str(tmp_path / "preset"), str(out), code=1)
    assert "hidden_states" in on_tensorflow and "FAIL" in on_tensorflow


# FNet's <pad> is 3; neither library masks padding (Fourier mixing runs over every position), so every token agrees.
FNET_IDS = np.array([[1, 7, 9, 11, 2, 3, 3, 3], [1, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")
_FNET_SIZES = {"num_layers": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}


def _fnet_inputs(torch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    segments = np.zeros_like(FNET_IDS)
    segments[:, 4:] = 1
    keras = {"token_ids": FNET_IDS, "segment_ids": segments}
    return keras, {"input_ids": torch.tensor(FNET_IDS).long(), "token_type_ids": torch.tensor(segments).long()}


@pytest.mark.slow
def test_fnet_classifier_preset_to_transformers_and_back(transformers, torch, keras_hub, tmp_path):
    """Logits and hidden states of every token (segments fed), back to a preset bit-exact, bridge verify passes."""
    backbone = keras_hub.models.FNetBackbone(vocabulary_size=30, **_FNET_SIZES)
    task = _randomized(keras_hub.models.FNetTextClassifier(backbone, 3, preprocessor=None))
    task.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.FNetForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    keras_in, pt_in = _fnet_inputs(torch)
    with torch.no_grad():
        logits = model.eval()(**pt_in).logits.numpy()
        hidden = model.fnet(**pt_in)[0].numpy()
    np.testing.assert_allclose(logits, _numpy(task(keras_in, training=False)), atol=1e-5)
    np.testing.assert_allclose(hidden, _numpy(task.backbone(keras_in)["sequence_output"]), atol=1e-5)
    _same_tensors(tmp_path / "preset", _to_preset(out, tmp_path / "again"))
    report = run_cli("verify", str(tmp_path / "preset"), str(out))
    assert "forward logits" in report and "forward hidden_states" in report and "verdict: PASS" in report


@pytest.mark.slow
def test_fnet_transformers_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    config = transformers.FNetConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=3,
    )
    model = transformers.FNetForSequenceClassification(config)
    src = _saved(model, tmp_path / "hf", torch)
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.FNetTextClassifier.from_preset, preset)
    keras_in, pt_in = _fnet_inputs(torch)
    with torch.no_grad():
        logits = model(**pt_in).logits.numpy()
    np.testing.assert_allclose(_numpy(task(keras_in, training=False)), logits, atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


def test_fnet_exact_gelu_refused(transformers, torch, tmp_path):
    config = transformers.FNetConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, intermediate_size=16, hidden_act="gelu"
    )
    src = _saved(transformers.FNetModel(config), tmp_path / "hf", torch)
    out = _refused_as_preset(src, tmp_path / "o")
    assert "hidden_act" in out and not (tmp_path / "o").exists()


# XLNet's <pad> is 5.  KerasHub reshapes its [batch, seq] padding mask to [seq, batch] (no transpose): one padded
# row at a time is masked as transformers masks it; a batch of rows padded unalike is not (shown below).
XLNET_IDS = np.array([[1, 7, 9, 11, 2, 5, 5, 5], [1, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")
XLNET_MASK = (XLNET_IDS != 5).astype("int32")
XLNET_SEGMENTS = np.array([[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]], dtype="int32")


def _xlnet_rows(torch: Any, model: Any, backbone: Any, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """transformers' and KerasHub's last hidden states of the real tokens of ``rows``."""
    ids, mask, segments = XLNET_IDS[rows], XLNET_MASK[rows], XLNET_SEGMENTS[rows]
    with torch.no_grad():
        pt = model.eval()(
            input_ids=torch.tensor(ids).long(),
            attention_mask=torch.tensor(mask).long(),
            token_type_ids=torch.tensor(segments).long(),
        )[0].numpy()
    keras = _numpy(backbone({"token_ids": ids, "padding_mask": mask, "segment_ids": segments}))
    return pt[mask == 1], keras[mask == 1]


def _xlnet_agrees(torch: Any, model: Any, backbone: Any) -> None:
    for row in (0, 1):  # the padded row and the full one, each a batch of its own
        np.testing.assert_allclose(*_xlnet_rows(torch, model, backbone, [row]), atol=1e-5)
    assert not np.allclose(*_xlnet_rows(torch, model, backbone, [0, 1]), atol=1e-3)  # KerasHub's reshaped mask


_XLNET_SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}


@pytest.mark.slow
def test_xlnet_preset_to_transformers_and_back(transformers, torch, keras_hub, tmp_path):
    backbone = _randomized(keras_hub.models.XLNetBackbone(vocabulary_size=30, **_XLNET_SIZES))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.XLNetModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    _xlnet_agrees(torch, model, backbone)
    _same_tensors(tmp_path / "preset", _to_preset(out, tmp_path / "again"))
    report = run_cli("verify", str(tmp_path / "preset"), str(out), code=1)  # its padded batch meets the reshape
    assert "forward hidden_states" in report and "segment_ids" in report


def _pt_xlnet(transformers: Any, torch: Any, folder: Path, **config: Any) -> tuple[Path, Any]:
    settings = {"vocab_size": 30, "d_model": 8, "n_layer": 2, "n_head": 2, "d_inner": 16, "mem_len": None}
    model = transformers.XLNetModel(transformers.XLNetConfig(**(settings | config)))
    return _saved(model, folder, torch), model


@pytest.mark.slow
def test_xlnet_transformers_to_preset_and_back(transformers, torch, keras_hub, tmp_path):
    src, model = _pt_xlnet(transformers, torch, tmp_path / "hf")
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == "XLNetBackbone"
    _xlnet_agrees(torch, model, backbone)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


@pytest.mark.parametrize(("key", "value"), (("attn_type", "uni"), ("bi_data", True), ("clamp_len", 4)))
def test_xlnet_settings_keras_hub_lacks_refused(transformers, torch, key, value, tmp_path):
    src, _ = _pt_xlnet(transformers, torch, tmp_path / "hf", **{key: value})
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out and not (tmp_path / "o").exists()
