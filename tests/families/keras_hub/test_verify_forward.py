"""``bridge verify`` between a KerasHub preset and a transformers directory, either way, runs both forwards:
KerasHub's model from the preset and the transformers class, hidden states and logits on a padded batch's real
tokens.  Tiny models made by each library's own code; a converted config made wrong fails by the forward alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.families.keras_hub.test_presets import VOCAB, _randomized

pytestmark = pytest.mark.slow  # KerasHub and transformers models built and run: over ~5 s on 2 cores

# head_dim 4: with 2, rotary embeddings have one frequency, whatever the rope wavelength
_LLAMA = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _verify(source: Path, out: Path, code: int = 0) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(run_cli("verify", str(source), str(out), "--json", code=code))
    return report


def _passes_with_forward(report: dict[str, Any], classes: str, outputs: set[str]) -> None:
    assert report["ok"] and report["forward"]["status"] == "pass", report
    assert {o["name"] for o in report["outputs"]} == outputs and all(o["max_abs"] <= 1e-5 for o in report["outputs"])
    (said,) = [n for n in report["notes"] if n.startswith("forward:")]
    assert f"KerasHub {classes} (" in said and "real tokens" in said, said


def _fails_by_the_forward(source: Path, out: Path) -> None:
    """Values all bit-exact, the forward named as what differs, in the JSON and in the words people read."""
    report = _verify(source, out, code=1)
    assert report["values"]["failures"] == [] and report["values"]["bit_exact"] == report["values"]["compared"]
    assert report["forward"]["status"] == "fail"
    assert not next(o for o in report["outputs"] if o["name"] == "hidden_states")["ok"]
    text = run_cli("verify", str(source), str(out), code=1)
    assert "verdict: FAIL" in text and any(
        line.startswith("forward hidden_states") and line.endswith("FAIL") for line in text.splitlines()
    ), text


def _edited(folder: Path, copy: Path, file: str, edit: Any) -> Path:
    shutil.copytree(folder, copy)
    config = json.loads((copy / file).read_text())
    edit(config)
    (copy / file).write_text(json.dumps(config))
    return copy


def test_bert_classifier_preset_and_its_transformers_model(keras_hub, transformers, tmp_path):
    models = keras_hub.models
    backbone = models.BertBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    preprocessor = models.BertTextClassifierPreprocessor(models.BertTokenizer(vocabulary=VOCAB), sequence_length=8)
    _randomized(models.BertTextClassifier(backbone, num_classes=3, preprocessor=preprocessor)).save_to_preset(
        str(tmp_path / "preset")
    )
    out = tmp_path / "hf"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    report = _verify(tmp_path / "preset", out)
    _passes_with_forward(report, "BertBackbone + BertTextClassifier", {"hidden_states", "logits"})
    assert "segment_ids" in report["notes"][-1]  # BERT's third input is fed on both sides

    def wrong_eps(config: dict[str, Any]) -> None:
        config["layer_norm_eps"] = 0.5

    _fails_by_the_forward(tmp_path / "preset", _edited(out, tmp_path / "wrong_eps", "config.json", wrong_eps))


def test_llama_preset_to_transformers(keras_hub, transformers, tmp_path):
    """A backbone alone: KerasHub's causal LM built on it (no weights of its own) gives the logits compared."""
    backbone = _randomized(keras_hub.models.LlamaBackbone(vocabulary_size=30, num_layers=2, **_LLAMA))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "hf"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    _passes_with_forward(
        _verify(tmp_path / "preset", out), "LlamaBackbone + LlamaCausalLM", {"hidden_states", "logits"}
    )

    def wrong_eps(config: dict[str, Any]) -> None:
        config["rms_norm_eps"] = 0.5

    _fails_by_the_forward(tmp_path / "preset", _edited(out, tmp_path / "wrong_eps", "config.json", wrong_eps))


