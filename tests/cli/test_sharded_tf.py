"""Sharded TensorFlow weights both ways: transformers' sharded ``tf_model.h5`` read and written as 4.57 writes it
(``tests/fixtures/hf-tf-sharded/``, see its SOURCE.txt), and ``--max-shard-size`` on a TF1 checkpoint.

Oracles: the shards and index transformers 4.57.6's ``save_pretrained(max_shard_size=...)`` wrote (read by h5py and
json), 4.57's own TF -> PyTorch state dict (read by safetensors), and TensorFlow's ``tf.train.load_checkpoint``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli

SHARDED = Path(__file__).resolve().parents[1] / "fixtures" / "hf-tf-sharded"
TF_CLASSES = ("TFBertModel", "TFGPT2LMHeadModel")


def _limit(tf_class: str) -> int:
    return int(json.loads((SHARDED / tf_class / "shards.json").read_text())["max_shard_size"])


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
        out["@layer_names"] = np.array([str(n) for n in f.attrs["layer_names"]])
    return out


@pytest.mark.parametrize("tf_class", TF_CLASSES)
@pytest.mark.parametrize("form", ["folder", "index"])
def test_convert_to_pytorch_equals_transformers_4_bit_for_bit(tf_class: str, form: str, tmp_path: Path):
    from safetensors.numpy import load_file

    tf_dir = SHARDED / tf_class / "tf"
    source = tf_dir if form == "folder" else tf_dir / "tf_model.h5.index.json"
    assert "shards: " in run_cli("inspect", str(source))
    assert "verdict: OK" in run_cli("check", str(source), "--to", "pytorch")
    run_cli("convert", str(source), "--to", "pytorch", "-o", str(tmp_path / "out"))
    ours = load_file(tmp_path / "out" / "model.safetensors")
    theirs = load_file(SHARDED / tf_class / "pt" / "model.safetensors")
    assert set(ours) <= set(theirs) and len(ours) >= len(theirs), set(ours) ^ set(theirs)
    for name, value in ours.items():
        assert value.dtype == theirs[name].dtype and value.shape == theirs[name].shape, name
        assert value.tobytes() == theirs[name].tobytes(), name


def test_a_missing_shard_is_exit_2_naming_it(tmp_path: Path):
    folder = tmp_path / "tf"
    shutil.copytree(SHARDED / "TFBertModel" / "tf", folder)
    (folder / "tf_model-00003-of-00005.h5").unlink()
    for command in (["inspect"], ["check", "--to", "pytorch"]):
        output = run_cli(command[0], str(folder), *command[1:], code=2)
        assert "tf_model-00003-of-00005.h5" in output and "Shard missing" in output


def test_a_shard_that_disagrees_with_the_index_is_exit_2(tmp_path: Path):
    folder = tmp_path / "tf"
    shutil.copytree(SHARDED / "TFBertModel" / "tf", folder)
    index = json.loads((folder / "tf_model.h5.index.json").read_text())
    name = "tf_bert_model/bert/pooler/dense/bias:0"
    index["weight_map"][name] = "tf_model-00001-of-00005.h5"  # it is in the last shard
    (folder / "tf_model.h5.index.json").write_text(json.dumps(index))
    output = run_cli("inspect", str(folder), code=2)
    assert "disagree" in output and "pooler/dense/bias" in output


def test_write_equals_what_transformers_4_wrote(tmp_path: Path):
    """PyTorch -> transformers' sharded tf_model.h5 at the limit 4.57 was given: the same files, the same index,
    the same datasets in each file, the same values."""
    tf_class = "TFBertModel"  # the one family whose hf-tf layout bridge writes
    tf_dir = SHARDED / tf_class / "tf"
    out = tmp_path / "out"
    run_cli(
        "convert", str(SHARDED / tf_class / "pt"), "--to", "tensorflow", "--target", "hf-tf",
        "--max-shard-size", str(_limit(tf_class)), "-o", str(out),
    )  # fmt: skip
    theirs = sorted(p.name for p in tf_dir.iterdir() if p.name.startswith("tf_model"))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("tf_model")) == theirs
    assert json.loads((out / "tf_model.h5.index.json").read_text()) == json.loads(
        (tf_dir / "tf_model.h5.index.json").read_text()
    )
    for name in theirs:
        if name.endswith(".h5"):
            ours, want = _datasets(out / name), _datasets(tf_dir / name)
            assert list(ours) == list(want), name
            for key, value in want.items():
                assert ours[key].dtype == value.dtype and ours[key].tobytes() == value.tobytes(), (name, key)
    assert "verdict: PASS" in run_cli("verify", str(SHARDED / tf_class / "pt"), str(out), "--no-forward")


@pytest.fixture(scope="module")
def bert_24(torch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second source for the sharded writers, made here by transformers 5: other shapes and values than 4.57's
    fixture (hidden 24, 3 layers, vocab 50, seed 7), saved by save_pretrained (safetensors)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(7)
    config = transformers.BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                                     intermediate_size=40, max_position_embeddings=20)  # fmt: skip
    folder = tmp_path_factory.mktemp("bert-24")
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def _shards(out: Path, index_name: str, limit: int, read: Callable[[Path], dict[str, np.ndarray]]):
    """Every tensor of a sharded output, each shard read by ``read`` (the format's own reader) and checked against
    the index: the names the index gives it, within the limit unless it holds one tensor, the total size."""
    index = json.loads((out / index_name).read_text())
    shards = sorted(set(index["weight_map"].values()))
    n = len(shards)
    assert n >= 3 and shards == [name for name in sorted(p.name for p in out.iterdir()) if f"-of-{n:05d}" in name]
    values: dict[str, np.ndarray] = {}
    for shard in shards:
        part = read(out / shard)
        assert {name for name, file in index["weight_map"].items() if file == shard} == set(part), shard
        assert sum(v.nbytes for v in part.values()) <= limit or len(part) == 1, shard
        values.update(part)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in values.values())
    return values


def _h5_shard(path: Path) -> dict[str, np.ndarray]:
    """A tf_model.h5 shard by h5py, under the index's names (the model's scope before each dataset path)."""
    datasets = _datasets(path)
    assert list(datasets.pop("@layer_names")) == sorted(datasets)
    return {f"tf_bert_model/{name}": value for name, value in datasets.items()}


@pytest.mark.parametrize("writer", ["safetensors", "tf_model.h5"])
def test_a_second_bert_is_sharded_within_the_limit_and_loses_nothing(bert_24: Path, tmp_path: Path, writer: str):
    """Both sharded writers on the transformers 5 BERT: every shard within 3000 bytes (as transformers' greedy
    rule), the index naming what each file holds, and every source tensor's values in some shard (kernels
    transposed), read by safetensors' and h5py's own readers."""
    from safetensors.numpy import load_file

    limit, out = 3000, tmp_path / "out"
    target = ["--to", "pytorch"] if writer == "safetensors" else ["--to", "tensorflow", "--target", "hf-tf"]
    run_cli("convert", str(bert_24), *target, "--max-shard-size", str(limit), "-o", str(out))
    if writer == "safetensors":
        written = _shards(out, "model.safetensors.index.json", limit, load_file)
    else:
        written = _shards(out, "tf_model.h5.index.json", limit, _h5_shard)
    source = load_file(bert_24 / "model.safetensors")
    held = {v.tobytes() for v in written.values()}
    for name, value in source.items():
        assert value.tobytes() in held or value.T.copy().tobytes() in held, name
    assert len(written) == len(source)


def test_a_limit_above_the_model_writes_one_tf_model_h5(tmp_path: Path):
    out = tmp_path / "out"
    run_cli(
        "convert", str(SHARDED / "TFBertModel" / "pt"), "--to", "tensorflow", "--target", "hf-tf",
        "--max-shard-size", "1GB", "-o", str(out),
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "tf_model.h5"]


def test_tf1_checkpoint_in_shards_is_read_by_tensorflow(tf, tmp_path: Path):
    """--to tensorflow (google-bert) with --max-shard-size: N data files, every value as in the one-file output."""
    source = str(SHARDED / "TFBertModel" / "pt")
    run_cli("convert", source, "--to", "tensorflow", "-o", str(tmp_path / "one"))
    result = json.loads(
        run_cli("convert", source, "--to", "tensorflow", "--max-shard-size", "5KB", "-o", str(tmp_path / "n"), "--json")
    )
    data = [f for f in result["files"] if ".data-" in f]
    assert len(data) >= 3 and all(f.endswith(f"-of-{len(data):05d}") for f in data)
    one = tf.train.load_checkpoint(str(tmp_path / "one" / "bert_model.ckpt"))
    sharded = tf.train.load_checkpoint(str(tmp_path / "n" / "bert_model.ckpt"))
    names = one.get_variable_to_shape_map()
    assert sharded.get_variable_to_shape_map() == names
    for name in names:
        np.testing.assert_array_equal(sharded.get_tensor(name), one.get_tensor(name), strict=True)


def test_dtype_cast_is_reported_and_equals_torch(torch, tmp_path: Path):
    """--dtype float16 on a sharded source with values out of float16's range: the report counts them, and the
    values equal torch's own cast of the float32 conversion."""
    from safetensors.numpy import load_file

    folder = tmp_path / "tf"
    shutil.copytree(SHARDED / "TFBertModel" / "tf", folder)
    with h5py.File(folder / "tf_model-00005-of-00005.h5", "r+") as f:
        ds = f["bert/pooler/dense/kernel:0"]
        ds[0, :4] = np.array([1e5, -7e4, 1e-6, 1e-9], dtype=np.float32)
    run_cli("convert", str(folder), "--to", "pytorch", "-o", str(tmp_path / "f32"))
    result = json.loads(
        run_cli("convert", str(folder), "--to", "pytorch", "-o", str(tmp_path / "f16"), "--dtype", "float16", "--json")
    )
    f32, f16 = load_file(tmp_path / "f32" / "model.safetensors"), load_file(tmp_path / "f16" / "model.safetensors")
    want = {k: torch.from_numpy(v).to(torch.float16) for k, v in f32.items()}
    for name, value in f16.items():
        assert value.tobytes() == want[name].numpy().tobytes(), name
    tiny = torch.finfo(torch.float16).tiny
    src = {k: torch.from_numpy(v) for k, v in f32.items()}
    [row] = result["casts"]
    assert (row["from"], row["to"], row["tensors"]) == ("float32", "float16", len(f32))
    assert row["bytes_in"] == sum(v.nbytes for v in f32.values()) == 2 * row["bytes_out"]
    assert row["overflow"] == sum(int((w.isinf() & src[k].isfinite()).sum()) for k, w in want.items()) == 2
    assert row["zero"] == sum(int(((w == 0) & (src[k] != 0)).sum()) for k, w in want.items()) >= 1
    assert row["subnormal"] == sum(int(((w != 0) & (w.abs() < tiny)).sum()) for k, w in want.items()) >= 1
    assert any("overflowed to inf" in n and "ties to even" in n for n in result["notes"])


def test_help_states_the_rules():
    text = " ".join(run_cli("convert", "--help").split())
    assert "ties to even" in text and "never split" in text
