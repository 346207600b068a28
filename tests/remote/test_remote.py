"""Checkpoints behind a real HTTP server (range requests), read through fsspec's own http filesystem.

The server counts the body bytes it sends per file: inspect fetches an index or header alone, convert fetches each
tensor about once and writes what a local convert writes, byte for byte; a server that fails or misbehaves is exit 2.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.core.source import BLOCK
from tests.conftest import REPO
from tests.remote.server import RangeServer, range_server

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

TINY = REPO / "examples" / "tiny-bert"  # TF1 Saver: one data shard, Adam slots
T5 = REPO / "tests" / "fixtures" / "t5-tf1" / "v1_1"  # TF sharded Saver: two data shards
HF_TF = REPO / "tests" / "fixtures" / "hf-tf-bert"  # transformers 4.57 tf_model.h5
HF_BIN = REPO / "tests" / "fixtures" / "bert-4x-pretraining"  # transformers 4.57 pytorch_model.bin (zip)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files whose data dwarfs their metadata, written by the real writers: safetensors and tf_keras' save_weights."""
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    save_file(
        {"big": rng.standard_normal((1024, 1024)).astype(np.float32), "small": np.arange(7, dtype=np.int64)},
        str(folder / "model.safetensors"),
    )
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Input((1024,)), tf_keras.layers.Dense(1024, name="dense")])
    model.save_weights(str(folder / "tf_model.h5"))  # the h5 layout transformers' save_pretrained writes
    return folder


@pytest.fixture(scope="module")
def server(big: Path) -> Iterator[RangeServer]:
    with range_server({"/tiny": TINY, "/t5": T5, "/hf": HF_TF, "/bin": HF_BIN, "/big": big}) as srv:
        yield srv


def _tensors(output: str) -> list[dict[str, object]]:
    return json.loads(output)["tensors"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mount", "folder", "prefix", "data"),
    [
        ("tiny", TINY, "bert_model.ckpt", ["bert_model.ckpt.data-00000-of-00001"]),
        ("t5", T5, "model.ckpt-1000", ["model.ckpt-1000.data-00000-of-00002", "model.ckpt-1000.data-00001-of-00002"]),
    ],
)
def test_inspect_of_a_bundle_fetches_its_index_alone(server, mount, folder, prefix, data):
    server.served.reset()
    code, out = run("inspect", f"{server.url}/{mount}/{prefix}", "--json")
    assert code == 0, out
    assert _tensors(out) == _tensors(run("inspect", str(folder / prefix), "--json")[1])
    assert server.served.of(f"/{mount}/{prefix}.index") == (folder / f"{prefix}.index").stat().st_size  # once
    # Of the data shards: the global_step counter inspect shows (one int64), nothing else.
    assert sum(server.served.of(f"/{mount}/{name}") for name in data) <= 8
    assert not any(r.startswith("GET") and "/?" in r for r in server.served.requests)  # never a listing


def test_inspect_of_safetensors_fetches_its_header_alone(server, big):
    server.served.reset()
    code, out = run("inspect", f"{server.url}/big/model.safetensors", "--json")
    assert code == 0, out
    assert _tensors(out) == _tensors(run("inspect", str(big / "model.safetensors"), "--json")[1])
    header = 8 + int.from_bytes((big / "model.safetensors").read_bytes()[:8], "little")
    assert server.served.of("/big/model.safetensors") <= header + BLOCK  # one block: not the 4 MiB of values


def test_inspect_of_tf_model_h5_fetches_the_metadata_h5py_asks_for(server, big):
    server.served.reset()
    code, out = run("inspect", f"{server.url}/big/tf_model.h5", "--json")
    assert code == 0, out
    assert _tensors(out) == _tensors(run("inspect", str(big / "tf_model.h5"), "--json")[1])
    size = (big / "tf_model.h5").stat().st_size
    assert size > 4 * 1024 * 1024
    assert server.served.of("/big/tf_model.h5") <= 8 * BLOCK  # a few metadata blocks of a 4 MiB file


