"""The keras pack end to end on real files: check, convert both ways, verify (values and forward)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import bridge

from .twins import EPS  # noqa: F401  (the twins' epsilon is Keras' default)

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

TWIN = "twins.py:twin"
KERAS = "twins.py:keras_convnet"
FORMATS = ["weights", "keras", "tf2", "tf2-legacy", "h5-full", "h5-weights", "export", "saved-model-legacy"]
LEGACY = {"tf2-legacy", "h5-weights", "saved-model-legacy"}  # written by tf-keras: restored into the tf-keras model


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

    from tests.families.keras import twins

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


def test_forward_output_shapes_that_differ_fail_at_any_atol(at_sources, tmp_path):
    """A twin whose output has another shape than the Keras model's: the values pass, the forward fails."""
    bridge.convert(at_sources["keras"], to="pytorch", out=tmp_path / "pt", target=TWIN)
    report = bridge.verify(at_sources["keras"], tmp_path / "pt", target="twins.py:twin_unsqueezed", atol=1e9)
    x = np.zeros((2, 6, 6, 2), np.float32)
    assert report.values_equal == report.values_compared == 17 and not report.value_failures
    assert [(o.name, o.shape, o.max_abs, o.ok) for o in report.outputs] == [("output", (2, 1, 3), np.inf, False)]
    assert f"output shapes differ: Keras {_keras_output(at_sources, x).shape}, PyTorch (2, 1, 3)" in report.notes
    assert not report.ok and report.exit_code == 1


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


@pytest.mark.parametrize(
    ("name", "torch_factory", "keras_factory"),
    [
        ("weights", TWIN, KERAS),
        ("seq-weights", "twins.py:twin_seq", "twins.py:keras_seq"),
        ("stacked-weights", "twins.py:twin_stacked", "twins.py:keras_stacked"),
        ("birnn-weights", "twins.py:twin_birnn", "twins.py:keras_birnn"),
    ],
)
def test_round_trip_keras_pytorch_keras_is_bit_exact(at_sources, tmp_path, name, torch_factory, keras_factory):
    """Keras -> PyTorch -> Keras 3 .weights.h5 that Keras itself loads, every value equal."""
    from tests.families.keras import twins

    bridge.convert(at_sources[name], to="pytorch", out=tmp_path / "pt", target=torch_factory)
    result = bridge.convert(
        tmp_path / "pt" / "model.safetensors", to="tensorflow", out=tmp_path / "k", target=keras_factory
    )
    assert result.plan.ok and result.files == ["model.weights.h5"]
    back = getattr(twins, keras_factory.split(":")[1])()
    back.load_weights(tmp_path / "k" / "model.weights.h5")
    original = getattr(twins, keras_factory.split(":")[1])()
    original.load_weights(at_sources[name])
    for a, b in zip(original.weights, back.weights, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), a.path  # auto names differ per instance
    report = bridge.verify(
        tmp_path / "pt" / "model.safetensors", tmp_path / "k", target=keras_factory, source_model=torch_factory
    )
    assert report.ok and report.outputs[0].max_abs <= 1e-5


STACKED = "twins.py:twin_stacked"
BIRNN = "twins.py:twin_birnn"
TRAINED = [("twin", "keras_convnet"), ("twin_seq", "keras_seq"), ("twin_stacked", "keras_stacked"),
           ("twin_stacked_separate", "keras_stacked"), ("twin_birnn", "keras_birnn")]  # fmt: skip


def _trained(tmp_path, factory):
    """A twin's own (random, trained-like) state dict: both torch biases of its RNNs non-zero."""
    import safetensors.torch

    from tests.families.keras import twins

    state = {k: v.clone() for k, v in getattr(twins, factory)().state_dict().items()}
    safetensors.torch.save_file(state, tmp_path / "trained.safetensors")
    return tmp_path / "trained.safetensors", state


def test_pytorch_trained_lstm_merges_its_two_biases(at_sources, tmp_path, torch):
    """Keras' single LSTM bias is torch's bias_ih + bias_hh: written as their float32 sum, bit for bit."""
    import h5py

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


