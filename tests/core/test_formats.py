"""The format registry: names, detection errors, laziness."""

from __future__ import annotations

import pytest

from bridge import formats
from bridge.api import load
from bridge.core.errors import CheckpointNotFound, FormatNotRecognized, UsageError


def test_every_format_resolves_to_callables():
    for fmt in formats.formats():
        assert callable(fmt.sniff), fmt.name
        assert callable(fmt.reader), fmt.name


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="twice"):
        formats.register(formats.get("torch"))


def test_unknown_format_name_lists_known_ones():
    with pytest.raises(UsageError, match="Known formats: tf-checkpoint"):
        formats.get("onnx")


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointNotFound) as err:
        load(tmp_path / "nope.ckpt")
    assert "nope.ckpt" in str(err.value)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(FormatNotRecognized) as err:
        load(path)
    assert "notes.txt" in str(err.value) and "--format" in str(err.value)
