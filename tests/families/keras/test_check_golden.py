"""Golden `bridge check` reports of the keras pack (issue 4): Keras 3 and TF2 object checkpoints of a small
conv/dense/norm/LSTM model against its PyTorch twin, and against a twin with a layer of another width."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bridge.cli import cli

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out


@pytest.fixture
def at_sources(golden, keras_sources, monkeypatch):
    monkeypatch.chdir(keras_sources["dir"])  # relative paths in the reports
    return keras_sources


@pytest.mark.parametrize(("name", "source"), [("weights", "convnet.weights.h5"), ("tf2", "tf2/ckpt-1")])
def test_keras_sources_against_the_twin(golden, at_sources, name, source):
    out = golden(
        f"check_keras_{name}_twin.txt", ["check", source, "--to", "pytorch", "--target", "twins.py:twin", "-v"], 0
    )
    assert "rules: keras" in out and "verdict: OK" in out
    plan = json.loads(
        CliRunner().invoke(cli, ["check", source, "--to", "pytorch", "--target", "twins.py:twin", "--json"]).output
    )
    filled = {m["target"] for m in plan["matched"]} | {m["name"] for m in plan["missing"]}
    from tests.families.keras import twins

    assert filled == set(twins.twin().state_dict())
    assert all(m["expected"] for m in plan["missing"]) and plan["mismatched"] == []


def test_wrong_width_twin_names_the_layer_and_shapes(golden, at_sources):
    out = golden(
        "check_keras_weights_twin_wrong.txt",
        ["check", "convnet.weights.h5", "--to", "pytorch", "--target", "twins.py:twin_wrong"],
        1,
    )
    assert "layer dense_1 (dense) -> `fc2` (Linear)" in out
    assert "layers/dense_1/vars/0 [6, 3] -> fc2.weight [4, 6]: after transpose the source is (3, 6)" in out


def test_stacked_bidirectional_rnn_against_its_twin(golden, at_sources):
    """Two stacked Bidirectional LSTMs and a Bidirectional GRU into nn.LSTM(num_layers=2, bidirectional=True)
    and nn.GRU(bidirectional=True): which Keras direction fills which torch layer, the zero second biases."""
    out = golden(
        "check_keras_birnn_twin.txt",
        ["check", "birnn.weights.h5", "--to", "pytorch", "--target", "twins.py:twin_birnn", "-v"],
        0,
    )
    assert "layer bidirectional_1/backward_layer (lstm) -> `lstm` (LSTM) layer 1 reverse" in out
    assert "layers/bidirectional_2/backward_layer/cell/vars/2 -> gru.bias_hh_l0_reverse  [row(1)|" in out
    assert "verdict: OK" in out


def test_exported_saved_model_against_the_twin(golden, at_sources):
    """Keras 3 model.export(): layers from the variables' full names; the second copies Keras' export saves and
    the seed-generator state are expected leftovers, the copies compared byte for byte with the tensors used."""
    out = golden(
        "check_keras_export_twin.txt", ["check", "convnet_export", "--to", "pytorch", "--target", "twins.py:twin"], 0
    )
    assert "source: convnet_export (saved-model, rules: keras)" in out and "verdict: OK" in out
    assert "variables/0/.ATTRIBUTES/VARIABLE_VALUE -> conv.weight  [permute(3,2,0,1)]" in out