def test_transformers_llama_to_preset(keras_hub, transformers, torch, tmp_path):
    """The other way: the preset written, its task (task.json) run by KerasHub; a wrong rope wavelength written
    into the preset fails by the forward, and a preset KerasHub cannot load fails, in KerasHub's words."""
    config = transformers.LlamaConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=32,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    model.eval().save_pretrained(tmp_path / "hf")
    preset = tmp_path / "preset"
    run_cli("convert", str(tmp_path / "hf"), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    _passes_with_forward(_verify(tmp_path / "hf", preset), "LlamaBackbone + LlamaCausalLM", {"hidden_states", "logits"})

    wrong = _edited(preset, tmp_path / "wrong_rope", "config.json", lambda c: c["config"].update(rope_max_wavelength=7))
    task = json.loads((wrong / "task.json").read_text())  # the task's copy of the backbone config is the one loaded
    task["config"]["backbone"]["config"]["rope_max_wavelength"] = 7
    (wrong / "task.json").write_text(json.dumps(task))
    _fails_by_the_forward(tmp_path / "hf", wrong)

    refused = _edited(preset, tmp_path / "refused", "task.json", lambda t: t["config"]["backbone"]["config"].update(
        intermediate_dim=12))  # fmt: skip
    report = _verify(tmp_path / "hf", refused, code=1)
    assert [o["name"] for o in report["outputs"] if not o["ok"]] == ["keras_hub_from_preset"]
    (said,) = [n for n in report["notes"] if "KerasHub cannot load the preset" in n]
    assert "could not be loaded" in said and "the output is not a preset KerasHub loads" in said and len(said) < 600


@pytest.mark.parametrize(
    ("name", "classes", "outputs", "wrong"),
    [
        ("bart", "BartBackbone + BartSeq2SeqLM", {"hidden_states", "encoder_hidden_states", "logits"}, {
            "activation_function": "relu"}),
        ("vit", "ViTBackbone", {"hidden_states"}, {"layer_norm_eps": 0.5}),
        ("whisper", "WhisperBackbone", {"hidden_states", "encoder_hidden_states"}, {"activation_function": "relu"}),
    ],
)  # fmt: skip
def test_seq2seq_and_vision_presets_to_transformers(keras_hub, transformers, tmp_path, name, classes, outputs, wrong):
    """Inputs beyond token ids: encoder and decoder ids with their masks, NHWC pixels and [frames, mels] audio
    features fed to transformers channels-first; a config value made wrong in the converted config fails (BART's
    and Whisper's layer-norm epsilon is fixed in transformers' code, not in their configs)."""
    from tests.families.keras_hub.test_seq2seq_vision_writer import _keras_preset

    preset = _keras_preset(keras_hub, name, tmp_path)
    out = tmp_path / "hf"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    _passes_with_forward(_verify(preset, out), classes, outputs)
    _fails_by_the_forward(preset, _edited(out, tmp_path / "wrong", "config.json", lambda c: c.update(wrong)))


@pytest.mark.parametrize(
    ("name", "classes", "outputs"),
    [
        ("bart", "BartBackbone + BartSeq2SeqLM", {"hidden_states", "encoder_hidden_states", "logits"}),
        ("vit", "ViTBackbone", {"hidden_states"}),
        ("whisper", "WhisperBackbone", {"hidden_states", "encoder_hidden_states"}),
    ],
)
def test_transformers_seq2seq_and_vision_to_presets(keras_hub, transformers, torch, tmp_path, name, classes, outputs):
    """The other way: transformers' own tiny models written as presets, KerasHub's forward run from them."""
    from tests.families.keras_hub import test_seq2seq_vision_writer as writer

    made = {"bart": writer._bart, "vit": writer._vit, "whisper": writer._whisper}[name](transformers, torch, tmp_path)
    src = made[0] if isinstance(made, tuple) else made
    preset = tmp_path / "preset"
    run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(preset))
    _passes_with_forward(_verify(src, preset), classes, outputs)