@pytest.mark.parametrize(("torch_factory", "keras_factory"), TRAINED)
def test_pytorch_trained_rnns_to_keras_and_back(at_sources, tmp_path, torch, torch_factory, keras_factory):
    """PyTorch -> Keras verifies (values bit for bit, forward at 1e-5); back to PyTorch every tensor is exact
    except each merged LSTM bias pair, which comes back as (the sum, zeros); a GRU keeps both bias rows."""
    import safetensors.torch

    source, state = _trained(tmp_path, torch_factory)
    keras_target, torch_target = f"twins.py:{keras_factory}", f"twins.py:{torch_factory}"
    plan = bridge.check(source, to="tensorflow", target=keras_target)
    assert plan.ok and not plan.gaps
    summed = {m.source: m.transform for m in plan.matched if m.transform.startswith("sum(")}
    gru_biases = [m.transform for m in plan.matched if m.source.startswith("gru") and ".bias_" in m.source]
    assert all(t.endswith(("place(0,2)", "place(1,2)")) for t in gru_biases)
    bridge.convert(source, to="tensorflow", out=tmp_path / "k", target=keras_target)
    report = bridge.verify(source, tmp_path / "k", target=keras_target, source_model=torch_target)
    assert report.ok and report.values_equal == report.values_compared == len(plan.matched)
    assert report.outputs[0].max_abs <= 1e-5
    bridge.convert(tmp_path / "k" / "model.weights.h5", to="pytorch", out=tmp_path / "pt", target=torch_target)
    back = safetensors.torch.load_file(tmp_path / "pt" / "model.safetensors")
    assert back.keys() == state.keys()
    for name, value in state.items():
        if name in summed:  # bias_ih = sum(0,2) carries the sum, bias_hh = sum(1,2) comes back as zeros
            if summed[name] == "sum(0,2)":
                other = name.replace("bias_ih", "bias_hh")
                assert back[name].numpy().tobytes() == (value + state[other]).numpy().tobytes(), name
            else:
                assert not back[name].any(), name
        else:
            assert back[name].numpy().tobytes() == value.numpy().tobytes(), name
    assert bool(summed) == (torch_factory != "twin_seq")  # every twin but the GRU-only one has an LSTM


@pytest.mark.parametrize("target", [STACKED, "twins.py:twin_stacked_separate"])
def test_stacked_keras_rnns_fill_num_layers_or_separate_modules(at_sources, tmp_path, target):
    """Keras lstm, lstm_1 (return_sequences=True) fill one nn.LSTM(num_layers=2)'s *_l0, *_l1, or two modules."""
    plan = bridge.check(at_sources["stacked-weights"], to="pytorch", target=target)
    assert plan.ok
    rows = {m.target: m.source for m in plan.matched}
    if target == STACKED:
        assert rows["lstm.rnn.weight_ih_l1"] == "layers/lstm_1/cell/vars/0"
        assert rows["gru.rnn.bias_hh_l1"] == "layers/gru_1/cell/vars/2"
        assert "layer lstm_1 (lstm) -> `lstm.rnn` (LSTM) layer 1" in plan.notes
        assert any(n.startswith("`lstm.rnn` (LSTM) has num_layers=2: it takes the next 2") for n in plan.notes)
    else:
        assert rows["lstm.1.rnn.weight_ih_l0"] == "layers/lstm_1/cell/vars/0"
        assert "layer gru_1 (gru) -> `gru.1.rnn` (GRU)" in plan.notes
    second = {n.replace("bias_ih", "bias_hh") for n in rows if n.startswith("lstm.") and "bias_ih" in n}
    assert {x.name for x in plan.missing} == second and len(second) == 2 and all(x.fill for x in plan.missing)
    bridge.convert(at_sources["stacked-weights"], to="pytorch", out=tmp_path / "pt", target=target)
    report = bridge.verify(
        at_sources["stacked-weights"], tmp_path / "pt", target=target, source_model="twins.py:keras_stacked"
    )
    assert report.ok and report.values_equal == report.values_compared == 16
    assert report.outputs[0].max_abs <= 1e-5


BIRNN_FORMATS = {"birnn-weights": "twins.py:keras_birnn", "birnn-keras": None, "birnn-tf2": "twins.py:keras_birnn",
                 "birnn-h5-full": None, "birnn-tf2-legacy": "twins.py:tf_keras_birnn",
                 "birnn-export": "twins.py:keras_birnn"}  # fmt: skip


@pytest.mark.parametrize("fmt", list(BIRNN_FORMATS))
def test_bidirectional_every_source_format_to_pytorch(at_sources, tmp_path, fmt):
    """Bidirectional(LSTM) x2 and Bidirectional(GRU): forward_layer -> *_l{k}, backward_layer -> *_l{k}_reverse,
    as Keras 3 (.weights.h5, .keras), Keras 2 .h5 and TF2 checkpoints (both Keras versions) store them."""
    plan = bridge.check(at_sources[fmt], to="pytorch", target=BIRNN)
    assert plan.ok and len(plan.matched) == 22
    with bridge.load(at_sources[fmt]) as ckpt:  # an export's keys are `variables/N`: its paths name the layers
        named = {r.name: f"{r.name} {r.path}" for r in ckpt.values()}
    for m in plan.matched:
        if m.target.startswith(("lstm.", "gru.")):
            assert ("backward" in named[m.source]) == m.target.endswith("_reverse"), (m.source, m.target)
        if m.target.startswith("lstm.weight_ih"):  # layer 1 reads both directions of layer 0: 2 x 4 inputs
            assert m.source_shape == ((8, 16) if "_l1" in m.target else (3, 16)), (m.source, m.target)
    bridge.convert(at_sources[fmt], to="pytorch", out=tmp_path / "pt", target=BIRNN)
    report = bridge.verify(at_sources[fmt], tmp_path / "pt", target=BIRNN, source_model=BIRNN_FORMATS[fmt])
    assert report.ok and report.values_equal == report.values_compared == 22
    assert report.outputs and report.outputs[0].max_abs <= 1e-5


