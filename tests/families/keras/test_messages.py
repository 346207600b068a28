"""Keras verify and check messages read true on files Keras itself wrote: a guess says it is one, in the verdict and
in --json, and a hint names the option the user has to add."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bridge.cli import cli

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

TWIN = "twins.py:twin_seq"
KERAS = "twins.py:keras_seq"
GUESS = "`emb` has a single 2-D weight: taken as an Embedding (a Linear without bias looks the same"


@pytest.fixture
def converted(keras_sources, monkeypatch, tmp_path, torch):
    """seq.weights.h5 (Embedding -> GRU -> Conv1D -> Dense) converted to its PyTorch twin, by the CLI."""
    monkeypatch.chdir(keras_sources["dir"])
    out = tmp_path / "pt"
    args = ["convert", str(keras_sources["seq-weights"]), "--to", "pytorch", "--target", TWIN, "-o", str(out), "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return keras_sources["seq-weights"], out


def test_a_values_only_pass_that_rests_on_a_guess_says_so(converted):
    source, out = converted
    # OUT is a reference state dict: `emb.weight` alone could be an Embedding or a Linear without bias.
    result = CliRunner().invoke(cli, ["verify", str(source), str(out)])
    assert result.exit_code == 0, result.output
    verdict = result.output.splitlines()[-1]
    assert verdict.startswith("verdict: PASS (values only: no forward pass was compared; assumed: " + GUESS)
    payload = json.loads(CliRunner().invoke(cli, ["verify", str(source), str(out), "--json"]).output)
    assert payload["ok"] and [a[: len(GUESS)] for a in payload["assumed"]] == [GUESS]
    assert not any(GUESS in n for n in payload["notes"])  # said once, as what it is
    # check against the same reference: the plan's verdict and --json say it too
    plan = CliRunner().invoke(cli, ["check", str(source), "--to", "pytorch", "--target", str(out)])
    assert plan.exit_code == 0 and f"assumed: {GUESS}" in plan.output, plan.output
    assert "(assumed: " + GUESS in plan.output.splitlines()[-1]
    plan_json = json.loads(
        CliRunner().invoke(cli, ["check", str(source), "--to", "pytorch", "--target", str(out), "--json"]).output
    )
    assert [a[: len(GUESS)] for a in plan_json["assumed"]] == [GUESS]


def test_a_forward_that_agrees_settles_the_guess(converted):
    source, out = converted
    args = ["verify", str(source), str(out), "--target", TWIN, "--source-model", KERAS, "--json"]
    payload = json.loads(CliRunner().invoke(cli, args).output)
    assert payload["ok"] and payload["forward"]["status"] == "pass" and payload["assumed"] == []
    text = CliRunner().invoke(cli, args[:-1]).output
    assert text.splitlines()[-1] == "verdict: PASS"


def test_forward_hint_names_the_option_still_missing(converted):
    source, out = converted
    # --target names the PyTorch twin; what is missing is the Keras model a weights file cannot build
    result = CliRunner().invoke(cli, ["verify", str(source), str(out), "--target", TWIN])
    assert result.exit_code == 0, result.output
    (skipped,) = [line for line in result.output.splitlines() if "forward check skipped" in line]
    assert "Pass --source-model FILE.py:FACTORY returning the Keras model" in skipped
    assert "--target" not in skipped
