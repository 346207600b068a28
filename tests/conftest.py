"""Shared fixtures.  torch is imported before tensorflow when both are needed
(the two bundle conflicting copies of some native libraries; this order works)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

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


def load_test_models(name: str) -> ModuleType:
    """``tests/fixtures_unused/<name>.py``, loaded by path as `bridge unused FILE.py:FACTORY` loads it."""
    path = REPO / "tests" / "fixtures_unused" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bridge_test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pt_models(torch) -> ModuleType:
    return load_test_models("pt_models")


@pytest.fixture(scope="session")
def tf_models(tf) -> ModuleType:
    pytest.importorskip("keras")
    return load_test_models("tf_models")


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
