"""Hints name what is true and the option the user has to change (on files the real writers made)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"  # written by TensorFlow (examples/make_tiny_bert.py)


def test_a_tf_source_to_another_tf_layout_says_how_to_get_there():
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE), "--to", "tensorflow", "--target", "hf-tf"])
    assert result.exit_code == 2
    assert "Unknown" not in result.output  # hf-tf is a known layout: never "unknown ... Known: hf-tf"
    assert "A TensorFlow checkpoint in the google-bert layout is not rewritten into the hf-tf layout" in result.output
    assert "Pass --to pytorch, then convert that output with --to tensorflow --target hf-tf" in result.output
    # a name that is no layout at all is still called unknown, with the known ones
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE), "--to", "tensorflow", "--target", "hf-tff"])
    assert result.exit_code == 2 and "Unknown TensorFlow layout 'hf-tff'. Known: google-bert, hf-tf" in result.output
