"""The code-free torch.save reader against files written by real torch, transformers models and allennlp."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bridge
from bridge.core.errors import CorruptCheckpoint, UnsafeCheckpoint, UnsupportedFeature
from pt_side import restricted_unpickler, torch_containers, torch_pickle
from tests.conftest import REPO, read_variables_txt

FORMATS = ["zip", "legacy"]


def save(torch, obj, path: Path, style: str) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=style == "zip")
    return path


def flatten(obj, prefix: str = ""):
    """torch.load output flattened the way the reader names things: dotted keys, tensors only."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix or "tensor", obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))


def torch_bytes(t) -> bytes:
    import torch

    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_as_torch_load(ckpt, path: Path) -> dict:
    import torch

    expected = dict(flatten(torch.load(path, weights_only=True)))
    assert_matches(ckpt, expected)
    return expected


def assert_matches(ckpt, expected: dict) -> None:
    assert list(ckpt) == list(expected)
    for name, t in expected.items():
        rec = ckpt[name]
        assert rec.shape == tuple(t.shape), name
        assert rec.dtype == str(t.dtype).removeprefix("torch."), name
        assert rec.nbytes == t.numel() * t.element_size(), name
        value = rec.numpy()
        assert value.shape == tuple(t.shape) and value.flags.c_contiguous, name
        assert value.tobytes() == torch_bytes(t), name  # bit-exact


# Dtypes without a legacy storage class: torch.save pickles them with UntypedStorage and
# _rebuild_tensor_v3; torch 2.13's own legacy loader cannot read those back.
V3_DTYPES = ("f8_e4m3", "f8_e5m2", "u16")


@pytest.fixture(scope="module")
def every_dtype(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {
        "f32": base,
        "f16": base.to(torch.float16),
        "bf16": base.to(torch.bfloat16),
        "f64": base.to(torch.float64),
        "c64": torch.complex(base[0], base[1]),
        "f8_e4m3": base.to(torch.float8_e4m3fn),  # no legacy storage class: _rebuild_tensor_v3
        "f8_e5m2": base.to(torch.float8_e5m2),
        "i8": torch.randint(-128, 127, (5,), dtype=torch.int8, generator=g),
        "i16": torch.randint(-(2**15), 2**15 - 1, (2, 3), dtype=torch.int16, generator=g),
        "i32": torch.randint(-(2**31), 2**31 - 1, (7,), dtype=torch.int32, generator=g),
        "i64": torch.tensor([-(2**62), 1, 2**62]),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "u16": torch.arange(65530, 65536, dtype=torch.int32).to(torch.uint16),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(7),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(base[1].clone()),
        "transposed": base.t(),  # non-contiguous view of f32's storage
        "rows": base[1:3],  # storage offset 6
        "column": base[:, 2],  # offset 2, stride 6
        "expanded": base[0, :1].expand(3, 2),  # stride 0
    }


@pytest.mark.parametrize("style", FORMATS)
def test_every_dtype_and_view(torch, every_dtype, tmp_path, style):
    path = save(torch, every_dtype, tmp_path / f"every.{style}.pt", style)
    assert torch_pickle.sniff(path)
    with bridge.load(path) as ckpt:
        assert ckpt.format == "torch" and ckpt.framework == "pytorch"
        assert ckpt.metadata["style"] == style
        assert_matches(ckpt, every_dtype)
        if style == "zip":
            assert_same_as_torch_load(ckpt, path)
        # Views share f32's storage but differ in offset/shape/stride: not tied.
        assert ckpt.tied == []
        f32, rows = ckpt["f32"].location, ckpt["rows"].location
        assert f32.split(" @ ")[0] == rows.split(" @ ")[0]
        assert int(rows.split(" @ ")[1]) == int(f32.split(" @ ")[1]) + 6 * 4
        if style == "zip":
            assert f32.startswith(f"every.{style}.pt:every.{style}/data/")


def test_legacy_v3_dtypes_torch_cannot_reload(torch, every_dtype, tmp_path):
    """A fact of torch 2.13: its legacy writer emits UntypedStorage persistent ids for float8/uint16
    that its legacy loader rejects; this reader reads them, and the rest equals torch.load."""
    path = save(torch, every_dtype, tmp_path / "every.pt", "legacy")
    with pytest.raises(AttributeError, match="UntypedStorage"):
        torch.load(path, weights_only=True)
    rest = {k: v for k, v in every_dtype.items() if k not in V3_DTYPES}
    path = save(torch, rest, tmp_path / "rest.pt", "legacy")
    with bridge.load(path) as ckpt:
        assert_same_as_torch_load(ckpt, path)


@pytest.mark.parametrize("style", FORMATS)
def test_tied_weights(torch, tmp_path, style):
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = torch.nn.Embedding(11, 4)
            self.lm_head = torch.nn.Linear(4, 11, bias=False)
            self.lm_head.weight = self.embeddings.weight

    path = save(torch, Tiny().state_dict(), tmp_path / "tied.bin", style)
    with bridge.load(path) as ckpt:
        assert ckpt.tied == [("embeddings.weight", "lm_head.weight")]
        assert ckpt["embeddings.weight"].location == ckpt["lm_head.weight"].location
        assert_same_as_torch_load(ckpt, path)


@pytest.mark.parametrize("style", FORMATS)
def test_training_state(torch, tmp_path, style):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "config": {"name": "tiny", "hidden": [4, 2]},
    }
    path = save(torch, state, tmp_path / "train.pt", style)
    with bridge.load(path) as ckpt:
        assert_same_as_torch_load(ckpt, path)
        assert "epoch" not in ckpt and "config.hidden.0" not in ckpt
        assert ckpt.metadata["scalars"]["epoch"] == 3
        assert ckpt.metadata["scalars"]["config.name"] == "tiny"
        assert ckpt["model.0.weight"].kind == "model"
        slot = ckpt["optimizer.state.0.exp_avg"]
        assert (slot.kind, slot.slot_name, slot.shape) == ("optimizer", "exp_avg", (4, 3))
        step = ckpt["optimizer.state.3.step"]  # torch 2.x keeps Adam's step as a float32 scalar tensor
        assert (step.kind, step.shape, step.dtype, float(step.numpy())) == ("optimizer", (), "float32", 1.0)
        assert len(ckpt.of_kind("optimizer")) == 4 * 3
        assert ckpt.metadata["scalars"]["optimizer.param_groups.0.lr"] == 1e-3


