"""`convert --force` over a previous output: a run that fails or is interrupted part-way leaves the previous output
byte-identical, never shows a partial directory at the output path, and leaves no temporary sibling behind.

The failure is real damage: a copy of the tiny google-research checkpoint with one byte of a tensor's data flipped,
which the reader's CRC32C check finds only when that tensor is read, after others have been written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.commands.convert import convert
from bridge.core.errors import CorruptCheckpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-bert"
DAMAGED_TENSOR = "bert/pooler/dense/kernel"  # read after most of the others


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A finished conversion at ``tmp_path/out``, and its bytes."""
    out = tmp_path / "out"
    convert(EXAMPLE, to="pytorch", out=out)
    return out, _snapshot(out)


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """The example checkpoint with one byte of DAMAGED_TENSOR's stored value flipped."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    with bridge.load(src) as ckpt:
        file, at = ckpt[DAMAGED_TENSOR].location.split(" @ ")
        nbytes = ckpt[DAMAGED_TENSOR].nbytes
    data = bytearray((src / file).read_bytes())
    data[int(at) + nbytes // 2] ^= 0x40
    (src / file).write_bytes(bytes(data))
    return src


def _siblings(out: Path) -> list[str]:
    """Everything beside ``out`` that belongs to it (the temporary ``.out.partial-*``, ``.out.old-*``)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _watch(out: Path, before: dict[str, bytes], seen: list[tuple[int, int]]):
    """A progress hook that checks, after each tensor written, that ``out`` still holds the previous output
    and that the writing happens in a temporary sibling."""

    def hook(done: int, total: int) -> None:
        seen.append((done, total))
        assert _snapshot(out) == before, "the output path shows a partial directory"
        assert any(name.startswith(f".{out.name}.partial-") for name in _siblings(out))

    return hook


def test_failing_force_run_keeps_the_previous_output(previous, damaged):
    out, before = previous
    seen: list[tuple[int, int]] = []
    with pytest.raises(CorruptCheckpoint) as err:
        convert(damaged, to="pytorch", out=out, force=True, on_progress=_watch(out, before, seen))
    assert DAMAGED_TENSOR in str(err.value)
    assert seen and seen[-1][0] < seen[-1][1]  # it failed part-way: tensors were written before the damaged one
    assert _snapshot(out) == before
    assert _siblings(out) == []


def test_failing_force_run_from_the_cli_keeps_the_previous_output(previous, damaged):
    out, before = previous
    result = CliRunner().invoke(cli, ["convert", str(damaged), "--to", "pytorch", "-o", str(out), "--force"])
    assert result.exit_code == 2, result.output
    assert DAMAGED_TENSOR in result.output and "Traceback" not in result.output
    assert _snapshot(out) == before
    assert _siblings(out) == []


@pytest.mark.parametrize("to, source", [("pytorch", EXAMPLE), ("tensorflow", None)])
def test_interrupted_force_run_keeps_the_previous_output(previous, tmp_path, to, source):
    """Ctrl-C (KeyboardInterrupt from the progress hook) half-way through, both directions."""
    out, _ = previous
    if source is None:  # PyTorch -> TF over a previous TF output
        source, out = out, tmp_path / "tf"
        convert(source, to="tensorflow", out=out)
    before = _snapshot(out)
    seen: list[tuple[int, int]] = []
    watch = _watch(out, before, seen)

    def interrupt(done: int, total: int) -> None:
        watch(done, total)
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(source, to=to, out=out, force=True, on_progress=interrupt)
    assert len(seen) > 1 and seen[-1][0] < seen[-1][1]
    assert _snapshot(out) == before
    assert _siblings(out) == []


def test_successful_force_run_replaces_the_whole_output(previous, tmp_path):
    """The replacement is whole: files of the previous output that the new one lacks are gone too."""
    out, before = previous
    (out / "stale.txt").write_text("from an earlier run")
    convert(EXAMPLE, to="pytorch", out=out, force=True, out_format="bin")
    assert sorted(_snapshot(out)) == ["config.json", "pytorch_model.bin", "vocab.txt"]
    assert _siblings(out) == []
