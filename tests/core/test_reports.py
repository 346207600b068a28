"""Every report has one shape (``ok``, ``exit_code``, ``to_json``): the CLI exits with ``exit_code`` and prints
``to_json()`` for ``--json``, whatever the command.  Real reports, made with no framework."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bridge
from bridge.api import load
from bridge.commands.inspect import inspect_checkpoint
from bridge.core.reports import Report
from bridge.core.unused.report import UnusedReport
from bridge.core.unused.restore import RestoreReport
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "tiny-bert"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> object:
    return bridge.convert(EXAMPLE, to="pytorch", out=tmp_path_factory.mktemp("out") / "pt")


def _reports(converted: object) -> list[object]:
    with load(EXAMPLE) as ckpt:
        inspected = inspect_checkpoint(ckpt)
    out = Path(converted.out)  # type: ignore[attr-defined]
    return [
        bridge.check(EXAMPLE, to="pytorch"),
        converted,
        bridge.verify(EXAMPLE, out, forward=False),
        inspected,
        UnusedReport("pytorch", []),
        RestoreReport("pytorch", "ckpt", "", 0, 0, []),
    ]


def test_every_report_has_the_shape(converted: object) -> None:
    for report in _reports(converted):
        assert isinstance(report, Report), type(report).__name__
        assert report.exit_code == (0 if report.ok else 1), type(report).__name__
        json.dumps(report.to_json(), default=str)  # plain data


def test_verdicts_agree_with_exit_codes(converted: object) -> None:
    check, convert, verify, inspected, unused, restore = _reports(converted)
    assert check.ok and convert.ok and verify.ok and inspected.ok and unused.ok and restore.ok
    assert convert.to_json()["plan"] == check.to_json()
