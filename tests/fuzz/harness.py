"""Mutation fuzzing of the readers through the CLI: cases, mutants, a limited worker process.

A case is plain data (a seed, a command, a list of mutations), drawn by hypothesis (:func:`cases`) and run by a
:class:`Worker`: a child process with an address-space limit (``RLIMIT_AS``) that copies the seed, damages the copy
and runs the command in-process through click's CliRunner; the parent enforces a time limit per case and restarts
the worker after a timeout or a crash.  The invariant: exit 0, 1 or 2; never 3, never an escaped exception, never
over the memory or time limit.  tests/fuzz/test_fuzz.py runs a CI-sized sample; tests/fuzz/campaign.py (make fuzz)
runs thousands.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SEEDS = Path(__file__).resolve().parent / "seeds"
FIXTURES = ROOT / "tests" / "fixtures"

# name -> (seed directory, what the command is pointed at inside the copy, the side `check` goes to)
SEED_TABLE: dict[str, tuple[Path, str, str]] = {
    "tf1": (SEEDS / "tf1", "model.ckpt", "pytorch"),
    "tf2": (SEEDS / "tf2", "ckpt", "pytorch"),
    "saved-model": (SEEDS / "saved-model", ".", "pytorch"),
    "keras3-weights": (SEEDS / "keras3-weights", "model.weights.h5", "pytorch"),
    "keras3-archive": (SEEDS / "keras3-archive", "model.keras", "pytorch"),
    "keras2-h5": (SEEDS / "keras2-h5", "model.h5", "pytorch"),
    "hf-tf-h5": (FIXTURES / "hf-tf-heads" / "TFBertForSequenceClassification" / "tf", ".", "pytorch"),
    "safetensors": (SEEDS / "safetensors", "model.safetensors", "tensorflow"),
    "safetensors-sharded": (SEEDS / "safetensors-sharded", ".", "tensorflow"),
    "hf-pt": (FIXTURES / "hf-tf-bert-pt", ".", "tensorflow"),
    "torch-zip": (SEEDS / "torch-zip", "pytorch_model.bin", "tensorflow"),
    "torch-legacy": (SEEDS / "torch-legacy", "model.pt", "tensorflow"),
    "torch-sharded": (SEEDS / "torch-sharded", ".", "tensorflow"),
    "dcp": (SEEDS / "dcp", ".", "tensorflow"),
    "electra-pair": (SEEDS / "electra-pair", ".", "tensorflow"),
    "keras-hub-preset": (SEEDS / "keras-hub-preset", ".", "pytorch"),
    "hdf5": (SEEDS / "hdf5", "data.h5", "pytorch"),
    # the same file read as plain HDF5 (--format hdf5): the group walk is the first to meet a damaged object header
    "hdf5-walk": (SEEDS / "hdf5", "data.h5", "pytorch"),
}
SEED_ARGS: dict[str, tuple[str, ...]] = {"hdf5-walk": ("--format", "hdf5")}
# TF bundles: the checkpoint prefix inside the seed, whose data bytes each carry a CRC32C in the index
BUNDLE_PREFIXES = {"tf1": "model.ckpt", "tf2": "ckpt", "saved-model": "variables/variables"}

COMMANDS = ("inspect-json", "inspect-stats", "check")

MEMORY_LIMIT = 2 * 1024**3  # bytes of address space per worker
TIME_LIMIT = 20.0  # seconds per case (a case normally takes well under one)

# Values a length, count, offset or size field is most likely to break on.
_INTERESTING = (0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**40, 2**63 - 1, 2**64 - 1)
_JSON_VALUES = ([], {}, None, "x", -1, 0, 1e308, float("nan"), 2**64, True, [[[[1]]]])


# --------------------------------------------------------------------------- cases


def _offset() -> st.SearchStrategy[int]:
    # Headers live near the start: half the draws land in the first 512 bytes.
    return st.one_of(st.integers(0, 511), st.integers(0, 2**20))


_BYTE_OPS = st.one_of(
    st.tuples(st.just("flip"), _offset(), st.integers(0, 7)),
    st.tuples(st.just("byte"), _offset(), st.sampled_from((0, 1, 0x7F, 0x80, 0xFF)) | st.integers(0, 255)),
    st.tuples(st.just("int"), _offset(), st.sampled_from((1, 2, 4, 8)), st.sampled_from(_INTERESTING)),
    st.tuples(st.just("truncate"), _offset()),
    st.tuples(st.just("insert"), _offset(), st.binary(min_size=1, max_size=16).map(bytes.hex)),
    st.tuples(st.just("delete"), _offset(), st.integers(1, 64)),
    # a byte range of the file duplicated over another (a bad copy): object headers, B-trees, heaps meet their twins
    st.tuples(st.just("copy"), _offset(), _offset(), st.sampled_from((8, 16, 64, 512, 2048))),
)

_FILE_OPS = st.one_of(
    st.tuples(st.just("bytes"), st.integers(0, 15), _BYTE_OPS),
    st.tuples(st.just("member"), st.integers(0, 15), st.integers(0, 15), _BYTE_OPS),
    st.tuples(st.just("json"), st.integers(0, 15), st.integers(0, 63), st.integers(0, len(_JSON_VALUES) - 1)),
    st.tuples(st.just("nest"), st.integers(0, 15), st.sampled_from((200, 5_000, 100_000))),
    st.tuples(st.just("drop"), st.integers(0, 15)),
)


def cases() -> st.SearchStrategy[dict[str, Any]]:
    """One case: which seed, which command, one to three mutations."""
    return st.fixed_dictionaries(
        {
            "seed": st.sampled_from(sorted(SEED_TABLE)),
            "command": st.sampled_from(COMMANDS),
            "ops": st.lists(_FILE_OPS, min_size=1, max_size=3),
        }
    )


# --------------------------------------------------------------------------- mutants


def _apply_bytes(data: bytes, op: tuple[Any, ...]) -> bytes:
    kind, at = op[0], (op[1] % (len(data) + 1))
    if kind == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ (1 << op[2])]) + data[at + 1 :]
    if kind == "byte" and at < len(data):
        return data[:at] + bytes([op[2]]) + data[at + 1 :]
    if kind == "int":
        width, value = op[2], op[3] % (1 << (8 * op[2]))
        return data[:at] + value.to_bytes(width, "little") + data[at + width :]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + bytes.fromhex(op[2]) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    if kind == "copy":
        to = op[2] % (len(data) + 1)
        chunk = data[at : at + op[3]][: len(data) - to]
        return data[:to] + chunk + data[to + len(chunk) :]
    return data


def _json_leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key in node:
            yield from _json_leaves(node[key], (*path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _json_leaves(item, (*path, i))


def _mutate_json(text: bytes, pick: int, value: Any) -> bytes | None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    paths = list(_json_leaves(doc))
    path = paths[pick % len(paths)]
    if not path:
        return json.dumps(value).encode()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc).encode()


def _rewrite_member(path: Path, member: int, change: Any) -> None:
    """Rewrite one member of a zip file (a .keras archive, a torch zip) with zipfile itself."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            contents = [zf.read(info) for info in infos]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return
    if not infos:
        return
    i = member % len(infos)
    new = change(infos[i].filename, contents[i])
    if new is None:
        return
    contents[i] = new
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in zip(infos, contents, strict=True):
            zf.writestr(info, data)


