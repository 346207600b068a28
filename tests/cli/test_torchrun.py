"""`torchrun --nproc_per_node 2 -m bridge convert`: the real launcher on CPU (gloo), outputs compared byte for byte
with one process's; errors on one rank end both, with the right exit code, reported once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.commands.convert import convert

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"
# torchrun's rendezvous listens on one fixed port (29500): two of these jobs at once would meet each other.
pytestmark = [pytest.mark.xdist_group("torchrun"), pytest.mark.slow]


def _torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "BRIDGE_RANK_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "bridge", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("shard", ["4000", None], ids=["sharded", "single"])
def test_two_ranks_write_what_one_process_writes(torch: object, tmp_path: Path, shard: str | None) -> None:
    out = tmp_path / "ranks"
    sharding = ["--max-shard-size", shard] if shard else []
    run = _torchrun("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), "--json", *sharding)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout[run.stdout.index("{") :])  # one report: rank 0's
    assert report["ranks"] == 2 and run.stdout.count('"ranks"') == 1
    convert(EXAMPLE, to="pytorch", out=tmp_path / "one", max_shard_size=int(shard) if shard else None)
    assert _files(out) == _files(tmp_path / "one")
    assert sorted(report["files"]) == sorted(_files(out))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_an_error_on_rank_1_ends_both_ranks_with_its_exit_code(torch: object, tmp_path: Path) -> None:
    # A copy of the example with one tensor's bytes flipped: its CRC fails when read, by the rank owning its shard.
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    one = tmp_path / "one"
    convert(EXAMPLE, to="pytorch", out=one, max_shard_size=4000)
    weight_map = json.loads((one / "model.safetensors.index.json").read_text())["weight_map"]
    target = next(name for name, file in sorted(weight_map.items()) if file.startswith("model-00002-"))  # rank 1
    plan = bridge.check(EXAMPLE, to="pytorch")
    name = next(m.source for m in plan.matched if m.target == target)
    with bridge.load(EXAMPLE) as ckpt:
        raw = np.ascontiguousarray(ckpt[name].numpy()).tobytes()
    data = next(source.glob("*.data-*"))
    blob = bytearray(data.read_bytes())
    at = blob.index(raw)
    blob[at] ^= 0xFF
    data.write_bytes(bytes(blob))

    out = tmp_path / "ranks"
    run = _torchrun("convert", str(source), "--to", "pytorch", "-o", str(out), "--max-shard-size", "4000")
    assert run.returncode != 0  # torchrun's own code is 1 whenever a rank fails; each rank's is in its summary
    assert "exitcode  : 2" in run.stderr and "exitcode  : 3" not in run.stderr
    assert run.stderr.count("error: Rank 1 of 2 failed") == 1 and "Checksum" in run.stderr
    # no traceback from a rank (torchrun prints its own, of its launcher): no frame in this project's modules
    frames = [line for line in run.stderr.splitlines() if line.lstrip().startswith('File "')]
    assert not [f for f in frames if any(f"{REPO / part}/" in f for part in ("bridge", "tf_side", "pt_side"))], frames
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


HANG = """
import sys, time
from bridge.ranks import joined
with joined() as group:
    if group.rank == 1:
        time.sleep(120)  # stuck: rank 0 must not wait for it past the timeout
    group.settle(None)
"""


def test_a_stuck_rank_ends_the_job_after_the_timeout(torch: object, tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BRIDGE_RANK_TIMEOUT": "3", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert run.returncode != 0
    assert "RanksOutOfStep: Rank 0 of 2 lost the other ranks" in run.stderr and "BRIDGE_RANK_TIMEOUT=3" in run.stderr