def test_tensor_with_python_attributes_and_bytes(torch, tmp_path):
    t = torch.arange(4.0)
    t.note = "kept by _rebuild_from_type_v2"
    obj = {"w": t, "blob": b"\x00\xffraw", "tags": {"a", "b"}, "cut": slice(1, 3), "bare": torch.ones(2)}
    path = save(torch, obj, tmp_path / "misc.pt", "zip")
    with bridge.load(path) as ckpt:
        assert list(ckpt) == ["w", "bare"]
        assert ckpt["w"].numpy().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_bare_tensor(torch, tmp_path):
    path = save(torch, torch.arange(3), tmp_path / "t.pt", "zip")
    with bridge.load(path) as ckpt:
        assert list(ckpt) == ["tensor"] and ckpt["tensor"].numpy().tolist() == [0, 1, 2]


def test_big_endian_archive(torch, every_dtype, tmp_path):
    """A zip whose byteorder record says big: storages are byte-swapped per element (torch.load agrees)."""
    names = ["f32", "f16", "bf16", "f64", "c64", "i16", "i64", "u8", "bool"]
    state = {n: every_dtype[n].clone() for n in names}  # one storage each, keys 0..n-1 in order
    little = save(torch, state, tmp_path / "little.pt", "zip")
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            stem = info.filename.split("/", 1)[1]
            if stem == "byteorder":
                data = b"big"
            elif stem.startswith("data/"):
                t = state[names[int(stem[5:])]]
                size = t.element_size() // (2 if t.is_complex() else 1)
                data = b"".join(data[i : i + size][::-1] for i in range(0, len(data), size))
            dst.writestr(info.filename, data)
    with bridge.load(big) as ckpt:
        assert_same_as_torch_load(ckpt, big)
        for n in names:
            assert ckpt[n].numpy().tobytes() == torch_bytes(state[n])


