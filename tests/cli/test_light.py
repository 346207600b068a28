"""`bridge --help` and `bridge inspect` of TF/safetensors/h5 files must not import the heavy frameworks, and no
command imports a library its input does not need (ml_dtypes only for bfloat16/float8, h5py only for HDF5, yaml only
for gin/YAML)."""

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
# Each costs start-up time, so only an input that needs it may import it.
BY_INPUT = ("ml_dtypes", "h5py", "yaml")

_PROBE = """
import json, sys
from click.testing import CliRunner
from bridge.cli import cli
runner = CliRunner()
results = [runner.invoke(cli, args).exit_code for args in json.loads(sys.argv[1])]
heavy = [m for m in {watched!r} if m in sys.modules]
print(json.dumps({{"codes": results, "heavy": heavy}}))
"""


def run_isolated(*invocations: list[str], watched: tuple[str, ...] = HEAVY) -> dict:
    """Run CLI invocations in a fresh interpreter and report which of the ``watched`` modules got imported."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(watched=watched), json.dumps(list(invocations))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_of_every_command_stays_light():
    commands = [[]] + [[name] for name in cli.commands]
    result = run_isolated(*[[*c, "--help"] for c in commands], watched=HEAVY + BY_INPUT)
    assert result == {"codes": [0] * len(commands), "heavy": []}


@pytest.mark.parametrize(
    "args",
    [["inspect"], ["inspect", "--stats"], ["check", "--to", "pytorch"], ["convert", "--to", "pytorch"]],
    ids=lambda a: "-".join(x.strip("-") for x in a),
)
def test_float32_tf_checkpoint_imports_only_what_it_uses(args, tmp_path):
    """The float32 TF1 example: no framework, no ml_dtypes (no bfloat16 in it), no h5py, no yaml."""
    output = ["-o", str(tmp_path / "out")] if args[0] == "convert" else []
    result = run_isolated([args[0], str(REPO / "examples" / "tiny-bert"), *args[1:], *output], watched=HEAVY + BY_INPUT)
    assert result == {"codes": [0], "heavy": []}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_safetensors_imports_ml_dtypes_only_for_bfloat16(dtype, tmp_path):
    """Detection passes the HDF5 formats without h5py; a bfloat16 tensor still decodes, through ml_dtypes on demand."""
    import ml_dtypes
    import numpy as np
    from safetensors.numpy import save_file

    values = np.arange(6, dtype=np.float32)
    save_file(
        {"w": values.astype(ml_dtypes.bfloat16) if dtype == "bfloat16" else values}, str(tmp_path / "m.safetensors")
    )
    result = run_isolated(["inspect", str(tmp_path / "m.safetensors"), "--stats"], watched=HEAVY + BY_INPUT)
    assert result == {"codes": [0], "heavy": ["ml_dtypes"] if dtype == "bfloat16" else []}


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
print(json.dumps([[r.exit_code, r.output[-4000:]] for r in out]))  # the end of a JSON report
"""


@pytest.mark.slow
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
