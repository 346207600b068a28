"""The CI-sized fuzz run: a few hundred damaged copies of a real file of every format through the CLI.

Seeded (``derandomize``) and bounded: each case runs in a worker process under a 2 GB address-space limit and a
time limit (tests/fuzz/harness.py).  ``make fuzz`` runs 10,000 (tests/fuzz/campaign.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings

import bridge
from bridge import formats
from tests.fuzz.harness import (
    BUNDLE_PREFIXES,
    COMMANDS,
    SEED_TABLE,
    Worker,
    cases,
    damages_checksummed_bytes,
    worker,
)

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

# What each seed is read as: the mutants must start from a file the reader takes for what it is.
SEED_FORMATS = {
    "tf1": "tf-checkpoint",
    "tf2": "tf-checkpoint",
    "saved-model": "saved-model",
    "keras3-weights": "keras-weights",
    "keras3-archive": "keras",
    "keras2-h5": "keras-h5",
    "hf-tf-h5": "keras-h5",
    "safetensors": "safetensors",
    "safetensors-sharded": "safetensors",
    "hf-pt": "safetensors",
    "torch-zip": "torch",
    "torch-legacy": "torch",
    "torch-sharded": "torch",
    "dcp": "dcp",
    "electra-pair": "companion-folder",
    "keras-hub-preset": "keras-hub-preset",
    "hdf5": "hdf5",
    "hdf5-walk": "hdf5",
}


@pytest.fixture(scope="module")
def fuzz_worker() -> Iterator[Worker]:
    with worker() as w:
        yield w


def test_seeds_cover_every_format() -> None:
    assert set(SEED_FORMATS) == set(SEED_TABLE)
    assert set(SEED_FORMATS.values()) == {f.name for f in formats.formats()}
    for name, (folder, target, _) in SEED_TABLE.items():
        with bridge.load(folder / target) as ckpt:
            assert ckpt.format == SEED_FORMATS[name], name
            assert len(ckpt) > 0
            for record in ckpt.values():
                record.numpy()  # every value of every undamaged seed reads (and checksums)


@pytest.mark.parametrize("command", COMMANDS)
def test_undamaged_seeds_pass(fuzz_worker: Worker, command: str) -> None:
    for seed in SEED_TABLE:
        outcome = fuzz_worker.run({"seed": seed, "command": command, "ops": []})
        # `check` of a plain HDF5 file or a seed outside any rule pack is bad input (2), never a crash.
        assert outcome.kind in (("exit0", "exit1", "exit2") if command == "check" else ("exit0",)), (seed, outcome)


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
# the root group's object header overwritten by 8 bytes from further on: h5py could not hash the file's id
@example(case={"seed": "hdf5-walk", "command": "inspect-json", "ops": [("bytes", 0, ("copy", 6304, 128, 8))]})
@example(case={"seed": "hdf5-walk", "command": "check", "ops": [("bytes", 0, ("copy", 6304, 128, 8))]})
# one bit of the first tensor's bytes: its CRC32C no longer matches
@example(case={"seed": "tf1", "command": "inspect-stats", "ops": [("bytes", 1, ("flip", 0, 3))]})
def test_damaged_files_exit_0_1_or_2(fuzz_worker: Worker, case: dict[str, Any]) -> None:
    outcome = fuzz_worker.run(case)
    assert outcome.ok, f"{case}: {outcome.kind}: {outcome.detail}"
    if case["command"] == "inspect-stats" and damages_checksummed_bytes(case):  # every value read: never accepted
        assert outcome.kind == "exit2", f"{case}: damaged checksummed bytes read without an error: {outcome.kind}"


@pytest.mark.parametrize("seed", sorted(BUNDLE_PREFIXES))
def test_each_tensor_with_a_flipped_byte_is_refused(fuzz_worker: Worker, seed: str) -> None:
    """One bit flipped in the middle of each tensor's checksummed bytes of each data shard: reading every value
    (inspect --stats) exits 2, never 0."""
    from tf_side.bundle.read import Bundle

    folder = SEED_TABLE[seed][0]
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    bundle = Bundle(folder / BUNDLE_PREFIXES[seed])
    try:
        entries = [e for e in bundle.entries.values() if e.size > 0]
        shards = {e.shard_id: bundle.shards.filename(e.shard_id) for e in entries}
    finally:
        bundle.shards.close()
    assert entries
    for entry in entries:
        index = files.index(shards[entry.shard_id])
        case = {
            "seed": seed,
            "command": "inspect-stats",
            "ops": [("bytes", index, ("flip", entry.offset + entry.size // 2, 0))],
        }
        assert damages_checksummed_bytes(case), case
        outcome = fuzz_worker.run(case)
        assert outcome.kind == "exit2", f"{entry.name} ({case}): {outcome.kind}: {outcome.detail}"
