"""`BRIDGE_UPDATE_GOLDEN=1` rewrites the golden files, so every golden test passes against what it just wrote: CI
(`CI` set, as `.ci/run` exports it) must refuse it rather than pass without comparing anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

GOLDEN_TEST = "tests/families/google_bert/test_check_golden.py::test_default_target_keeps_every_head"
GOLDEN_FILE = REPO / "tests" / "families" / "google_bert" / "files" / "check_tiny_bert_default.txt"


def test_golden_update_is_refused_under_ci() -> None:
    before = GOLDEN_FILE.read_bytes()
    env = {**os.environ, "BRIDGE_UPDATE_GOLDEN": "1", "CI": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", GOLDEN_TEST, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BRIDGE_UPDATE_GOLDEN=1 is refused when CI is set" in result.stdout
    assert "1 failed" in result.stdout
    assert GOLDEN_FILE.read_bytes() == before
