"""One regression test per damage the fuzz campaign of issue 14 found, each on a file written by the real writer
(the seeds of tests/fuzz/make_seeds.py, torch, h5py, TensorFlow's index read and rebuilt) and then damaged.

The contract: bad input is exit 2 with one paragraph naming the file, never exit 3 or a traceback; a value that
would take far more memory than its bytes is refused before anything is allocated (BRIDGE_MAX_INFLATE).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, SizeLimitExceeded
from bridge.core.jsonio import MAX_JSON_DEPTH, load_json
from tests.conftest import REPO
from tests.fuzz.harness import SEEDS

DEEP = b"[" * 100_000 + b"]" * 100_000


def _copy(tmp_path: Path, seed: str) -> Path:
    return Path(shutil.copytree(SEEDS / seed, tmp_path / seed))


def _bridge(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _refused(path: Path, *args: str | Path, env: dict[str, str] | None = None) -> str:
    """Exit 2 with one paragraph that names ``path``."""
    code, out = _bridge(*args, env=env)
    assert code == 2, out
    assert "error: " in out and "internal error" not in out and "Traceback" not in out, out
    assert str(path) in out, out
    return out


def _limited(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a child under a 2 GB address-space limit and a time limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run(
        [sys.executable, "-m", "bridge", *map(str, args)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------- HDF5 family


def _break_symbol_tables(path: Path) -> None:
    # Every symbol-table node of the h5py-written file loses its signature: the root opens, its groups do not
    # (h5py: "RuntimeError: Unable to get group info (bad symbol table node signature)").
    path.write_bytes(path.read_bytes().replace(b"SNOD", b"SNOX"))


@pytest.mark.parametrize(
    ("seed", "name"),
    [("keras3-weights", "model.weights.h5"), ("keras2-h5", "model.h5"), ("hdf5", "data.h5")],
)
def test_hdf5_runtime_errors_are_bad_input(tmp_path: Path, seed: str, name: str) -> None:
    path = _copy(tmp_path, seed) / name
    _break_symbol_tables(path)
    for args in (["inspect", "--json"], ["inspect", "--all", "--stats"]):
        _refused(path, *args, path)
    code, out = _bridge("check", path, "--to", "pytorch")
    assert code == 2 and str(path) in out and "internal error" not in out, out


def test_keras_archive_with_damaged_inner_file(tmp_path: Path) -> None:
    path = _copy(tmp_path, "keras3-archive") / "model.keras"
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:  # zipfile itself rewrites it: CRCs stay right
        for info, data in members:
            zf.writestr(info, data.replace(b"SNOD", b"SNOX") if info.filename.endswith(".h5") else data)
    _refused(path, "inspect", "--all", "--stats", path)


def test_keras_archive_with_damaged_deflate_stream(tmp_path: Path) -> None:
    path = _copy(tmp_path, "keras3-archive") / "model.keras"
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model.weights.h5")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename)
    data[start + info.compress_size // 2 : start + info.compress_size // 2 + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    _refused(path, "inspect", "--json", path)


@pytest.mark.slow
def test_sparse_hdf5_dataset_declaring_16_gib(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as f:  # chunked, never written: HDF5 reads it as its fill value
        f.create_dataset("huge", shape=(2**32,), dtype="f4", chunks=(1 << 16,))
        f.create_dataset("small", shape=(1000,), dtype="f4", chunks=(100,), fillvalue=1.5)
    assert path.stat().st_size < 10_000
    with bridge.load(path) as ckpt:
        np.testing.assert_array_equal(ckpt["small"].numpy(), np.full(1000, 1.5, np.float32))  # h5py's fill value
        with pytest.raises(SizeLimitExceeded, match="BRIDGE_MAX_INFLATE"):
            ckpt["huge"].numpy()
    done = _limited("inspect", "--all", "--stats", path)
    assert done.returncode == 2 and "Value would inflate past the memory limit" in done.stderr, done.stderr


def test_gzip_hdf5_dataset_limit_and_override(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "gzip.h5"
    value = np.zeros(1 << 20, np.float32)  # 4 MiB of zeros: a few KiB once gzip-compressed
    with h5py.File(path, "w") as f:
        f.create_dataset("zeros", data=value, compression="gzip", chunks=(1 << 18,))
    assert path.stat().st_size < 100_000
    out = _refused(path, "inspect", "--all", "--stats", path, env={"BRIDGE_MAX_INFLATE": "1MB"})
    assert "compressed with" in out and "BRIDGE_MAX_INFLATE" in out
    code, out = _bridge("inspect", "--all", "--stats", path, env={"BRIDGE_MAX_INFLATE": "8MiB"})
    assert code == 0, out
    code, out = _bridge("inspect", "--stats", path, env={"BRIDGE_MAX_INFLATE": "lots"})
    assert code == 2 and "Bad BRIDGE_MAX_INFLATE" in out, out


# --------------------------------------------------------------------------- torch


def _rezip(path: Path, change: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, (change or {}).get(name.split("/", 1)[1], data))


def _damage_member(path: Path, member_suffix: str) -> None:
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode())
    for i in range(start, start + info.compress_size):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_torch_zip_with_damaged_deflated_pickle(tmp_path: Path) -> None:
    path = _copy(tmp_path, "torch-zip") / "pytorch_model.bin"
    _rezip(path, compression=zipfile.ZIP_DEFLATED)
    _damage_member(path, "/data.pkl")  # zlib.error, or a CRC mismatch (BadZipFile)
    _refused(path, "inspect", "--json", path)


def test_torch_zip_with_damaged_deflated_storage(tmp_path: Path) -> None:
    path = _copy(tmp_path, "torch-zip") / "pytorch_model.bin"
    _rezip(path, compression=zipfile.ZIP_DEFLATED)
    _damage_member(path, "/data/0")
    code, _ = _bridge("inspect", "--json", path)
    assert code == 0  # the index is intact; the storage is read only for values
    _refused(path, "inspect", "--all", "--stats", path)


def test_torch_zip_with_impossible_header_offset(tmp_path: Path) -> None:
    path = _copy(tmp_path, "torch-zip") / "pytorch_model.bin"
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    while True:  # the central-directory record of storage 0
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if bytes(data[central + 46 : central + 46 + name_len]).endswith(b"/data/0"):
            break
        central = data.find(b"PK\x01\x02", central + 4)
    data[central + 42 : central + 46] = (0xFFFFFFF0).to_bytes(4, "little")  # its local header offset
    path.write_bytes(bytes(data))
    _refused(path, "inspect", "--json", path)


@pytest.mark.slow
def test_torch_stride_zero_view_declaring_16_gib(tmp_path: Path, torch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "expanded.pt"
    small = torch.arange(3, dtype=torch.float32).reshape(3, 1).expand(3, 5)  # stride (1, 0)
    torch.save({"huge": torch.zeros(1).expand(2**32), "small": small}, path)
    assert path.stat().st_size < 10_000
    with bridge.load(path) as ckpt:
        np.testing.assert_array_equal(ckpt["small"].numpy(), small.contiguous().numpy())
        with pytest.raises(SizeLimitExceeded, match="stride 0"):
            ckpt["huge"].numpy()
    done = _limited("inspect", "--all", "--stats", path)
    assert done.returncode == 2 and "Value would inflate past the memory limit" in done.stderr, done.stderr


@pytest.mark.slow
def test_legacy_pickle_declaring_a_4_gib_string(tmp_path: Path) -> None:
    import pickletools

    path = _copy(tmp_path, "torch-legacy") / "model.pt"
    data = bytearray(path.read_bytes())
    ops = []
    stream = __import__("io").BytesIO(bytes(data))
    for _ in range(4):  # magic, protocol, sys_info, then the state dict's pickle
        ops = list(pickletools.genops(stream))
    at = next(pos for op, _, pos in ops if op.name == "BINUNICODE")
    data[at + 1 : at + 5] = (0xFFFFFFF0).to_bytes(4, "little")  # a key's length: 4 GiB
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint):
        bridge.load(path)
    done = _limited("inspect", "--json", path)
    assert done.returncode == 2 and str(path) in done.stderr, done.stderr


# --------------------------------------------------------------------------- JSON


def test_json_nesting_is_bounded() -> None:
    assert load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, path="x", what="x", hint="") is not None
    for text in (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), DEEP):
        with pytest.raises(CorruptCheckpoint, match="nest"):
            load_json(text, path="x.json", what="config", hint="")


def test_deep_json_in_every_reader(tmp_path: Path) -> None:
    # the safetensors header
    path = _copy(tmp_path, "safetensors") / "model.safetensors"
    path.write_bytes(len(DEEP).to_bytes(8, "little") + DEEP)
    _refused(path, "inspect", "--json", path)
    # config.json beside the weights: the weights still read, check says the config is unreadable
    folder = _copy(tmp_path, "torch-sharded")
    (folder / "config.json").write_bytes(DEEP)
    assert _bridge("inspect", "--json", folder)[0] == 0
    _refused(folder / "config.json", "check", folder, "--to", "tensorflow")
    # the shard index
    (folder / "config.json").unlink()
    (folder / "pytorch_model.bin.index.json").write_bytes(DEEP)
    _refused(folder / "pytorch_model.bin.index.json", "inspect", "--json", folder)
    # a .keras archive's config.json
    path = _copy(tmp_path, "keras3-archive") / "model.keras"
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, DEEP if info.filename == "config.json" else data)
    _refused(path, "inspect", "--json", path)


# --------------------------------------------------------------------------- TF bundles


def _rewrite_index(index: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rebuild a TensorFlow-written .index with some entries changed, CRCs right (as a hostile file would)."""
    from tf_side.bundle.write import build_table
    from tf_side.sstable import Table

    entries = list(Table(index.read_bytes(), index).items())
    index.write_bytes(build_table(sorted(change(entries))))


