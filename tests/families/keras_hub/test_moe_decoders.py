"""Qwen 2 MoE (a shared expert behind a sigmoid gate, q/k/v biases) and Qwen 3 MoE (per-head q/k norms): KerasHub
presets <-> transformers 5 both ways, proven on tiny models each library makes with random weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import (
    _loaded,
    _refused_as_preset,
    _same_tensors,
    _saved,
    _to_preset,
    _unnamed,
)
from tests.families.keras_hub.test_presets import IDS, MASK, _keras_hub_reads_back, _numpy, _randomized


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


_SIZES = {"vocabulary_size": 30, "num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 8}
_MOE = _SIZES | {"intermediate_dim": 16, "moe_intermediate_dim": 4, "num_experts": 4, "top_k": 2}
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {  # case -> backbone, transformers causal LM, config
    "qwen2_moe": ("QwenMoeBackbone", "Qwen2MoeForCausalLM", _MOE | {"shared_expert_intermediate_dim": 12}),
    # the top-k weights renormalized, tied embeddings, a window narrower than the batch in every layer
    "qwen2_moe_window": (
        "QwenMoeBackbone",
        "Qwen2MoeForCausalLM",
        _MOE
        | {"shared_expert_intermediate_dim": 12, "norm_top_k_prob": True, "tie_word_embeddings": True}
        | {"use_sliding_window_attention": True, "sliding_window_size": 3},
    ),
    "qwen3_moe": ("Qwen3MoeBackbone", "Qwen3MoeForCausalLM", _MOE | {"head_dim": 4, "sliding_window_size": None}),
    "qwen3_moe_window": (  # KerasHub's default window (32768) kept; here 3, tied, renormalized
        "Qwen3MoeBackbone",
        "Qwen3MoeForCausalLM",
        _MOE | {"head_dim": 4, "sliding_window_size": 3, "norm_top_k_prob": True, "tie_word_embeddings": True},
    ),
}


# KerasHub 0.32's Qwen 2 MoE importer never passes tie_word_embeddings on (its convert_qwen_moe.py), so it builds an
# output projection and looks for an lm_head.weight a tied transformers model does not save; transformers' forward
# matched bridge's conversion above.
_KERAS_HUB_IMPORT_FAILS = {"qwen2_moe_window": "lm_head.weight"}


def _preset(keras_hub: Any, case: str, folder: Path) -> tuple[Path, Any]:
    backbone_class, _, config = PRESETS[case]
    backbone = _randomized(getattr(keras_hub.models, backbone_class)(**config))
    path = folder / case
    backbone.save_to_preset(str(path))
    return path, backbone


@pytest.mark.parametrize("case", sorted(PRESETS))
@pytest.mark.slow
def test_moe_preset_to_transformers_same_logits(transformers, torch, keras_hub, case, tmp_path):
    """Logits of the real tokens of a padded batch; transformers loads it with nothing missing or unexpected, under
    the names its own save_pretrained writes (one tensor per expert); KerasHub's importer reads it back bit-exact."""
    path, backbone = _preset(keras_hub, case, tmp_path)
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    target = PRESETS[case][1]
    model, info = getattr(transformers, target).from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    model.eval()
    ids = np.where(MASK == 1, IDS, 0)
    hidden = _numpy(backbone({"token_ids": ids, "padding_mask": MASK}))
    expected = _numpy(backbone.token_embedding(hidden, reverse=True))
    with torch.no_grad():
        got = model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    model.save_pretrained(tmp_path / "resaved")
    _same_tensors(out / "model.safetensors", tmp_path / "resaved" / "model.safetensors")
    with bridge.load(out / "model.safetensors") as written:
        assert "model.layers.1.mlp.experts.3.up_proj.weight" in {r.name for r in written.values()}
    if case in _KERAS_HUB_IMPORT_FAILS:
        with pytest.raises(Exception, match=_KERAS_HUB_IMPORT_FAILS[case]):
            keras_hub.models.Backbone.from_preset(str(out))
    else:
        _keras_hub_reads_back(keras_hub, backbone, out)


