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
# CI sets BRIDGE_STRICT_SKIPS=1: a skip hides an independent check (third-party files absent, tf_keras not
# installed, DDP's two processes timing out), so there every skip is a failure that names its reason.
STRICT_SKIPS = os.environ.get("BRIDGE_STRICT_SKIPS") == "1"


def updating_golden() -> bool:
    """Whether ``BRIDGE_UPDATE_GOLDEN=1`` asks the golden tests to rewrite their files. Refused under CI (``CI``
    set, as `.ci/run` does): there a rewrite would compare each file with what it just wrote and always pass."""
    if os.environ.get("BRIDGE_UPDATE_GOLDEN") != "1":
        return False
    if os.environ.get("CI"):
        pytest.fail(
            "BRIDGE_UPDATE_GOLDEN=1 is refused when CI is set: golden files are regenerated on a development "
            "machine and the diff reviewed; unset BRIDGE_UPDATE_GOLDEN (or CI) and run again",
            pytrace=False,
        )
    return True


def _fail_if_strict(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (STRICT_SKIPS and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under BRIDGE_STRICT_SKIPS=1, which makes a skip a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_if_strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield  # a module-level skip (importorskip at import time) skips a whole file
    _fail_if_strict(outcome.get_result())


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """needs_tf/needs_torch from the fixtures a test requests (directly or through others: `tf`, `torch` skip with
    the reason where the framework is absent).  `slow` (over ~5 s on 2 cores, measured with `--durations`) is marked
    in the test files themselves, beside the tests it slows."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "tf" in fixtures:
            item.add_marker(pytest.mark.needs_tf)
        if "torch" in fixtures:
            item.add_marker(pytest.mark.needs_torch)


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
def transformers(torch):
    return pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def renamed(tf, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's variables with the pooler saved under `bert/pool/` (a name no pack maps), written by
    TensorFlow's Saver: the source of the rule-file and --map tests."""
    import shutil
    import sys

    from bridge.api import load

    example = REPO / "examples" / "tiny-bert"
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from make_tiny_bert import write_tf1_checkpoint
    finally:
        sys.path.remove(str(REPO / "examples"))
    with load(example) as ckpt:
        values = {
            r.name.replace("bert/pooler/", "bert/pool/"): r.numpy().copy() for r in ckpt.values() if r.kind == "model"
        }
    folder = tmp_path_factory.mktemp("renamed")
    write_tf1_checkpoint(folder / "bert_model.ckpt", values, adam=False, step=3)
    shutil.copyfile(example / "bert_config.json", folder / "bert_config.json")
    return folder


def run_cli(*args: str, code: int = 0) -> str:
    """``bridge ARGS`` in this process (click's CliRunner): the exit code asserted, the output returned."""
    from click.testing import CliRunner

    from bridge.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tf():
    pytest.importorskip("torch")  # load order: torch first, see module docstring
    return pytest.importorskip("tensorflow")


# Keras sources are written once per session for every directory that uses them: Keras numbers
# layers from a process-wide counter, so a second writing would name them differently.
from tests.families.keras.sources import keras_sources  # noqa: E402, F401
