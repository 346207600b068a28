"""Golden reports: CLI output compared with committed files.

Regenerate after an intended change with ``BRIDGE_UPDATE_GOLDEN=1 pytest tests/golden``
and review the diff; never edit the files by hand. Refused when ``CI`` is set (`.ci/run` sets it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from tests.conftest import updating_golden

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def golden(monkeypatch, request):
    """Run the CLI from the repository root (relative paths in reports) and compare with a golden file, in the
    ``files/`` folder beside the test module (``tests/golden/files``, ``tests/families/<family>/files``)."""
    monkeypatch.chdir(REPO)
    golden_files = Path(request.fspath).resolve().parent / "files"

    def run(name: str, args: list[str], exit_code: int) -> str:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == exit_code, result.output
        path = golden_files / name
        if updating_golden():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result.output)
        assert result.output == path.read_text()
        return result.output

    return run
