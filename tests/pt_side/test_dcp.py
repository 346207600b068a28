"""torch.distributed.checkpoint directories: read torch-free, written for torch.

The oracles are torch's own: a DCP written by ``torch.distributed.checkpoint.save`` from two gloo ranks with
DTensors sharded across them (``dcp_ranks.py save``, which also writes the full tensors with safetensors), and
bridge's ``--format dcp`` output loaded by ``torch.distributed.checkpoint.load`` in two gloo ranks into sharded and
full tensors (``dcp_ranks.py load``).  Every multi-process run has a timeout; a timeout fails, never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from pt_side import dcp_reader

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

REPO = Path(__file__).resolve().parents[2]
BERT_PT = REPO / "tests" / "fixtures" / "hf-tf-bert-pt"
RANKS_TIMEOUT_S = 150  # generous: on 2 cores two xdist workers (and other jobs) run beside the two ranks


def run_ranks(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tests.pt_side.dcp_ranks ARGS``: two gloo processes, killed past the timeout (a failure).

    A rank that dies by a signal in gloo's teardown ("terminate called without an active exception", seen on a
    loaded 2-core machine) is torch's own crash, not a verdict: that run is repeated once.  A rank that finds
    different values exits 1 with its message, and is never repeated."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for attempt in (1, 2):
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tests.pt_side.dcp_ranks", *args],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=RANKS_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"two gloo ranks did not finish in {RANKS_TIMEOUT_S} s: {exc.stderr!r}")
        if done.returncode == 0 or "terminated with signal" not in done.stderr or attempt == 2:
            return done
    raise AssertionError("unreachable")


def torch_values(path: Path) -> dict[str, Any]:
    """A safetensors file as torch reads it (bfloat16 included)."""
    from safetensors.torch import load_file

    return load_file(path)


def same_bits(value: np.ndarray, tensor: Any) -> bool:
    import torch

    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return value.dtype.itemsize == tensor.element_size() and value.tobytes() == raw


@pytest.fixture(scope="module")
def torch_dcp(torch, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(DCP directory written by torch from 2 ranks, safetensors file of its full tensors)."""
    tmp = tmp_path_factory.mktemp("dcp")
    out, oracle = tmp / "ckpt", tmp / "full.safetensors"
    done = run_ranks("save", str(out), str(oracle))
    assert done.returncode == 0, done.stderr[-3000:]
    return out, oracle