def make_mutant(case: dict[str, Any], workdir: Path) -> Path:
    """Copy the case's seed into ``workdir``, damage it, return the path the command is pointed at."""
    seed_dir, target, _ = SEED_TABLE[case["seed"]]
    copy = workdir / "ckpt"
    shutil.copytree(seed_dir, copy)
    for op in case["ops"]:
        files = sorted(p for p in copy.rglob("*") if p.is_file())
        if not files:
            break
        path = files[op[1] % len(files)]
        kind = op[0]
        if kind == "bytes":
            path.write_bytes(_apply_bytes(path.read_bytes(), op[2]))
        elif kind == "member":
            _rewrite_member(path, op[2], lambda _name, data, inner=op[3]: _apply_bytes(data, inner))
        elif kind in ("json", "nest"):
            if kind == "json":
                change = lambda _n, data, o=op: _mutate_json(data, o[2], _JSON_VALUES[o[3]])  # noqa: E731
            else:
                change = lambda _n, _d, o=op: ("[" * o[2] + "]" * o[2]).encode()  # noqa: E731
            if zipfile.is_zipfile(path):
                _rewrite_member(
                    path, op[1], lambda name, data, c=change: c(name, data) if name.endswith(".json") else None
                )
            elif path.suffix == ".json":
                new = change(path.name, path.read_bytes())
                if new is not None:
                    path.write_bytes(new)
        elif kind == "drop":
            path.unlink()
    return copy / target