def test_recompressed_archive_is_read_without_mapping(torch, every_dtype, tmp_path):
    """Storages are stored uncompressed by torch; a re-zipped (deflated) copy is still read."""
    stored = save(torch, every_dtype, tmp_path / "stored.pt", "zip")
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(stored) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with bridge.load(deflated) as ckpt:
        assert_same_as_torch_load(ckpt, deflated)


# ---------------------------------------------------------------------------- sharded sets


@pytest.fixture(scope="module")
def bert_bin_dir(torch, tmp_path_factory):
    """A transformers-style sharded .bin set.  transformers 5 no longer writes .bin
    (safe_serialization=False is ignored), so it is written by hand in the same layout."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    model = transformers.BertModel(config)
    state = model.state_dict()
    out = tmp_path_factory.mktemp("bert_bin")
    config.to_json_file(out / "config.json")
    names = list(state)
    parts = [names[i::3] for i in range(3)]
    weight_map = {}
    for i, part in enumerate(parts, 1):
        shard = f"pytorch_model-{i:05d}-of-{len(parts):05d}.bin"
        torch.save({k: state[k] for k in part}, out / shard)
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (out / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return out, state


def test_sharded_bin_folder(bert_bin_dir):
    folder, state = bert_bin_dir
    assert torch_pickle.sniff(folder)
    for target in (folder, folder / "pytorch_model.bin.index.json"):
        with bridge.load(target) as ckpt:
            assert ckpt.format == "torch"
            assert set(ckpt) == set(state)
            for name, t in state.items():
                assert ckpt[name].numpy().tobytes() == torch_bytes(t), name
            assert len(ckpt.metadata["shards"]) == 3
            assert ckpt.metadata["config"]["model_type"] == "bert"


def test_single_bin_folder(torch, bert_bin_dir, tmp_path):
    _, state = bert_bin_dir
    torch.save(state, tmp_path / "pytorch_model.bin")
    with bridge.load(tmp_path) as ckpt:
        assert list(ckpt) == list(state)
        assert ckpt.files == [str(tmp_path / "pytorch_model.bin")]


# ---------------------------------------------------------------------------- third-party files

ALLENNLP = {
    "simple_tagger/serialization_full/model_state_e1_b0.th": "zip",
    "simple_tagger/serialization_full/training_state_e1_b0.th": "zip",
    "simple_tagger_with_elmo/serialization/best.th": "legacy",
    "basic_classifier/serialization/best.th": "legacy",
}


@pytest.mark.parametrize("rel", sorted(ALLENNLP))
def test_allennlp_fixtures(torch, shared_fixtures, rel):
    path = shared_fixtures / "allennlp-fixtures" / rel
    listing = read_variables_txt(path.with_name(path.name + ".VARIABLES.txt"))
    assert torch_pickle.sniff(path)
    with bridge.load(path) as ckpt:
        assert ckpt.metadata["style"] == ALLENNLP[rel]
        assert [(r.name, r.dtype, r.shape) for r in ckpt.values()] == listing
        # torch.load(weights_only=True) accepts all four; every value equals it.
        assert_same_as_torch_load(ckpt, path)
        if "training_state" in rel:
            assert {r.kind for r in ckpt.values()} == {"optimizer"}
            assert ckpt.metadata["scalars"]["optimizer.state.0.step"] == 1  # a python int, not a tensor
            assert ckpt.metadata["scalars"]["metric_tracker.best_epoch_metrics.accuracy"] == 0.75


# ---------------------------------------------------------------------------- safety and damage


class RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Execs:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("style", FORMATS)
@pytest.mark.parametrize(
    "payload, global_name", [(RunsCommand, f"{os.system.__module__}.system"), (Execs, "builtins.exec")]
)
def test_code_in_pickle_is_refused_and_not_run(torch, tmp_path, style, payload, global_name):
    marker = tmp_path / "marker"
    path = save(torch, {"w": torch.ones(2), "evil": payload(marker)}, tmp_path / "evil.pt", style)
    with pytest.raises(UnsafeCheckpoint) as err:
        bridge.load(path)
    message = str(err.value)
    assert f"`{global_name}`" in message and "evil.pt" in message
    assert "run code" in message and "safetensors" in message
    assert not marker.exists()
    # torch's own safe mode refuses the file too (and runs nothing).
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def legacy_file(path: Path, object_pickle: bytes, keys: list[str] | None = None) -> Path:
    """A hand-written legacy torch.save file around an arbitrary object pickle."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    buf = io.BytesIO()
    for obj in (torch_containers.LEGACY_MAGIC, torch_containers.LEGACY_PROTOCOL, sys_info):
        pickle.dump(obj, buf, protocol=2)
    buf.write(object_pickle)
    pickle.dump(keys or [], buf, protocol=2)
    path.write_bytes(buf.getvalue())
    return path