@pytest.fixture(scope="module")
def torch_dcp_uneven(torch, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A second DCP by torch from 2 ranks (``dcp_ranks.py save-uneven``): every split uneven, one along columns."""
    tmp = tmp_path_factory.mktemp("dcp-uneven")
    out, oracle = tmp / "ckpt", tmp / "full.safetensors"
    done = run_ranks("save-uneven", str(out), str(oracle))
    assert done.returncode == 0, done.stderr[-3000:]
    return out, oracle


@pytest.mark.parametrize(("written", "uneven"), [("torch_dcp", ["model.embed.weight"]),
                                                 ("torch_dcp_uneven", ["model.proj.weight", "model.table",
                                                                       "model.counts"])])  # fmt: skip
def test_uneven_splits_are_assembled_as_torch_wrote_them(request, written, uneven):
    folder, oracle = request.getfixturevalue(written)
    expected = torch_values(oracle)
    with bridge.load(folder) as ckpt:
        for name in uneven:
            tensor, record = expected[name], ckpt[name]
            assert record.location == "__0_0.distcp, __1_0.distcp (2 chunks)", name
            assert record.shape == tuple(tensor.shape) and same_bits(record.numpy(), tensor), name


def test_sharded_dcp_from_two_ranks_equals_the_full_tensors(torch_dcp):
    folder, oracle = torch_dcp
    assert sorted(p.name for p in folder.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    expected = torch_values(oracle)
    with bridge.load(folder) as ckpt:
        assert ckpt.format == "dcp"
        assert sorted(ckpt) == sorted(expected)
        for name, record in ckpt.items():
            tensor = expected[name]
            value = record.numpy()
            assert record.dtype == str(tensor.dtype).removeprefix("torch.") and value.shape == tuple(tensor.shape)
            assert same_bits(value, tensor), name
        assert {ckpt[n].dtype for n in ckpt} >= {"float32", "float16", "bfloat16", "int64"}
        # Split across the two ranks' files: 19 + 18 rows of 37.
        assert ckpt["model.embed.weight"].location == "__0_0.distcp, __1_0.distcp (2 chunks)"
        assert ckpt["optim.state.embed.weight.exp_avg"].kind == "optimizer"
        assert ckpt["optim.state.embed.weight.exp_avg"].slot_name == "exp_avg"
        assert ckpt["model.layer.0.bias"].kind == "model"
        # Non-tensor items are listed, not weights; small scalars are shown.
        assert ckpt.metadata["objects"] == ["optim.param_groups.0.lr", "optim.param_groups.0.params", "step"]
        assert ckpt.metadata["scalars"] == {"optim.param_groups.0.lr": 0.01, "step": 7}


def test_reading_imports_no_torch(torch_dcp):
    probe = (
        "import sys, bridge\n"
        "for m in ('torch', 'tensorflow', 'transformers'): sys.modules[m] = None\n"
        f"c = bridge.load({str(torch_dcp[0])!r})\n"
        "print(sum(r.numpy().size for r in c.values()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == str(37 * 16 * 2 + 16 * 16 + 16 + 8 * 16 + 24 + 16 + 1)


def test_dcp_output_loads_in_two_ranks_bit_for_bit(torch, tmp_path):
    out = tmp_path / "out"
    result = bridge.convert(BERT_PT, to="pytorch", out=out, out_format="dcp")
    assert result.files == [".metadata", "__0_0.distcp", "config.json"]
    done = run_ranks("load", str(out), str(BERT_PT / "model.safetensors"))
    assert done.returncode == 0, done.stderr[-3000:]


def test_torch_sharded_dcp_rewritten_by_bridge_loads_in_two_ranks(torch_dcp, tmp_path):
    """The reader and the writer together: bridge's values of torch's sharded DCP, written back as DCP."""
    from bridge.core.outputs import OutTensor
    from pt_side.dcp_writer import write_dcp

    folder, oracle = torch_dcp
    with bridge.load(folder) as ckpt:
        write_dcp(tmp_path, [OutTensor(r.name, r.shape, r.dtype, r.numpy) for r in ckpt.values()])
    done = run_ranks("load", str(tmp_path), str(oracle))
    assert done.returncode == 0, done.stderr[-3000:]


def test_round_trip_safetensors_dcp_safetensors_is_byte_exact(tmp_path):
    bridge.convert(BERT_PT, to="pytorch", out=tmp_path / "dcp", out_format="dcp")
    bridge.convert(tmp_path / "dcp", to="pytorch", out=tmp_path / "back")
    assert (tmp_path / "back" / "model.safetensors").read_bytes() == (BERT_PT / "model.safetensors").read_bytes()
    again = tmp_path / "dcp2"
    bridge.convert(BERT_PT, to="pytorch", out=again, out_format="dcp")
    for name in (".metadata", "__0_0.distcp"):  # deterministic: no save id, no path inside
        assert (again / name).read_bytes() == (tmp_path / "dcp" / name).read_bytes()


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "model-key"])
def test_bert_dcp_converts_and_from_pretrained_loads_it(transformers, torch, tmp_path, nested):
    import torch.distributed.checkpoint as dcp

    config = transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    src = tmp_path / "dcp"
    dcp.save({"model": state} if nested else state, checkpoint_id=src)
    config.save_pretrained(src)
    result = bridge.convert(
        src, to="pytorch", out=tmp_path / "hf", target="BertForMaskedLM", strip_prefix="model." if nested else None
    )
    assert result.ok
    loaded, info = transformers.BertForMaskedLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_hostile_metadata_is_refused_and_not_run(torch_dcp, tmp_path):
    """A .metadata whose pickle calls os.system after a real Metadata: torch's reader runs it, bridge refuses."""
    from torch.distributed.checkpoint import FileSystemReader

    from bridge.core.errors import UnsafeCheckpoint

    sentinel = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {sentinel}",))

    import pickle

    folder = tmp_path / "ckpt"
    shutil.copytree(torch_dcp[0], folder)
    real = pickle.loads((folder / ".metadata").read_bytes())  # torch's own classes: importable here
    (folder / ".metadata").write_bytes(pickle.dumps((real, Payload())))
    assert dcp_reader.sniff(folder)
    with pytest.raises(UnsafeCheckpoint, match="os.system|posix.system"):
        bridge.load(folder)
    assert not sentinel.exists()
    with pytest.raises(Exception):  # noqa: B017 - torch's reader runs the payload, then fails on the tuple
        FileSystemReader(folder).read_metadata()
    assert sentinel.exists()  # the payload was live