@pytest.mark.slow
def test_num_shards_claiming_2_to_the_31_does_not_hang(tmp_path: Path) -> None:
    from tf_side.proto import encode_int_field

    folder = _copy(tmp_path, "tf1")

    def claim(entries: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        header = entries[0][1]
        assert entries[0][0] == b"" and header[:2] == b"\x08\x01"  # num_shards = 1, as TensorFlow wrote it
        return [(b"", encode_int_field(1, 2**31 - 1) + header[2:]), *entries[1:]]

    _rewrite_index(folder / "model.ckpt.index", claim)
    done = _limited("inspect", "--json", folder / "model.ckpt")  # 60 s limit; it used to stat 2^31 names
    assert done.returncode == 0 and "data shard(s) the index needs are missing" in done.stdout, done.stderr


@pytest.mark.slow
def test_partitioned_variable_declaring_16_gib(tmp_path: Path) -> None:
    from tf_side.bundle.slices import encode_slice_key
    from tf_side.proto import encode_bytes_field, encode_int_field

    folder = _copy(tmp_path, "tf1")
    shape = encode_bytes_field(2, encode_bytes_field(2, encode_int_field(1, 2**32)))  # TensorShapeProto{[2^32]}

    def inflate(entries: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in entries if not k.startswith(b"\x00") and k != b"part/emb"]
        whole = encode_bytes_field(7, b"")  # one slice with no extents: the whole tensor
        full = encode_int_field(1, 1) + shape + whole
        piece = encode_int_field(1, 1) + shape + encode_int_field(4, 0) + encode_int_field(5, 24)
        return [*kept, (b"part/emb", full), (encode_slice_key(b"part/emb", ()), piece)]

    _rewrite_index(folder / "model.ckpt.index", inflate)
    done = _limited("inspect", "--all", "--stats", folder / "model.ckpt")
    assert done.returncode == 2 and "part/emb" in done.stderr and "takes 17179869184" in done.stderr, done.stderr


def test_index_without_its_data(tmp_path: Path) -> None:
    """``model.ckpt.index`` copied alone (the shipped example, written by TensorFlow's Saver)."""
    folder = Path(shutil.copytree(REPO / "examples" / "tiny-bert", tmp_path / "tiny-bert"))
    data = folder / "bert_model.ckpt.data-00000-of-00001"
    data.unlink()
    prefix = folder / "bert_model.ckpt"
    code, out = _bridge("inspect", prefix)
    assert code == 0 and "warning: 1 of the 1 data shard(s)" in out and data.name in out, out
    code, out = _bridge("check", prefix, "--to", "pytorch")
    assert code == 0 and f"warning: 1 of the 1 data shard(s) the index needs are missing ({data.name})" in out, out
    _refused(data, "inspect", "--stats", prefix)
    _refused(data, "convert", prefix, "--to", "pytorch", "-o", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_multi_shard_checkpoint_with_a_shard_missing(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "tf2")
    (folder / "ckpt.data-00001-of-00003").unlink()
    code, out = _bridge("inspect", "--json", folder / "ckpt")
    assert code == 0 and "1 of the 3 data shard(s)" in out and "ckpt.data-00001-of-00003" in out, out
    with bridge.load(folder / "ckpt") as ckpt:
        assert len(ckpt) == 5  # every variable of the index, as tf.train.list_variables lists them
        with pytest.raises(CheckpointNotFound, match="ckpt.data-00001-of-00003"):
            for record in ckpt.values():
                record.numpy()
    _refused(folder / "ckpt.data-00001-of-00003", "inspect", "--all", "--stats", folder / "ckpt")


# --------------------------------------------------------------------------- check


def test_no_rule_pack_names_the_file() -> None:
    path = SEEDS / "hdf5" / "data.h5"
    out = _refused(path, "check", path, "--to", "pytorch")
    assert "No rule pack recognises this checkpoint" in out


@pytest.mark.parametrize("value", [None, [], float("nan"), 1e308])
def test_config_values_that_do_not_fit(tmp_path: Path, value: object) -> None:
    import json

    folder = Path(
        shutil.copytree(REPO / "tests/fixtures/hf-tf-heads/TFBertForSequenceClassification/tf", tmp_path / "m")
    )
    config = json.loads((folder / "config.json").read_text())
    if value is None:
        del config["hidden_size"]
    else:
        config["hidden_size"] = value
    (folder / "config.json").write_text(json.dumps(config))
    out = _refused(folder / "config.json", "check", folder, "--to", "pytorch")
    assert "does not fit" in out or "Unreadable config" in out


def test_names_holding_any_character_fold(tmp_path: Path, torch) -> None:  # type: ignore[no-untyped-def]
    # A NUL in a key (one damaged byte of data.pkl, found by `make fuzz --seed 1`) once broke scope folding.
    path = tmp_path / "nul.pt"
    torch.save({"a\x00.layer_0.w": torch.zeros(2), "a\x00.layer_1.w": torch.zeros(2), "b\x00": torch.ones(1)}, path)
    code, out = _bridge("inspect", path)
    assert code == 0 and "layer_{0..1}" in out, out


@pytest.mark.parametrize(
    ("seed", "copy"),
    [
        (SEEDS / "hdf5" / "data.h5", (6304, 128, 8)),  # h5py's plain file
        (REPO / "tests" / "fixtures" / "hf-tf-bert" / "tf_model.h5", (25741, 67, 512)),  # transformers' save_pretrained
    ],
)
@pytest.mark.parametrize("command", ["inspect", "check"])
def test_root_object_header_overwritten_by_a_copy_is_bad_input(tmp_path: Path, seed: Path, copy, command) -> None:
    """A byte range of the file duplicated over the root group's object header: the group walk cannot tell which
    object the root is (h5py raised TypeError hashing its id), so the file is damaged: exit 2 naming it."""
    start, to, size = copy
    data = bytearray(seed.read_bytes())
    data[to : to + size] = data[start : start + size]
    path = tmp_path / seed.name
    path.write_bytes(bytes(data))
    args = ["--to", "pytorch"] if command == "check" else []
    out = _refused(path, command, path, "--format", "hdf5", *args)
    assert "cannot read the object header of /" in out
