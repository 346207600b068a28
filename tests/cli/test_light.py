"""`bridge --help` and `bridge inspect` of TF/safetensors/h5 files must not import the heavy frameworks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]

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


_BLOCKED = """
import json, sys
for name in {heavy!r}:
    sys.modules[name] = None  # any import of a framework now fails
from click.testing import CliRunner
from bridge.cli import cli
runner = CliRunner()
out = [runner.invoke(cli, args) for args in json.loads(sys.argv[1])]
print(json.dumps([[r.exit_code, r.output[-300:]] for r in out]))
"""


def test_inspect_works_with_frameworks_unimportable(tmp_path):
    """TF1 checkpoints and safetensors files are read with neither TensorFlow nor torch importable."""
    import numpy as np
    from safetensors.numpy import save_file  # the real safetensors writer, numpy flavour

    save_file(
        {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, dtype=np.int64)},
        str(tmp_path / "m.safetensors"),
    )
    example = str(REPO / "examples" / "tiny-bert")
    invocations = [
        ["inspect", example, "--stats", "--json"],
        ["check", example, "--to", "pytorch"],
        ["inspect", str(tmp_path / "m.safetensors"), "--stats"],
    ]
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKED.format(heavy=HEAVY), json.dumps(invocations)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert [code for code, _ in results] == [0, 0, 0], results


def test_corrupt_value_is_exit_2_naming_file_and_tensor(tmp_path):
    import shutil

    for f in (REPO / "examples" / "tiny-bert").iterdir():
        shutil.copy(f, tmp_path / f.name)
    data = tmp_path / "bert_model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF  # inside the first tensor in name order
    data.write_bytes(bytes(raw))
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--stats"])
    assert result.exit_code == 2, result.output
    assert "bert_model.ckpt.data-00000-of-00001" in result.output and "for tensor `" in result.output
    assert "Traceback" not in result.output
