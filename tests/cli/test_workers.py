"""`convert --workers N`: the same bytes for any N, in every output format; `--json` reports the threads.

Equal bytes alone would pass a conversion wrong the same way twice: each output is also read by its format's own
reader (safetensors, torch.load, TensorFlow's checkpoint reader, h5py) and held against the source as TensorFlow or
safetensors reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.commands.convert import convert
from bridge.core.errors import UsageError
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _held_both_ways(pytorch: dict[str, np.ndarray], tensorflow: dict[str, np.ndarray]) -> None:
    """The same values on both sides, read by readers independent of bridge: every PyTorch tensor is a TensorFlow
    tensor (a `kernel` transposed, as BERT's Linear layers hold it) and every TensorFlow tensor is written (a tied
    one once). Compared by value, so a kernel left untransposed, even a square one, is caught."""

    def as_pytorch(name: str, value: np.ndarray) -> bytes:
        return (value.T.copy() if name.split(":")[0].endswith("kernel") else value).tobytes()

    assert pytorch and tensorflow
    from_tf = {as_pytorch(n, v) for n, v in tensorflow.items()}
    from_pt = {v.tobytes() for v in pytorch.values()}
    assert [n for n, v in pytorch.items() if v.tobytes() not in from_tf] == []
    assert [n for n, v in tensorflow.items() if as_pytorch(n, v) not in from_pt] == []


def _tf_source(tf: Any) -> dict[str, np.ndarray]:
    """The example's model tensors as TensorFlow's own reader reads them (no slots, no step)."""
    reader = tf.train.load_checkpoint(str(EXAMPLE / "bert_model.ckpt"))
    names = [n for n in reader.get_variable_to_shape_map() if "adam" not in n and n != "global_step"]
    return {n: reader.get_tensor(n) for n in names}


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
def test_safetensors_bytes_do_not_depend_on_workers(tmp_path: Path, shard: int | None, tf: Any) -> None:
    from safetensors.numpy import load_file

    one, four = _both(tmp_path, EXAMPLE, to="pytorch", max_shard_size=shard)
    assert one == four
    weights = sorted(n for n in one if n.endswith(".safetensors"))
    assert len(weights) == 1 if shard is None else len(weights) >= 3
    values = {k: v for n in weights for k, v in load_file(tmp_path / "w4" / n).items()}  # safetensors' own reader
    source = _tf_source(tf)
    kernel = source["bert/encoder/layer_0/attention/self/query/kernel"]
    np.testing.assert_array_equal(values["bert.encoder.layer.0.attention.self.query.weight"], kernel.T)
    _held_both_ways(values, source)


def test_bin_bytes_do_not_depend_on_workers(tmp_path: Path, torch: Any, tf: Any) -> None:
    one, four = _both(tmp_path, EXAMPLE, to="pytorch", out_format="bin")
    assert one == four and "pytorch_model.bin" in one
    state = torch.load(tmp_path / "w4" / "pytorch_model.bin", weights_only=True)  # torch's own reader
    _held_both_ways({k: v.numpy() for k, v in state.items()}, _tf_source(tf))


def _h5_datasets(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("target", ["google-bert", "hf-tf"])
def test_tensorflow_bytes_do_not_depend_on_workers(tmp_path: Path, pt_source: Path, target: str, tf: Any) -> None:
    from safetensors.numpy import load_file

    one, four = _both(tmp_path, pt_source, to="tensorflow", target=target)
    assert one == four
    if target == "google-bert":  # TensorFlow's own checkpoint reader
        reader = tf.train.load_checkpoint(str(tmp_path / "w4" / "bert_model.ckpt"))
        written = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n != "global_step"}
    else:  # h5py
        written = _h5_datasets(tmp_path / "w4" / "tf_model.h5")
    _held_both_ways(load_file(pt_source / "model.safetensors"), written)


def test_workers_in_json_and_refused_below_one(tmp_path: Path) -> None:
    report = json.loads(run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "o"), "--json",
                                "--workers", "3"))  # fmt: skip
    assert report["workers"] == 3 and report["ranks"] == 1
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "p"), "--workers", "0", code=2)
    with pytest.raises(UsageError, match="at least 1"):
        convert(EXAMPLE, to="pytorch", out=tmp_path / "q", workers=0)