def test_hand_written_pickle_with_unlisted_global(tmp_path):
    import argparse

    path = legacy_file(tmp_path / "hparams.pt", pickle.dumps({"args": argparse.Namespace(lr=1)}, protocol=2))
    with pytest.raises(UnsafeCheckpoint, match=r"`argparse\.Namespace`"):
        bridge.load(path)


def test_build_cannot_mutate_the_stand_ins(tmp_path):
    # BUILD with slot state would setattr(_rebuild_tensor_v2, "__defaults__", None) on a naive stand-in.
    evil = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__Ns\x86b."
    path = legacy_file(tmp_path / "build.pt", evil)
    with pytest.raises(CorruptCheckpoint, match="set attributes"):
        bridge.load(path)
    assert restricted_unpickler._rebuild_tensor_v2.__defaults__ is not None


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_quantized_tensors_are_unsupported(torch, tmp_path):
    q = torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)
    path = save(torch, {"q": q}, tmp_path / "q.pt", "zip")
    with pytest.raises(UnsupportedFeature, match="_rebuild_qtensor"):
        bridge.load(path)


def test_torchscript_is_unsupported(torch, tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsupportedFeature, match="TorchScript"):
        bridge.load(path)


@pytest.mark.parametrize("style", FORMATS)
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_files(torch, every_dtype, tmp_path, style, keep):
    path = save(torch, every_dtype, tmp_path / "whole.pt", style)
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptCheckpoint) as err:
        bridge.load(cut)
    assert "cut.pt" in str(err.value)


def test_storage_too_small_for_view(torch, tmp_path):
    path = save(torch, {"w": torch.arange(6.0)}, tmp_path / "w.pt", "legacy")
    # Claim a larger shape over the same 6-element storage: (6,) stride (1,) -> (7,).
    data = path.read_bytes().replace(b"K\x06\x85", b"K\x07\x85", 1)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data)
    with pytest.raises(CorruptCheckpoint, match="`w`.*runs past|runs past.*`w`"):
        bridge.load(bad)


# ---------------------------------------------------------------------------- no torch at read time

_NO_FRAMEWORKS = """
import sys
for name in ("torch", "tensorflow", "safetensors", "transformers"):
    sys.modules[name] = None
import hashlib, json
import bridge
out = {}
for path in sys.argv[1:]:
    with bridge.load(path) as ckpt:
        out[path] = {n: [ckpt.format, hashlib.sha256(r.numpy().tobytes()).hexdigest()] for n, r in ckpt.items()}
assert not any(sys.modules.get(m) for m in ("torch", "tensorflow", "safetensors"))
print(json.dumps(out))
"""


def test_reads_without_torch_tensorflow_or_safetensors(torch, every_dtype, tmp_path):
    from safetensors.torch import save_file

    plain = {k: v for k, v in every_dtype.items() if v.is_contiguous() and k not in ("param", "rows")}
    files = {
        str(tmp_path / "m.safetensors"): "safetensors",
        str(tmp_path / "pytorch_model.bin"): "torch",
        str(tmp_path / "legacy.pt"): "torch",
    }
    save_file(plain, str(tmp_path / "m.safetensors"))
    save(torch, every_dtype, tmp_path / "pytorch_model.bin", "zip")
    save(torch, every_dtype, tmp_path / "legacy.pt", "legacy")
    result = subprocess.run(
        [sys.executable, "-c", _NO_FRAMEWORKS, *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    for path, fmt in files.items():
        source = plain if fmt == "safetensors" else every_dtype
        expected = {n: [fmt, hashlib.sha256(torch_bytes(t)).hexdigest()] for n, t in source.items()}
        assert seen[path] == expected, path
