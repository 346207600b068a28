"""Printed commands use the name the tool was started by: `bridge` is also iproute2's command, so a user of
`ckpt-bridge` or `python -m bridge` must be shown a line that runs this tool."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"
# what an installed console script does: argv[0] is the script's path, then bridge.cli.main()
_AS_SCRIPT = "import sys; sys.argv[0] = sys.argv.pop(1); from bridge.cli import main; main()"


def _run(argv0: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bridge"] if argv0 == "-m" else [sys.executable, "-c", _AS_SCRIPT, argv0]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


@pytest.mark.parametrize(
    ("argv0", "name"),
    [("/opt/venv/bin/ckpt-bridge", "ckpt-bridge"), ("/opt/venv/bin/bridge", "bridge"), ("-m", "python -m bridge")],
)
def test_next_line_and_usage_errors_name_the_command_as_invoked(tmp_path, argv0, name):
    done = _run(argv0, "convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("next: ")]
    assert line == f"next: {name} verify " + shlex.join([str(EXAMPLE), str(tmp_path / "o")])
    done = _run(argv0, "convert", "--no-such-option")
    assert done.returncode == 2
    assert f"Usage: {name} convert [OPTIONS] SOURCE" in done.stderr
    assert f"Try '{name} convert --help' for help." in done.stderr


def test_the_installed_console_script(tmp_path):
    script = Path(sys.executable).with_name("ckpt-bridge")
    if not script.is_file():
        pytest.skip("ckpt-bridge is not installed beside this interpreter")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, run by the installed script
    out = tmp_path / "o"
    done = subprocess.run(
        [str(script), "convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"next: ckpt-bridge verify {shlex.join([str(EXAMPLE), str(out)])}" in done.stdout
    # a refused plan's hint too: the command it names is this one
    collide = "bert/pooler/dense/kernel=bert.pooler.dense.bias"
    done = subprocess.run(
        [str(script), "convert", str(EXAMPLE), "--to", "pytorch", "--map", collide, "-o", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"`ckpt-bridge check {EXAMPLE} --to pytorch --map {collide}` shows the whole report" in done.stderr
