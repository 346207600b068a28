"""The keras pack end to end on real files: check, convert both ways, verify (values and forward)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import bridge

from .twins import EPS  # noqa: F401  (the twins' epsilon is Keras' default)

TWIN = "twins.py:twin"
KERAS = "twins.py:keras_convnet"
FORMATS = ["weights", "keras", "tf2", "tf2-legacy", "h5-full", "h5-weights"]
LEGACY = {"tf2-legacy", "h5-weights"}  # written by tf-keras: restored into the tf-keras model


@pytest.fixture
def at_sources(keras_sources, monkeypatch):
    monkeypatch.chdir(keras_sources["dir"])
    return keras_sources


def _keras_output(at_sources, x):
    import keras

    return np.asarray(keras.saving.load_model(at_sources["keras"], compile=False)(x, training=False))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_source_format_to_pytorch_loads_strict_and_computes_the_same(at_sources, fmt, tmp_path, torch):
    import safetensors.torch

    from tests.keras import twins

    result = bridge.convert(at_sources[fmt], to="pytorch", out=tmp_path / "pt", target=TWIN)
    assert result.plan.ok and result.files == ["model.safetensors"]
    model = twins.twin()
    model.load_state_dict(safetensors.torch.load_file(tmp_path / "pt" / "model.safetensors"), strict=True)
    x = np.random.default_rng(3).standard_normal((2, 6, 6, 2)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - _keras_output(at_sources, x)).max() <= 1e-5
    source_model = "twins.py:tf_keras_convnet" if fmt in LEGACY else KERAS
    report = bridge.verify(at_sources[fmt], tmp_path / "pt", target=TWIN, source_model=source_model)
    assert report.ok and report.values_equal == report.values_compared == 17
    assert [o.name for o in report.outputs] == ["output"] and report.outputs[0].max_abs <= 1e-5


def test_keras_archive_verifies_forward_without_a_source_factory(at_sources, tmp_path):
    bridge.convert(at_sources["keras"], to="pytorch", out=tmp_path / "pt", target=TWIN)
    report = bridge.verify(at_sources["keras"], tmp_path / "pt", target=TWIN)
    assert report.ok and report.outputs and report.outputs[0].ok


def test_gru_embedding_conv1d_to_pytorch(at_sources, tmp_path, torch):
    plan = bridge.check(at_sources["seq-weights"], to="pytorch", target="twins.py:twin_seq")
    assert plan.ok
    rows = {m.target: (m.source, m.transform) for m in plan.matched}
    assert rows["gru.bias_ih_l0"] == ("layers/gru/cell/vars/2", "row(0)|gates(zrh->rzh)")
    assert rows["gru.bias_hh_l0"] == ("layers/gru/cell/vars/2", "row(1)|gates(zrh->rzh)")
    assert rows["gru.weight_ih_l0"][1] == "transpose|gates(zrh->rzh)"
    bridge.convert(at_sources["seq-weights"], to="pytorch", out=tmp_path / "pt", target="twins.py:twin_seq")
    report = bridge.verify(at_sources["seq-keras"], tmp_path / "pt", target="twins.py:twin_seq")
    assert report.ok and report.outputs[0].max_abs <= 1e-5


@pytest.mark.parametrize(("name", "torch_factory", "keras_factory"),
                         [("weights", TWIN, KERAS), ("seq-weights", "twins.py:twin_seq", "twins.py:keras_seq")])
def test_round_trip_keras_pytorch_keras_is_bit_exact(at_sources, tmp_path, name, torch_factory, keras_factory):
    """Keras -> PyTorch -> Keras 3 .weights.h5 that Keras itself loads, every value equal."""
    from tests.keras import twins

    bridge.convert(at_sources[name], to="pytorch", out=tmp_path / "pt", target=torch_factory)
    result = bridge.convert(tmp_path / "pt" / "model.safetensors", to="tensorflow", out=tmp_path / "k",
                            target=keras_factory)  # fmt: skip
    assert result.plan.ok and result.files == ["model.weights.h5"]
    back = getattr(twins, keras_factory.split(":")[1])()
    back.load_weights(tmp_path / "k" / "model.weights.h5")
    original = getattr(twins, keras_factory.split(":")[1])()
    original.load_weights(at_sources[name])
    for a, b in zip(original.weights, back.weights, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), a.path  # auto names differ per instance
    report = bridge.verify(tmp_path / "pt" / "model.safetensors", tmp_path / "k", target=keras_factory,
                           source_model=torch_factory)  # fmt: skip
    assert report.ok and report.outputs[0].max_abs <= 1e-5


def _trained(tmp_path, factory):
    """A twin's own (random, trained-like) state dict: both torch biases of its RNN non-zero."""
    import safetensors.torch

    from tests.keras import twins

    state = {k: v.clone() for k, v in getattr(twins, factory)().state_dict().items()}
    safetensors.torch.save_file(state, tmp_path / "trained.safetensors")
    return tmp_path / "trained.safetensors", state


