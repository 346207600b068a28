"""Keras 3 MultiHeadAttention (self-attention) <-> torch nn.MultiheadAttention(batch_first=True), both ways."""

from __future__ import annotations

import numpy as np
import pytest

import bridge

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

TWIN = "twins.py:twin_attention"
KERAS = "twins.py:keras_attention"


@pytest.fixture
def at_sources(keras_sources, monkeypatch):
    monkeypatch.chdir(keras_sources["dir"])
    return keras_sources


def _keras_weights(at_sources) -> dict[str, np.ndarray]:
    import keras

    model = keras.saving.load_model(at_sources["attention-keras"], compile=False)
    return {v.path: np.asarray(v) for v in model.weights}


@pytest.mark.parametrize("fmt", ["attention-weights", "attention-keras", "attention-tf2"])
def test_attention_to_pytorch_loads_strict_and_computes_the_same(at_sources, fmt, tmp_path, torch):
    import keras
    import safetensors.torch

    from tests.families.keras import twins

    plan = bridge.check(at_sources[fmt], to="pytorch", target=TWIN)
    assert plan.ok and not plan.gaps
    rows = {m.source: (m.target, m.transform) for m in plan.matched}
    blocks = sorted(t for target, t in rows.values() if target == "attn.in_proj_weight")
    assert blocks == [f"reshape(8,8)|transpose|block({k},3)" for k in range(3)]
    assert sorted(t for target, t in rows.values() if target == "attn.in_proj_bias") == [
        f"reshape(8)|block({k},3)" for k in range(3)
    ]
    assert {t for target, t in rows.values() if target.startswith("attn.out_proj")} == {
        "reshape(8,8)|transpose",
        "identity",
    }
    result = bridge.convert(at_sources[fmt], to="pytorch", out=tmp_path / "pt", target=TWIN)
    assert result.plan.ok and result.files == ["model.safetensors"]
    state = safetensors.torch.load_file(tmp_path / "pt" / "model.safetensors")
    weights = _keras_weights(at_sources)
    q, k, v = (weights[f"multi_head_attention/{p}/kernel"].reshape(8, 8).T for p in ("query", "key", "value"))
    assert state["attn.in_proj_weight"].numpy().tobytes() == np.concatenate([q, k, v]).tobytes()
    model = twins.twin_attention()
    model.load_state_dict(state, strict=True)
    x = np.random.default_rng(5).standard_normal((2, twins.MHA_SEQ, twins.MHA_E)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    expected = np.asarray(keras.saving.load_model(at_sources["attention-keras"], compile=False)(x, training=False))
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-5
    report = bridge.verify(at_sources[fmt], tmp_path / "pt", target=TWIN, source_model=KERAS)
    assert report.ok and report.values_equal == report.values_compared == 12  # 8 attention + 2 norm + 2 dense
    assert report.outputs[0].name == "output" and report.outputs[0].max_abs <= 1e-5


def test_attention_with_other_heads_converts_but_says_outputs_differ(at_sources, tmp_path):
    """Head count is not in the weights' shapes: the values fit, the note and the forward check tell."""
    twin = "twins.py:twin_attention_four_heads"
    plan = bridge.check(at_sources["attention-weights"], to="pytorch", target=twin)
    assert plan.ok and any("num_heads=4" in n and "2 heads" in n for n in plan.notes)
    bridge.convert(at_sources["attention-weights"], to="pytorch", out=tmp_path / "pt", target=twin)
    report = bridge.verify(at_sources["attention-weights"], tmp_path / "pt", target=twin, source_model=KERAS)
    assert report.values_equal == report.values_compared == 12 and not report.ok and not report.outputs[0].ok


def test_pytorch_attention_to_keras_and_round_trip_are_bit_exact(at_sources, tmp_path, torch):
    """A trained twin's in_proj_weight split into Keras' query, key, value (chunk(k,3)), loaded by Keras;
    and Keras -> PyTorch -> Keras gives every value back."""
    import safetensors.torch

    from tests.families.keras import twins

    state = {k: v.clone() for k, v in twins.twin_attention().state_dict().items()}
    state["attn.in_proj_bias"] = torch.linspace(-1, 1, 24)  # torch initialises it to zeros
    safetensors.torch.save_file(state, tmp_path / "trained.safetensors")
    plan = bridge.check(tmp_path / "trained.safetensors", to="tensorflow", target=KERAS)
    assert plan.ok and not plan.gaps
    chunks = sorted(m.transform for m in plan.matched if m.source == "attn.in_proj_weight")
    assert chunks == [f"chunk({k},3)|transpose|reshape(8,2,4)" for k in range(3)]
    result = bridge.convert(tmp_path / "trained.safetensors", to="tensorflow", out=tmp_path / "k", target=KERAS)
    assert result.plan.ok and result.files == ["model.weights.h5"]
    back = twins.keras_attention()
    back.load_weights(tmp_path / "k" / "model.weights.h5")
    value = {v.path.split("/", 1)[1]: np.asarray(v) for v in back.weights if "attention" in v.path}
    assert value["value/kernel"].tobytes() == state["attn.in_proj_weight"][16:].numpy().T.reshape(8, 2, 4).tobytes()
    assert value["key/bias"].tobytes() == state["attn.in_proj_bias"][8:16].numpy().reshape(2, 4).tobytes()
    report = bridge.verify(tmp_path / "trained.safetensors", tmp_path / "k", target=KERAS, source_model=TWIN)
    assert report.ok and report.values_equal == report.values_compared == 12 and report.outputs[0].max_abs <= 1e-5

    bridge.convert(at_sources["attention-weights"], to="pytorch", out=tmp_path / "pt", target=TWIN)
    bridge.convert(tmp_path / "pt" / "model.safetensors", to="tensorflow", out=tmp_path / "k2", target=KERAS)
    again, original = twins.keras_attention(), twins.keras_attention()
    again.load_weights(tmp_path / "k2" / "model.weights.h5")
    original.load_weights(at_sources["attention-weights"])
    for a, b in zip(original.weights, again.weights, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), a.path


def test_attention_against_a_reference_state_dict_infers_the_module(at_sources, tmp_path, torch):
    """No factory: the module is known by its parameter names (in_proj_weight; out_proj is part of it)."""
    import safetensors.torch

    from tests.families.keras import twins

    safetensors.torch.save_file(twins.twin_attention().state_dict(), tmp_path / "ref.safetensors")
    plan = bridge.check(at_sources["attention-weights"], to="pytorch", target=str(tmp_path / "ref.safetensors"))
    assert plan.ok and len(plan.matched) == 12
    assert any("multi_head_attention" in n and "`attn`" in n for n in plan.notes)