def test_exported_saved_model_second_copies_and_seed_state_are_expected(at_sources):
    """Keras 3 model.export() saves each variable twice (`variables/N`, `_all_variables/M`, one full name): the
    layers come from the full names in `variables/N` order, each second copy is an expected leftover compared
    byte for byte with the tensor used, and the LSTM's seed-generator state is not a weight."""
    from click.testing import CliRunner

    from bridge.cli import cli

    plan = bridge.check(at_sources["export"], to="pytorch", target=TWIN)
    assert plan.ok and len(plan.matched) == 17
    with bridge.load(at_sources["export"]) as ckpt:
        assert ckpt.tied == []  # the root's index lists gather the variables; they do not own them
    rows = {m.target: m.source for m in plan.matched}
    assert rows["conv.weight"] == "variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    assert rows["fc2.bias"] == "variables/17/.ATTRIBUTES/VARIABLE_VALUE"
    copies = [x for x in plan.unused if x.name.startswith("_all_variables/")]
    assert len(copies) == 17 and all(x.expected for x in copies)
    assert all("saved again by Keras' export (byte-equal to the tensor it copies)" in x.reason for x in copies)
    seed = [x for x in plan.unused if x.name == "variables/11/.ATTRIBUTES/VARIABLE_VALUE"]
    assert len(seed) == 1 and seed[0].expected and "random-number state" in seed[0].reason
    with bridge.load(at_sources["export"]) as ckpt:
        assert ckpt["variables/0/.ATTRIBUTES/VARIABLE_VALUE"].path == "conv2d/kernel"
        copy_of = ckpt.metadata["copies"]
        assert sorted(copy_of.values()) == sorted(
            f"variables/{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(18) if i != 11
        )
        conv_copy = next(c for c, o in copy_of.items() if o == "variables/0/.ATTRIBUTES/VARIABLE_VALUE")
        assert ckpt[conv_copy].path == conv_copy.split("/.")[0]  # `_all_variables/M`: not the full name again
    shown = CliRunner().invoke(cli, ["inspect", str(at_sources["export"])])
    assert shown.exit_code == 0 and "\nlstm/lstm_cell " in shown.output
    assert "saved twice (second copies: same full name, dtype, shape and checksum): 17 tensors" in shown.output


def test_rnn_pairing_mismatches_name_the_layer_and_the_module(at_sources):
    """Bidirectional Keras layers pair only with bidirectional torch RNNs; a third torch layer has no source."""
    plan = bridge.check(at_sources["birnn-weights"], to="pytorch", target="twins.py:twin_birnn_one_way")
    assert not plan.ok
    assert (
        "Keras layer bidirectional/backward_layer (lstm in a Bidirectional) has no torch lstm module with "
        "bidirectional=True left to fill"
    ) in plan.notes
    assert "torch module `lstm` (LSTM) layer 2 has no Keras lstm layer to fill it" in plan.notes
    assert {g.name for g in plan.gaps} >= {"lstm.weight_ih_l2", "layers/bidirectional_1/forward_layer/cell/vars/0"}


def test_check_of_keras_files_imports_no_framework(at_sources, tmp_path):
    """A reference checkpoint as the target: names and shapes only, module kinds inferred."""
    bridge.convert(at_sources["weights"], to="pytorch", out=tmp_path / "pt", target=TWIN)
    bridge.convert(at_sources["birnn-weights"], to="pytorch", out=tmp_path / "bi", target=BIRNN)
    code = (
        "import sys, bridge\n"
        f"for src in {[str(at_sources[f]) for f in ('weights', 'tf2', 'h5-full', 'export')]!r}:\n"
        f"    assert bridge.check(src, to='pytorch', target={str(tmp_path / 'pt' / 'model.safetensors')!r}).ok\n"
        f"for src in {[str(at_sources[f]) for f in ('birnn-tf2', 'birnn-h5-full')]!r}:\n"  # layers, directions inferred
        f"    assert bridge.check(src, to='pytorch', target={str(tmp_path / 'bi' / 'model.safetensors')!r}).ok\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf_keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_convert_suggests_a_verify_that_passes(at_sources, tmp_path):
    import shlex

    from click.testing import CliRunner

    from bridge.cli import cli

    out = tmp_path / "pt"
    result = CliRunner().invoke(
        cli, ["convert", str(at_sources["keras"]), "--to", "pytorch", "--target", TWIN, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    suggested = next(line for line in result.output.splitlines() if line.startswith("next: bridge verify"))
    args = shlex.split(suggested.removeprefix("next: bridge "))
    assert args[-2:] == ["--target", TWIN]
    verified = CliRunner().invoke(cli, args)
    assert verified.exit_code == 0 and "forward output" in verified.output and "verdict: PASS" in verified.output


def test_keras_source_without_a_target_says_how_to_give_the_twin(at_sources):
    from click.testing import CliRunner

    from bridge.cli import cli

    result = CliRunner().invoke(cli, ["check", str(at_sources["weights"]), "--to", "pytorch"])
    assert result.exit_code == 2
    assert "No target given for the keras rules" in result.output and "--target FILE.py:FACTORY" in result.output
