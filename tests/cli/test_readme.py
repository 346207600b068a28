"""README's main job runs as written: every shell line and the Python block of "## The main job", in a fresh
directory holding the shipped example, each exiting 0 (so README cannot drift from the tool)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

SECTION = "## The main job"


def _blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def _commands() -> list[str]:
    lines = [line.split("  #", 1)[0].strip() for block in _blocks("sh") for line in block.splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return folder


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_section_has_the_commands_of_the_main_job() -> None:
    verbs = [shlex.split(c)[1] for c in _commands()]
    assert verbs[:4] == ["inspect", "check", "convert", "verify"]
    assert all(shlex.split(c)[0] == "bridge" for c in _commands())
    assert len(_blocks("python")) == 1


def test_every_shell_line_runs_as_written(tf, torch, workdir: Path) -> None:
    pytest.importorskip("transformers")
    for command in _commands():  # in order: each uses what the one before wrote
        done = _run([sys.executable, "-m", "bridge", *shlex.split(command)[1:]], workdir)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if shlex.split(command)[1] == "verify":
            assert "verdict: PASS" in done.stdout and "forward" in done.stdout, done.stdout
    assert (workdir / "tiny-bert-pytorch" / "model.safetensors").is_file()
    assert (workdir / "tiny-bert-hf-tf" / "tf_model.h5").is_file()


def test_the_python_block_runs_as_written(workdir: Path) -> None:
    done = _run([sys.executable, "-c", _blocks("python")[0]], workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "(16, 16) float32 model"
    assert done.stdout.splitlines()[-1] == "True"