def argv(case: dict[str, Any], target: Path) -> list[str]:
    side, extra = SEED_TABLE[case["seed"]][2], list(SEED_ARGS.get(case["seed"], ()))
    return {
        "inspect-json": ["inspect", "--json", str(target), *extra],
        "inspect-stats": ["inspect", "--all", "--stats", str(target), *extra],
        "check": ["check", str(target), "--to", side, *extra],
    }[case["command"]]


def damages_checksummed_bytes(case: dict[str, Any]) -> bool:
    """Whether the case only changes bytes of a TF bundle's data shard that a tensor's CRC32C covers: one byte
    operation that keeps the file's length, every changed byte inside some tensor's ``[offset, offset + size)``."""
    prefix = BUNDLE_PREFIXES.get(case["seed"])
    if prefix is None or len(case["ops"]) != 1 or case["ops"][0][0] != "bytes":
        return False
    from tf_side.bundle.read import Bundle  # the index's extents and checksums, as TensorFlow's writer laid them

    seed_dir = SEED_TABLE[case["seed"]][0]
    files = sorted(p for p in seed_dir.rglob("*") if p.is_file())
    path = files[case["ops"][0][1] % len(files)]
    shard = re.fullmatch(re.escape(Path(prefix).name) + r"\.data-(\d+)-of-\d+", path.name)
    if shard is None:
        return False
    before = path.read_bytes()
    after = _apply_bytes(before, tuple(case["ops"][0][2]))
    if len(after) != len(before) or after == before:
        return False
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    bundle = Bundle(seed_dir / prefix)
    try:
        extents = [(e.offset, e.offset + e.size) for e in bundle.entries.values() if e.shard_id == int(shard[1])]
    finally:
        bundle.shards.close()
    return all(any(start <= i < end for start, end in extents) for i in changed)


# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class Outcome:
    """What one case did: ``kind`` is exit0/exit1/exit2, or a violation: exit3, traceback, memory, timeout, crash."""

    kind: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind in ("exit0", "exit1", "exit2")


def _run_in_process(case: dict[str, Any]) -> dict[str, Any]:
    from click.testing import CliRunner

    from bridge.cli import cli

    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        target = make_mutant(case, Path(tmp))
        result = CliRunner().invoke(cli, argv(case, target), catch_exceptions=True)
    text = result.output  # click >= 8.2: stdout and stderr interleaved
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        kind = "memory" if isinstance(exc, MemoryError) else "traceback"
        return {"kind": kind, "detail": f"{type(exc).__name__}: {exc}"[:500]}
    if "Traceback (most recent call last)" in text:
        return {"kind": "traceback", "detail": text[-500:]}
    if code == 3 and "MemoryError" in text:
        return {"kind": "memory", "detail": text.strip()[-500:]}
    if code not in (0, 1, 2):
        return {"kind": f"exit{code}", "detail": text.strip()[-500:]}
    return {"kind": f"exit{code}", "detail": text.strip()[-200:] if code == 2 else ""}


def _worker_main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints must not reach the result channel
    for line in sys.stdin:
        case = json.loads(line)
        try:
            outcome = _run_in_process(case)
        except MemoryError as exc:
            outcome = {"kind": "memory", "detail": f"MemoryError while preparing: {exc}"}
        results.write(json.dumps(outcome) + "\n")


class Worker:
    """A child process that runs cases one at a time under the memory limit; the parent times each case."""

    def __init__(self, time_limit: float = TIME_LIMIT) -> None:
        self.time_limit = time_limit
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("BRIDGE_DEBUG", None)
        return subprocess.Popen(
            [sys.executable, "-c", "from tests.fuzz.harness import _worker_main; _worker_main()"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def run(self, case: dict[str, Any]) -> Outcome:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(case) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], self.time_limit)
        if not ready:
            self.close()
            return Outcome("timeout", f"over {self.time_limit:.0f} s")
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.close()
            return Outcome("crash", f"worker died with {code}")
        data = json.loads(line)
        return Outcome(data["kind"], data.get("detail", ""))

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None


@contextmanager
def worker(time_limit: float = TIME_LIMIT) -> Iterator[Worker]:
    w = Worker(time_limit)
    try:
        yield w
    finally:
        w.close()
