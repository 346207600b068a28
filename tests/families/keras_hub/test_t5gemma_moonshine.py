"""T5Gemma both ways: tiny ``T5GemmaForConditionalGeneration`` / ``T5GemmaModel`` (sliding and global layers,
soft-caps, a query scale other than the head size, encoder and decoder of different sizes) written as presets and
KerasHub's own ``T5GemmaSeq2SeqLM`` converted to transformers, forwards compared in fp32 on a padded batch (encoder
and decoder states, soft-capped logits), round trips bit-exact, KerasHub's own importer compared, configs KerasHub's
T5Gemma cannot compute refused by name, ``bridge verify`` running both forwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _loaded, _refused_as_preset, _same_tensors, _saved, _to_preset
from tests.families.keras_hub.test_seq2seq_vision import DECODER_IDS, ENCODER_IDS, _numpy, seq2seq_batch
from tests.families.keras_hub.test_verify_forward import _passes_with_forward

_LAYERS = ["sliding_attention", "full_attention"]
_ENCODER = {
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "layer_types": _LAYERS,
}
_DECODER = {**_ENCODER, "hidden_size": 12, "head_dim": 4, "num_hidden_layers": 3, "layer_types": [*_LAYERS, _LAYERS[0]]}
_SHARED = {
    "vocab_size": 40,
    "sliding_window": 8,  # past the batch: KerasHub slides otherwise (module notes)
    "query_pre_attn_scalar": 6,
    "attn_logit_softcapping": 5.0,
    "final_logit_softcapping": 3.0,
    "dropout_rate": 0.0,
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _t5gemma(
    transformers: Any,
    torch: Any,
    folder: Path,
    *,
    tied: bool = True,
    class_name: str = "T5GemmaForConditionalGeneration",
) -> Path:
    config = transformers.T5GemmaConfig(
        encoder={**_ENCODER, **_SHARED},
        decoder={**_DECODER, **_SHARED, "cross_attention_hidden_size": _ENCODER["hidden_size"]},
        vocab_size=40,
        dropout_rate=0.0,
        tie_word_embeddings=tied,
    )
    return _saved(getattr(transformers, class_name)(config), folder / f"hf_{class_name}_{tied}", torch)


def _same_forward(keras_hub: Any, torch: Any, preset: Path, model: Any) -> None:
    """Encoder and decoder states and logits of KerasHub's preset and ``model`` on the real tokens of a batch."""
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    task = _loaded(keras_hub.models.T5GemmaSeq2SeqLM.from_preset, preset)
    keras_inputs, torch_kwargs, enc_mask, dec_mask = seq2seq_batch(torch, ENCODER_IDS, DECODER_IDS, pad_id=0)
    out = backbone(keras_inputs)
    with torch.no_grad():
        got = model(**torch_kwargs, output_hidden_states=True)
    encoded, decoded = _numpy(out["encoder_sequence_output"]), _numpy(out["decoder_sequence_output"])
    np.testing.assert_allclose(encoded[enc_mask == 1], got.encoder_last_hidden_state.numpy()[enc_mask == 1], atol=1e-5)
    last = got.decoder_hidden_states[-1].numpy()
    np.testing.assert_allclose(decoded[dec_mask == 1], last[dec_mask == 1], atol=1e-5)
    logits = _numpy(task(keras_inputs))
    np.testing.assert_allclose(logits[dec_mask == 1], got.logits.numpy()[dec_mask == 1], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("tied", [True, False])
def test_t5gemma_to_preset_same_states_and_logits(transformers, torch, keras_hub, tmp_path, tied):
    """T5GemmaForConditionalGeneration -> T5GemmaSeq2SeqLM: the same states and soft-capped logits; back bit-exact."""
    src = _t5gemma(transformers, torch, tmp_path, tied=tied)
    model = transformers.T5GemmaForConditionalGeneration.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    assert json.loads((preset / "task.json").read_text())["registered_name"] == "keras_hub>T5GemmaSeq2SeqLM"
    _same_forward(keras_hub, torch, preset, model)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")


@pytest.mark.slow
def test_t5gemma_lm_to_transformers_same_states_and_logits(transformers, torch, keras_hub, tmp_path):
    """KerasHub's own T5GemmaSeq2SeqLM (random weights, untied) -> transformers, loaded with nothing left out; the
    same states and logits; written back to a preset bit-exact."""
    backbone = keras_hub.models.T5GemmaBackbone(
        vocabulary_size=40,
        **{f"encoder_{k}": v for k, v in _KERAS_SIDE.items()},
        **{f"decoder_{k}": v for k, v in {**_KERAS_SIDE, "hidden_dim": 12, "head_dim": 4}.items()},
        sliding_window=8,
        query_pre_attn_scalar=6,
        attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0,
        tie_word_embeddings=False,
    )
    task = keras_hub.models.T5GemmaSeq2SeqLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    task.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in task.get_weights()])
    preset, out = tmp_path / "preset", tmp_path / "pt"
    task.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    model, info = transformers.T5GemmaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    _same_forward(keras_hub, torch, preset, model.eval())
    back = _to_preset(out, tmp_path / "back")
    _same_tensors(preset / "model.weights.h5", back / "model.weights.h5")


_KERAS_SIDE = {
    "hidden_dim": 16,
    "intermediate_dim": 24,
    "num_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "layer_types": _LAYERS,
}


@pytest.mark.slow
def test_keras_hubs_own_importer_agrees(transformers, torch, keras_hub, tmp_path):
    """KerasHub's importer (``from_preset`` of the transformers folder) gives every variable bridge writes but the
    untied output projection, which it leaves at its initial values: bridge's is transformers' ``lm_head``."""
    src = _t5gemma(transformers, torch, tmp_path, tied=False)
    preset = _to_preset(src, tmp_path / "preset")
    ours = _loaded(keras_hub.models.T5GemmaSeq2SeqLM.from_preset, preset)
    theirs = keras_hub.models.T5GemmaSeq2SeqLM.from_preset(str(src), preprocessor=None)
    # one order of weights on both sides (their names' counters differ within one process)
    differ = [
        a.path for a, b in zip(ours.weights, theirs.weights, strict=True) if not np.array_equal(_numpy(a), _numpy(b))
    ]
    assert differ == ["decoder_token_embedding/reverse_embeddings"]
    model = transformers.T5GemmaForConditionalGeneration.from_pretrained(src)
    head = model.lm_head.out_proj.weight.detach().numpy().T
    assert np.array_equal(_numpy(ours.backbone.decoder_token_embedding.reverse_embeddings), head)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [("decoder", "hidden_activation", "gelu"), ("encoder", "rms_norm_eps", 1e-5), ("decoder", "attention_bias", True)],
)
def test_unwritable_t5gemma_config_exits_2(transformers, torch, tmp_path, where, key, value):
    src = _t5gemma(transformers, torch, tmp_path, class_name="T5GemmaModel")
    config = json.loads((src / "config.json").read_text())
    config[where][key] = value
    (src / "config.json").write_text(json.dumps(config))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


@pytest.mark.slow
def test_verify_runs_t5gemma_forward_of_written_preset(keras_hub, transformers, torch, tmp_path):
    src = _t5gemma(transformers, torch, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    outputs = {"hidden_states", "encoder_hidden_states", "logits"}
    # within the sliding window, where KerasHub's sliding layers compute as transformers' (the module's notes)
    report = json.loads(run_cli("verify", str(src), str(preset), "--json", "--seq-len", "8"))
    _passes_with_forward(report, "T5GemmaBackbone + T5GemmaSeq2SeqLM", outputs)
