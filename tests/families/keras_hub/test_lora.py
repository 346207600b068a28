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
from bridge.families.keras_hub.families import FAMILIES
from tests.conftest import run_cli

IDS = np.array([[2, 7, 9, 11, 3, 0, 0, 0], [2, 5, 6, 8, 12, 14, 20, 3]], dtype="int32")
MASK = (IDS != 0).astype("int32")
_GQA = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
_MHA = {"num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "max_sequence_length": 16}
_GEMMA2 = {"use_post_ffw_norm": True, "use_post_attention_norm": True, "final_logit_soft_cap": 3.0}
_GEMMA2 |= {"attention_logit_soft_cap": 5.0, "use_sliding_window_attention": True, "sliding_window_size": 3}
_GEMMA3 = {"head_dim": 4, "image_size": 16, "vision_encoder": None, "use_post_ffw_norm": True}
_GEMMA3 |= {"use_post_attention_norm": True, "use_sliding_window_attention": True, "sliding_window_size": 3}
_VIT = {"image_shape": (8, 8, 3), "patch_size": 4, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}
_T5 = {"num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "key_value_dim": 4}
_WHISPER = {"num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "num_mels": 8}
_WHISPER |= {"max_encoder_sequence_length": 16, "max_decoder_sequence_length": 8}
FEATURES = np.random.default_rng(3).normal(size=(2, 16, 8)).astype("float32")  # [batch, frames, mels]
PIXELS = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
# a case: (KerasHub backbone class, its tiny config, transformers' model_type: the LoRA layout's key)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "llama": ("LlamaBackbone", _GQA, "llama"),
    "mistral": ("MistralBackbone", _GQA, "mistral"),
    "qwen2": ("QwenBackbone", _GQA, "qwen2"),
    "qwen3": ("Qwen3Backbone", _GQA | {"head_dim": 4, "layer_norm_epsilon": 1e-5}, "qwen3"),  # q/k norms
    "gemma": ("GemmaBackbone", _GQA | {"head_dim": 4}, "gemma"),
    "gemma2": ("GemmaBackbone", _GQA | {"head_dim": 4} | _GEMMA2, "gemma2"),  # Gemma 1's class, more norms
    "gemma3_text": ("Gemma3Backbone", _GQA | _GEMMA3, "gemma3_text"),  # query/key norms inside the attention
    "bert": ("BertBackbone", _MHA, "bert"),
    "distilbert": ("DistilBertBackbone", _MHA, "distilbert"),
    "roberta": ("RobertaBackbone", _MHA, "roberta"),
    "xlm-roberta": ("XLMRobertaBackbone", _MHA, "xlm-roberta"),
    "electra": ("ElectraBackbone", _MHA | {"embedding_dim": 8}, "electra"),  # with the embeddings' projection
    "albert": ("AlbertBackbone", _MHA | {"embedding_dim": 8, "num_groups": 2}, "albert"),  # 4 layers, 2 stored
    "deberta-v2": ("DebertaV3Backbone", _MHA | {"bucket_size": 4}, "deberta-v2"),
    "opt": ("OPTBackbone", _MHA, "opt"),
    "phi3": ("Phi3Backbone", _GQA, "phi3"),  # only the unfused o_proj and down_proj convert
    "mixtral": ("MixtralBackbone", _GQA | {"num_experts": 4, "top_k": 2}, "mixtral"),  # attention only
    "gpt2": ("GPT2Backbone", _MHA, "gpt2"),  # query, key and value: one rank-3r LoRA on the fused Conv1D c_attn
    "vit": ("ViTBackbone", _VIT, "vit"),  # blocks walked last first; pixels, not tokens
    "bart": ("BartBackbone", _MHA, "bart"),  # an encoder stack, then decoder blocks with cross-attention
    "t5": ("T5Backbone", _T5 | {"use_gated_activation": False}, "t5"),  # Dense kernels, no heads axis
    "t5-gated": ("T5Backbone", _T5, "t5"),  # a gate in each feed-forward
    "whisper": ("WhisperBackbone", _WHISPER, "whisper"),  # mel features into the encoder, tokens into the decoder
}
_PAD = {"roberta": 1, "xlm-roberta": 1}  # their position ids count from the pad token's id
_LAYERS = {"albert": 4}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def peft(torch):
    return pytest.importorskip("peft")


def _numpy(value: Any) -> np.ndarray:
    import keras

    if isinstance(value, dict):
        value = value.get("sequence_output", value.get("decoder_sequence_output"))  # a decoder's: it reads all
    return np.asarray(keras.ops.convert_to_numpy(value))


def _backbone(keras_hub: Any, case: str) -> Any:
    name, sizes, _ = CASES[case]
    vocab = {} if _takes_images(case) else {"vocab_size" if name == "ElectraBackbone" else "vocabulary_size": 30}
    model = getattr(keras_hub.models, name)(**vocab, num_layers=_LAYERS.get(case, 2), **sizes)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _ids(case: str) -> np.ndarray:
    return np.where(MASK == 1, IDS, _PAD.get(case, 0))


def _takes_images(case: str) -> bool:
    return "image_shape" in CASES[case][1]


def _real(states: np.ndarray, case: str) -> np.ndarray:
    """The states compared: every patch of an image, the real tokens of a padded batch."""
    return states if _takes_images(case) else states[MASK == 1]


def _inputs(backbone: Any, case: str) -> Any:
    if _takes_images(case):
        return PIXELS
    given = {"token_ids": _ids(case), "padding_mask": MASK, "segment_ids": np.zeros_like(IDS)}
    given["encoder_features"] = FEATURES
    given |= {f"{side}_{k}": given[k] for side in ("encoder", "decoder") for k in ("token_ids", "padding_mask")}
    return {k: v for k, v in given.items() if k in backbone.input}


def _layout(case: str) -> lora.Layout:
    return lora.LAYOUTS[CASES[case][2]]


def _targets(case: str) -> list[str]:
    return sorted({s.keras for s in _layout(case).sites() if not s.refused})


def _base(keras_hub: Any, case: str, folder: Path) -> tuple[Path, Path, Any]:
    """A preset saved by KerasHub and bridge's transformers conversion of it."""
    backbone = _backbone(keras_hub, case)
    preset, pt = folder / "preset", folder / "pt"
    backbone.save_to_preset(str(preset))
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(pt))
    return preset, pt, backbone


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_is_keras_order(keras_hub, case):
    """Each slot's index is the layer Keras' save_lora_weights numbers so (refused layers too)."""
    backbone = _backbone(keras_hub, case)
    layout = _layout(case)
    shared = [f for f in FAMILIES if f.model_type == layout.family.model_type]  # T5 gated or not: one order
    assert any(f.claims is None or f.claims(backbone.get_config()) for f in shared)
    layers = [layer for layer in backbone._flatten_layers(include_self=False) if layer.weights]
    config = layout.family.config(backbone.get_config())
    slots = lora.slots(layout, config)
    assert len(slots) == 2 * len(layout.sites(config))  # ALBERT: its two stored layers
    for slot in slots:
        assert layers[slot.index].name == slot.keras, slot


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_lora_to_peft_same_forward(transformers, torch, keras_hub, peft, case, tmp_path):
    preset, pt, backbone = _base(keras_hub, case, tmp_path)
    backbone.enable_lora(2, target_layer_names=_targets(case))  # every kind of kernel, not only query/value
    rng = np.random.default_rng(1)
    for w in backbone.weights:
        if "lora_kernel" in w.path:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    backbone.save_lora_weights(str(tmp_path / "tuned.lora.h5"))
    expected = _numpy(backbone(_inputs(backbone, case)))

    out = run_cli("lora", str(tmp_path / "tuned.lora.h5"), "--base", str(preset), "-o", str(tmp_path / "peft"))
    assert "PeftModel.from_pretrained" in out
    arch = json.loads((pt / "config.json").read_text())["architectures"][0]
    model = peft.PeftModel.from_pretrained(getattr(transformers, arch).from_pretrained(pt), tmp_path / "peft").eval()
    got = _hidden(torch, model.base_model.model, case)
    np.testing.assert_allclose(_real(got, case), _real(expected, case), atol=1e-5)
    with model.disable_adapter():  # the adapter matters: without it the forwards part
        without = _hidden(torch, model.base_model.model, case)
        assert not np.allclose(_real(without, case), _real(expected, case), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_peft_adapter_to_keras_lora_same_forward(transformers, torch, keras_hub, peft, case, tmp_path):
    preset, pt, _ = _base(keras_hub, case, tmp_path)
    arch = json.loads((pt / "config.json").read_text())["architectures"][0]
    modules = sorted({s.module.split("{i}.")[1] for s in _layout(case).sites() if not s.refused})
    fan_in_fan_out = _layout(case).fan_in_fan_out  # GPT-2's Conv1D
    config = peft.LoraConfig(r=3, lora_alpha=5, target_modules=modules, fan_in_fan_out=fan_in_fan_out)  # scaling 5/3
    model = peft.get_peft_model(getattr(transformers, arch).from_pretrained(pt), config)
    torch.manual_seed(0)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                p.normal_(0, 0.3)
    model.save_pretrained(tmp_path / "peft")
    model.eval()
    expected = _hidden(torch, model.base_model.model, case)

    back = tmp_path / "back.lora.h5"
    result = json.loads(run_cli("lora", str(tmp_path / "peft"), "--base", str(preset), "-o", str(back), "--json"))
    keras_model = keras_hub.models.Backbone.from_preset(str(preset))
    keras_model.enable_lora(result["rank"], target_layer_names=result["keras_targets"])
    keras_model.load_lora_weights(str(back))
    got = _numpy(keras_model(_inputs(keras_model, case)))
    np.testing.assert_allclose(_real(got, case), _real(expected, case), atol=1e-5)


def _hidden(torch: Any, model: Any, case: str) -> np.ndarray:
    """The backbone's last hidden states (inside a ``*ForCausalLM`` where that is the converted class)."""
    inner = getattr(model, model.base_model_prefix, model)
    if _takes_images(case):
        with torch.no_grad():
            return inner(pixel_values=torch.tensor(PIXELS).permute(0, 3, 1, 2))[0].numpy()
    given = {"input_ids": torch.tensor(_ids(case)).long(), "attention_mask": torch.tensor(MASK).long()}
    if inner.config.model_type == "whisper":  # features, not tokens, into the encoder ([batch, mels, frames])
        given = {"input_features": torch.tensor(FEATURES).permute(0, 2, 1)} | {
            "decoder_input_ids": given["input_ids"],
            "decoder_attention_mask": given["attention_mask"],
        }
    elif inner.config.is_encoder_decoder:  # the decoder's states (read over the encoder's) on the same tokens
        given |= {"decoder_input_ids": given["input_ids"], "decoder_attention_mask": given["attention_mask"]}
    with torch.no_grad():
        return inner(**given)[0].numpy()


def test_lora_file_against_another_base_exits_2(keras_hub, tmp_path):
    """A Llama adapter named through a BERT preset: refused by tensor, with the fix."""
    llama = _backbone(keras_hub, "llama")
    llama.enable_lora(2)
    llama.save_lora_weights(str(tmp_path / "llama.lora.h5"))
    _backbone(keras_hub, "bert").save_to_preset(str(tmp_path / "bert"))
    out = run_cli("lora", str(tmp_path / "llama.lora.h5"), "--base", str(tmp_path / "bert"), "-o", "x", code=2)
    assert "does not fit the base model" in out and "lora/9" in out and "--base" in out


@pytest.mark.parametrize(
    ("case", "targets", "named"),
    [
        ("phi3", None, "qkv_proj"),  # KerasHub's default targets: query and value, fused in transformers
        ("phi3", ["feedforward_gate_dense"], "gate_up_proj"),
        ("mixtral", ["sparse_feedforward_gate_dense"], "router"),
    ],
)
def test_lora_that_cannot_convert_exactly_exits_2(keras_hub, case, targets, named, tmp_path):
    """A KerasHub LoRA on a layer transformers fuses (Phi-3) or that PEFT cannot adapt (Mixtral's router): refused
    by family and reason, no adapter written."""
    backbone = _backbone(keras_hub, case)
    backbone.enable_lora(2, target_layer_names=targets)
    backbone.save_lora_weights(str(tmp_path / "tuned.lora.h5"))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = run_cli("lora", str(tmp_path / "tuned.lora.h5"), "--base", str(tmp_path / "preset"), "-o", "x", code=2)
    assert f"A {case} LoRA" in out and named in out and "merge" in out
    assert not (tmp_path / "x").exists()


_TORCH_SAVE = """import sys, keras_hub
m = keras_hub.models.BartBackbone(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                                  max_sequence_length=16)
m.save_to_preset(sys.argv[1] + "/preset")
m.enable_lora(2)
m.save_lora_weights(sys.argv[1] + "/tuned.lora.h5")
"""


@pytest.mark.slow
def test_bart_lora_saved_on_torch_backend_exits_2(keras_hub, tmp_path):
    """KerasHub numbers BART's layers otherwise on the torch backend (its decoder embeddings ahead of the encoder
    blocks): such a file (written by KerasHub there, in a process of its own) is refused, naming the backend."""
    import os
    import subprocess
    import sys

    env = os.environ | {"KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, "-c", _TORCH_SAVE, str(tmp_path)], env=env, check=True, capture_output=True)
    out = run_cli("lora", str(tmp_path / "tuned.lora.h5"), "--base", str(tmp_path / "preset"), "-o", "x", code=2)
    assert "does not fit the base model" in out and "KERAS_BACKEND=tensorflow" in out
    assert not (tmp_path / "x").exists()
