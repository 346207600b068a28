"""`bridge --help` and `bridge inspect` of TF/safetensors/h5 files must not import the heavy frameworks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bridge.cli import cli

HEAVY = ("tensorflow", "torch", "keras", "tf_keras", "transformers")

_PROBE = """
import json, sys
from click.testing import CliRunner
from bridge.cli import cli
runner = CliRunner()
results = [runner.invoke(cli, args).exit_code for args in json.loads(sys.argv[1])]
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"codes": results, "heavy": heavy}}))
"""


def run_isolated(*invocations: list[str]) -> dict:
    """Run CLI invocations in a fresh interpreter and report which heavy modules got imported."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), json.dumps(list(invocations))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_of_every_command_stays_light():
    commands = [[]] + [[name] for name in cli.commands]
    result = run_isolated(*[[*c, "--help"] for c in commands])
    assert result == {"codes": [0] * len(commands), "heavy": []}


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_help_teaches_with_examples_or_description(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) > 4


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "bridge" in result.output