def test_pytorch_trained_lstm_merges_its_two_biases(at_sources, tmp_path, torch):
    """Keras' single LSTM bias is torch's bias_ih + bias_hh: summed (float32, bit for bit), and it comes back
    from Keras as (the sum, zeros); every other tensor round-trips exactly."""
    import h5py
    import safetensors.torch

    source, state = _trained(tmp_path, "twin")
    assert state["rnn.bias_hh_l0"].abs().min() > 0
    plan = bridge.check(source, to="tensorflow", target=KERAS)
    assert plan.ok and not plan.gaps
    rows = {m.source: (m.target, m.transform) for m in plan.matched}
    assert rows["rnn.bias_ih_l0"] == ("layers/lstm/cell/vars/2", "sum(0,2)")
    assert rows["rnn.bias_hh_l0"] == ("layers/lstm/cell/vars/2", "sum(1,2)")
    assert any("comes back as (the sum, zeros)" in n for n in plan.notes)
    bridge.convert(source, to="tensorflow", out=tmp_path / "k", target=KERAS)
    with h5py.File(tmp_path / "k" / "model.weights.h5") as f:
        written = f["layers/lstm/cell/vars/2"][()]
    summed = state["rnn.bias_ih_l0"].numpy() + state["rnn.bias_hh_l0"].numpy()
    assert written.dtype == np.float32 and written.tobytes() == summed.tobytes()
    report = bridge.verify(source, tmp_path / "k", target=KERAS, source_model=TWIN)
    assert report.ok and report.values_equal == report.values_compared == 18
    assert report.outputs[0].max_abs <= 1e-5
    bridge.convert(tmp_path / "k" / "model.weights.h5", to="pytorch", out=tmp_path / "pt", target=TWIN)
    back = safetensors.torch.load_file(tmp_path / "pt" / "model.safetensors")
    assert back["rnn.bias_ih_l0"].numpy().tobytes() == summed.tobytes()
    assert not back["rnn.bias_hh_l0"].any()
    for name, value in state.items():
        if name not in ("rnn.bias_ih_l0", "rnn.bias_hh_l0", "bn.num_batches_tracked"):
            assert back[name].numpy().tobytes() == value.numpy().tobytes(), name


def test_pytorch_trained_gru_keeps_both_bias_rows(at_sources, tmp_path, torch):
    """A GRU (reset_after=True) keeps torch's two biases as two rows: PyTorch -> Keras -> PyTorch is exact."""
    import safetensors.torch

    source, state = _trained(tmp_path, "twin_seq")
    assert state["gru.bias_hh_l0"].abs().min() > 0
    plan = bridge.check(source, to="tensorflow", target="twins.py:keras_seq")
    assert plan.ok and not plan.gaps
    rows = {m.source: m.transform for m in plan.matched}
    assert rows["gru.bias_ih_l0"] == "gates(rzh->zrh)|place(0,2)"
    assert rows["gru.bias_hh_l0"] == "gates(rzh->zrh)|place(1,2)"
    bridge.convert(source, to="tensorflow", out=tmp_path / "k", target="twins.py:keras_seq")
    report = bridge.verify(source, tmp_path / "k", target="twins.py:keras_seq", source_model="twins.py:twin_seq")
    assert report.ok and report.outputs[0].max_abs <= 1e-5
    bridge.convert(tmp_path / "k" / "model.weights.h5", to="pytorch", out=tmp_path / "pt", target="twins.py:twin_seq")
    back = safetensors.torch.load_file(tmp_path / "pt" / "model.safetensors")
    assert back.keys() == state.keys()
    for name, value in state.items():
        assert back[name].numpy().tobytes() == value.numpy().tobytes(), name


def test_check_of_keras_files_imports_no_framework(at_sources, tmp_path):
    """A reference checkpoint as the target: names and shapes only, module kinds inferred."""
    bridge.convert(at_sources["weights"], to="pytorch", out=tmp_path / "pt", target=TWIN)
    code = (
        "import sys, bridge\n"
        f"for src in {[str(at_sources[f]) for f in ('weights', 'tf2', 'h5-full')]!r}:\n"
        f"    assert bridge.check(src, to='pytorch', target={str(tmp_path / 'pt' / 'model.safetensors')!r}).ok\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf_keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_convert_suggests_a_verify_that_passes(at_sources, tmp_path):
    import shlex

    from click.testing import CliRunner

    from bridge.cli import cli

    out = tmp_path / "pt"
    result = CliRunner().invoke(cli, ["convert", str(at_sources["keras"]), "--to", "pytorch", "--target", TWIN,
                                      "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    suggested = next(line for line in result.output.splitlines() if line.startswith("next: bridge verify"))
    args = shlex.split(suggested.removeprefix("next: bridge "))
    assert args[-2:] == ["--target", TWIN]
    verified = CliRunner().invoke(cli, args)
    assert verified.exit_code == 0 and "forward output" in verified.output and "verdict: PASS" in verified.output