def _same_tree(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize(
    ("mount", "folder", "name", "to"),
    [
        ("tiny", TINY, "bert_model.ckpt", "pytorch"),
        ("t5", T5, "model.ckpt-1000", "pytorch"),
        ("hf", HF_TF, "tf_model.h5", "pytorch"),
        ("bin", HF_BIN, "pytorch_model.bin", "tensorflow"),
    ],
)
def test_convert_over_http_equals_the_local_convert(server, tmp_path, mount, folder, name, to):
    code, out = run("convert", str(folder / name), "--to", to, "-o", str(tmp_path / "local"), "--json")
    assert code == 0, out
    server.served.reset()
    code, out = run("convert", f"{server.url}/{mount}/{name}", "--to", to, "-o", str(tmp_path / "remote"), "--json")
    assert code == 0, out
    _same_tree(tmp_path / "local", tmp_path / "remote")
    assert not list(tmp_path.glob(".*partial*"))


def test_convert_streams_each_tensor_about_once(server, tmp_path):
    server.served.reset()
    code, out = run("convert", f"{server.url}/t5/model.ckpt-1000", "--to", "pytorch", "-o", str(tmp_path / "o"))
    assert code == 0, out
    model_bytes = json.loads(run("inspect", str(T5 / "model.ckpt-1000"), "--json")[1])["summary"]["model"]["bytes"]
    data = server.served.of(".data-00000-of-00002") + server.served.of(".data-00001-of-00002")
    # bf16 model tensors (Adafactor slots are skipped, never fetched); check and convert each open the index.
    assert model_bytes <= data <= model_bytes + 64
    assert server.served.of("/t5/model.ckpt-1000.index") <= 2 * (T5 / "model.ckpt-1000.index").stat().st_size


def test_a_folder_url_is_probed_by_name(server, big):
    code, out = run("inspect", f"{server.url}/big/", "--json")
    assert code == 0, out
    assert json.loads(out)["format"] == "safetensors"


def test_not_found_is_exit_2_naming_the_url(server):
    url = f"{server.url}/tiny/no-such.ckpt-7"
    code, out = run("inspect", url)
    assert code == 2 and url in out and "Traceback" not in out


def test_unreachable_host_is_exit_2_naming_the_url():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/model.safetensors"
    code, out = run("inspect", url)
    assert code == 2 and url in out and "Cannot read URL" in out


@pytest.mark.parametrize("mode", ["short", "cut", "stall"])
def test_a_server_that_answers_short_is_exit_2_never_a_hang(mode, big, monkeypatch):
    monkeypatch.setenv("BRIDGE_REMOTE_TIMEOUT", "2")
    with range_server({"/big": big}) as srv:  # a fresh host: nothing cached from the honest server
        srv.set_mode(mode, stall_s=30)
        url = f"{srv.url}/big/model.safetensors"
        start = time.monotonic()
        code, out = run("inspect", url)
        assert code == 2, out
        assert url in out and "Traceback" not in out
        assert time.monotonic() - start < 20
        srv.set_mode("honest")


def test_output_url_is_a_usage_error(server, tmp_path):
    code, out = run("convert", f"{server.url}/tiny/bert_model.ckpt", "--to", "pytorch", "-o", "gs://bucket/out")
    assert code == 2 and "must be a local directory" in out


_NO_FSSPEC = """
import sys
sys.modules["fsspec"] = None
from click.testing import CliRunner
from bridge.cli import cli
r = CliRunner().invoke(cli, ["inspect", sys.argv[1]])
print(r.exit_code, r.output)
"""


def test_without_fsspec_a_url_says_what_to_install():
    out = subprocess.run(
        [sys.executable, "-c", _NO_FSSPEC, "https://example.invalid/model.ckpt-1"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.startswith("2 ") and "pip install 'ckpt-bridge[remote]'" in out


_LOCAL_STAYS_LIGHT = """
import sys
from click.testing import CliRunner
from bridge.cli import cli
r = CliRunner().invoke(cli, ["inspect", sys.argv[1]])
print(r.exit_code, [m for m in ("fsspec", "aiohttp") if m in sys.modules])
"""


def test_local_paths_import_no_fsspec():
    out = subprocess.run(
        [sys.executable, "-c", _LOCAL_STAYS_LIGHT, str(TINY)], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "0 []"


def test_check_and_verify_read_urls_too(server, tmp_path):
    url = f"{server.url}/tiny/bert_model.ckpt"
    code, out = run("check", url, "--to", "pytorch")
    assert code == 0 and f"config: {server.url}/tiny/bert_config.json" in out
    assert run("convert", str(TINY), "--to", "pytorch", "-o", str(tmp_path / "o"))[0] == 0
    code, out = run("verify", url, str(tmp_path / "o"), "--no-forward", "--json")
    assert code == 0, out
    assert json.loads(out)["ok"]


def test_a_listing_protocol_finds_the_checkpoint_in_a_folder(tmp_path):
    """Where the protocol lists folders (gs://, s3://; here fsspec's in-memory filesystem), a folder URL is enough."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for file in TINY.iterdir():
        memory.pipe_file(f"/bridge-test-tiny/{file.name}", file.read_bytes())
    try:
        code, out = run("convert", "memory://bridge-test-tiny/", "--to", "pytorch", "-o", str(tmp_path / "m"))
        assert code == 0, out
        assert run("convert", str(TINY), "--to", "pytorch", "-o", str(tmp_path / "local"))[0] == 0
        _same_tree(tmp_path / "local", tmp_path / "m")
    finally:
        memory.rm("/bridge-test-tiny", recursive=True)
