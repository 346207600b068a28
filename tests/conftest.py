"""Shared fixtures.  torch is imported before tensorflow when both are needed
(the two bundle conflicting copies of some native libraries; this order works)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(os.environ.get("BRIDGE_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` (third-party files written by real frameworks); skip when absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"third-party fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


def read_variables_txt(path: Path) -> list[tuple[str, str, tuple[int, ...]]]:
    """Parse a ``*.VARIABLES.txt`` listing: ``name<TAB>dtype<TAB>[d0, d1]`` lines after ``#`` comments."""
    rows = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, dtype, shape = line.split("\t")
        dims = shape.strip("[]").strip()
        rows.append((name, dtype, tuple(int(d) for d in dims.split(",")) if dims else ()))
    return rows


@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tf():
    pytest.importorskip("torch")  # load order: torch first, see module docstring
    return pytest.importorskip("tensorflow")


# Keras sources are written once per session for every directory that uses them: Keras numbers
# layers from a process-wide counter, so a second writing would name them differently.
from tests.keras.sources import keras_sources  # noqa: E402, F401