@pytest.mark.parametrize("case", sorted(PRESETS))
def test_moe_preset_round_trip_bit_exact(keras_hub, case, tmp_path):
    """preset -> transformers -> preset: every variable back bit for bit (the gate and up halves of each expert
    joined again), the same backbone config."""
    path, _ = _preset(keras_hub, case, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)


_GQA = {"vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
_HF_MOE = _GQA | {"intermediate_size": 16, "moe_intermediate_size": 4, "num_experts": 4, "num_experts_per_tok": 2}
SOURCES: dict[str, tuple[str, str, dict[str, Any]]] = {  # case -> transformers config, KerasHub task, sizes
    "qwen2_moe": ("Qwen2MoeConfig", "QwenMoeCausalLM", _HF_MOE | {"shared_expert_intermediate_size": 12}),
    "qwen2_moe_norm_topk": (
        "Qwen2MoeConfig",
        "QwenMoeCausalLM",
        _HF_MOE | {"shared_expert_intermediate_size": 12, "norm_topk_prob": True, "tie_word_embeddings": True},
    ),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeCausalLM", _HF_MOE | {"head_dim": 4, "norm_topk_prob": True}),
    "qwen3_moe_window": (
        "Qwen3MoeConfig",
        "Qwen3MoeCausalLM",
        _HF_MOE | {"head_dim": 4, "use_sliding_window": True, "sliding_window": 3},
    ),
}


def _source(transformers: Any, torch: Any, case: str, folder: Path) -> tuple[Path, Any]:
    config_class, _, sizes = SOURCES[case]
    config = getattr(transformers, config_class)(**sizes)
    model = getattr(transformers, config_class.replace("Config", "ForCausalLM"))(config)
    return _saved(model, folder / case, torch), model


@pytest.mark.parametrize("case", sorted(SOURCES))
@pytest.mark.slow
def test_moe_transformers_to_preset_same_logits(transformers, torch, keras_hub, case, tmp_path):
    """KerasHub's CausalLM from the written preset: no variable left without a value, the logits of the real
    tokens; back to transformers bit for bit."""
    src, model = _source(transformers, torch, case, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    task_class = SOURCES[case][1]
    task = _loaded(getattr(keras_hub.models, task_class).from_preset, preset)
    ids = np.where(MASK == 1, IDS, 0)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    got = _numpy(task({"token_ids": ids, "padding_mask": MASK}))
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")


@pytest.mark.parametrize(
    ("case", "key", "value"),
    [
        ("qwen2_moe", "decoder_sparse_step", 2),  # KerasHub's Qwen 2 MoE would route in no layer
        ("qwen2_moe", "mlp_only_layers", [1]),
        ("qwen2_moe", "qkv_bias", False),
        ("qwen2_moe", "layer_types", ["sliding_attention", "full_attention"]),
        ("qwen3_moe", "mlp_only_layers", [0]),
        ("qwen3_moe", "attention_bias", True),
    ],
)
def test_unwritable_moe_config_exits_2(transformers, torch, case, key, value, tmp_path):
    src, _ = _source(transformers, torch, case, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


@pytest.mark.parametrize(
    ("case", "key", "value"),
    [
        ("qwen2_moe", "decoder_sparse_step", 2),
        ("qwen3_moe", "rope_scaling_factor", 2.0),
        ("qwen3_moe", "layer_norm_epsilon", 1e-5),  # its q/k norms stay at 1e-6, transformers' would follow
    ],
)
def test_moe_preset_computing_otherwise_exits_2(keras_hub, case, key, value, tmp_path):
    """A preset whose layers do not all route (KerasHub's Qwen 2 MoE then routes in none), or scales its rotary
    positions, or sets an epsilon its q/k norms ignore, is refused by the key."""
    path, _ = _preset(keras_hub, case, tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["config"][key] = value
    (path / "config.json").write_text(json.dumps(config))
    out = run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert key in out
