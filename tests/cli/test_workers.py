"""`convert --workers N`: the same bytes for any N, in every output format; `--json` reports the threads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.commands.convert import convert
from bridge.core.errors import UsageError
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _both(tmp_path: Path, source: Path, **options: object) -> tuple[dict[str, bytes], dict[str, bytes]]:
    outs = []
    for n in (1, 4):
        out = tmp_path / f"w{n}"
        result = convert(source, out=out, workers=n, **options)  # type: ignore[arg-type]
        assert result.workers == n
        outs.append(_files(out))
    return outs[0], outs[1]


@pytest.fixture(scope="module")
def pt_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example converted once to PyTorch (safetensors + config.json): the source of the TF outputs."""
    out = tmp_path_factory.mktemp("pt") / "bert"
    convert(EXAMPLE, to="pytorch", out=out)
    return out


@pytest.mark.parametrize("shard", [None, 4_000], ids=["single", "sharded"])
def test_safetensors_bytes_do_not_depend_on_workers(tmp_path: Path, shard: int | None) -> None:
    from safetensors.numpy import load_file

    one, four = _both(tmp_path, EXAMPLE, to="pytorch", max_shard_size=shard)
    assert one == four
    weights = sorted(n for n in one if n.endswith(".safetensors"))
    assert len(weights) == 1 if shard is None else len(weights) >= 3
    values = {k: v for n in weights for k, v in load_file(tmp_path / "w4" / n).items()}  # safetensors' own reader
    with bridge.load(EXAMPLE) as ckpt:
        kernel = ckpt["bert/encoder/layer_0/attention/self/query/kernel"].numpy()
    np.testing.assert_array_equal(values["bert.encoder.layer.0.attention.self.query.weight"], kernel.T)


def test_bin_bytes_do_not_depend_on_workers(tmp_path: Path, torch: object) -> None:
    one, four = _both(tmp_path, EXAMPLE, to="pytorch", out_format="bin")
    assert one == four and "pytorch_model.bin" in one


@pytest.mark.parametrize("target", ["google-bert", "hf-tf"])
def test_tensorflow_bytes_do_not_depend_on_workers(tmp_path: Path, pt_source: Path, target: str) -> None:
    one, four = _both(tmp_path, pt_source, to="tensorflow", target=target)
    assert one == four
    assert any(n.endswith(".index") or n == "tf_model.h5" for n in one)


def test_workers_in_json_and_refused_below_one(tmp_path: Path) -> None:
    report = json.loads(run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "o"), "--json",
                                "--workers", "3"))  # fmt: skip
    assert report["workers"] == 3 and report["ranks"] == 1
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "p"), "--workers", "0", code=2)
    with pytest.raises(UsageError, match="at least 1"):
        convert(EXAMPLE, to="pytorch", out=tmp_path / "q", workers=0)
