"""KerasHub LoRA files (``save_lora_weights``) <-> PEFT adapters (``save_pretrained``), both written by their own
libraries on tiny models made here: converted by ``bridge lora``, applied by the other library, forwards compared
on a padded batch (every adaptable kernel kind: per-head query/key/value, the merged-head output, dense MLPs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.families.keras_hub import lora
from tests.conftest import run_cli

IDS = np.array([[2, 7, 9, 11, 3, 0, 0, 0], [2, 5, 6, 8, 12, 14, 20, 3]], dtype="int32")
MASK = (IDS != 0).astype("int32")
_GQA = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
_MHA = {"num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "max_sequence_length": 16}
SIZES: dict[str, dict[str, Any]] = {
    "LlamaBackbone": _GQA,
    "MistralBackbone": _GQA,
    "QwenBackbone": _GQA,
    "GemmaBackbone": _GQA | {"head_dim": 4},
    "BertBackbone": _MHA,
    "DistilBertBackbone": _MHA,
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def peft(torch):
    return pytest.importorskip("peft")


def _numpy(value: Any) -> np.ndarray:
    import keras

    if isinstance(value, dict):
        value = value["sequence_output"]
    return np.asarray(keras.ops.convert_to_numpy(value))


def _backbone(keras_hub: Any, name: str) -> Any:
    model = getattr(keras_hub.models, name)(vocabulary_size=30, num_layers=2, **SIZES[name])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _inputs(name: str) -> dict[str, np.ndarray]:
    inputs = {"token_ids": np.where(MASK == 1, IDS, 0), "padding_mask": MASK}
    return inputs | ({"segment_ids": np.zeros_like(IDS)} if name == "BertBackbone" else {})


def _targets(name: str) -> list[str]:
    return sorted({s.keras for s in lora.LAYOUTS[name].block if s is not None})


def _base(keras_hub: Any, name: str, folder: Path) -> tuple[Path, Path, Any]:
    """A preset saved by KerasHub and bridge's transformers conversion of it."""
    backbone = _backbone(keras_hub, name)
    preset, pt = folder / "preset", folder / "pt"
    backbone.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(pt))
    return preset, pt, backbone


@pytest.mark.parametrize("name", sorted(SIZES))
def test_layout_is_keras_order(keras_hub, name):
    """Each slot's index is the layer Keras' save_lora_weights numbers so."""
    backbone = _backbone(keras_hub, name)
    layout = lora.LAYOUTS[name]
    layers = [layer for layer in backbone._flatten_layers(include_self=False) if layer.weights]
    slots = lora.slots(layout, layout.family.config(backbone.get_config()))
    assert len(slots) == 2 * sum(s is not None for s in layout.block)
    for slot in slots:
        assert layers[slot.index].name == slot.keras, slot


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SIZES))
def test_keras_lora_to_peft_same_forward(transformers, torch, keras_hub, peft, name, tmp_path):
    preset, pt, backbone = _base(keras_hub, name, tmp_path)
    backbone.enable_lora(2, target_layer_names=_targets(name))  # every kind of kernel, not only query/value
    rng = np.random.default_rng(1)
    for w in backbone.weights:
        if "lora_kernel" in w.path:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    backbone.save_lora_weights(str(tmp_path / "tuned.lora.h5"))
    expected = _numpy(backbone(_inputs(name)))

    out = run_cli("lora", str(tmp_path / "tuned.lora.h5"), "--base", str(preset), "-o", str(tmp_path / "peft"))
    assert "PeftModel.from_pretrained" in out
    arch = json.loads((pt / "config.json").read_text())["architectures"][0]
    model = peft.PeftModel.from_pretrained(getattr(transformers, arch).from_pretrained(pt), tmp_path / "peft").eval()
    got = _hidden(torch, model.base_model.model)
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    with model.disable_adapter():  # the adapter matters: without it the forwards part
        assert not np.allclose(_hidden(torch, model.base_model.model)[MASK == 1], expected[MASK == 1], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SIZES))
def test_peft_adapter_to_keras_lora_same_forward(transformers, torch, keras_hub, peft, name, tmp_path):
    preset, pt, _ = _base(keras_hub, name, tmp_path)
    arch = json.loads((pt / "config.json").read_text())["architectures"][0]
    modules = sorted({s.module.split("{i}.")[1] for s in lora.LAYOUTS[name].block if s is not None})
    config = peft.LoraConfig(r=3, lora_alpha=5, target_modules=modules)  # scaling 5/3: not KerasHub's 1
    model = peft.get_peft_model(getattr(transformers, arch).from_pretrained(pt), config)
    torch.manual_seed(0)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                p.normal_(0, 0.3)
    model.save_pretrained(tmp_path / "peft")
    model.eval()
    expected = _hidden(torch, model.base_model.model)

    back = tmp_path / "back.lora.h5"
    result = json.loads(run_cli("lora", str(tmp_path / "peft"), "--base", str(preset), "-o", str(back), "--json"))
    keras_model = keras_hub.models.Backbone.from_preset(str(preset))
    keras_model.enable_lora(result["rank"], target_layer_names=result["keras_targets"])
    keras_model.load_lora_weights(str(back))
    got = _numpy(keras_model(_inputs(name)))
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)


def _hidden(torch: Any, model: Any) -> np.ndarray:
    """The backbone's last hidden states (inside a ``*ForCausalLM`` where that is the converted class)."""
    inner = getattr(model, model.base_model_prefix, model)
    ids = torch.tensor(np.where(MASK == 1, IDS, 0)).long()
    with torch.no_grad():
        return inner(input_ids=ids, attention_mask=torch.tensor(MASK).long())[0].numpy()


def test_lora_file_against_another_base_exits_2(keras_hub, tmp_path):
    """A Llama adapter named through a BERT preset: refused by tensor, with the fix."""
    llama = _backbone(keras_hub, "LlamaBackbone")
    llama.enable_lora(2)
    llama.save_lora_weights(str(tmp_path / "llama.lora.h5"))
    _backbone(keras_hub, "BertBackbone").save_to_preset(str(tmp_path / "bert"))
    out = run_cli("lora", str(tmp_path / "llama.lora.h5"), "--base", str(tmp_path / "bert"), "-o", "x", code=2)
    assert "does not fit the base model" in out and "lora/9" in out and "--base" in out
