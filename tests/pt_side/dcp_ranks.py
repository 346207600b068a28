"""Two gloo ranks on CPU that save or load a torch.distributed.checkpoint with torch's own code: the independent
oracle of the DCP tests and bench (``python -m tests.pt_side.dcp_ranks save|load ...``; torch imported here only).

``save DIR ORACLE.safetensors``: tensors of several dtypes, some sharded across the ranks as DTensors
(``Shard(0)``, one of them with a row count that does not divide evenly), some replicated, an Adam-like optimizer
state and a step counter; rank 0 also writes every full tensor to ORACLE (safetensors, written by torch).
``load DIR EXPECTED.safetensors``: each rank loads the checkpoint with ``torch.distributed.checkpoint.load`` into a
state dict of the expected names, the first half as ``Shard(0)`` DTensors and the rest as full tensors, and exits
non-zero unless every value equals EXPECTED bit for bit.
``save-uneven DIR ORACLE.safetensors``: a second sharded checkpoint, other shapes and dtypes, every split uneven and
one along columns (``Shard(1)``), with its full tensors in ORACLE.
``save-bert DIR GB``: a BERT-shaped model of about GB GiB, sharded across the ranks (bench/bench_dcp.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

WORLD = 2


def _tensors() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {
        "embed.weight": torch.randn(37, 16, generator=g),  # 37 rows: uneven shards (19 + 18)
        "layer.0.weight": torch.randn(16, 16, generator=g).to(torch.float16),
        "layer.0.bias": torch.randn(16, generator=g).to(torch.bfloat16),
        "layer.1.weight": torch.randn(8, 16, generator=g).to(torch.bfloat16),
        "position_ids": torch.arange(24, dtype=torch.int64).reshape(2, 12),
        "norm.weight": torch.randn(16, generator=g),
    }
    return out


def _sharded(name: str) -> bool:
    return name.endswith("weight") or name.startswith("position")


def _init(rank: int, store: str) -> Any:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    return init_device_mesh("cpu", (WORLD,))


def _save(rank: int, store: str, out: str, oracle: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = _init(rank, store)
    full = _tensors()
    model = {k: distribute_tensor(v, mesh, [Shard(0) if _sharded(k) else Replicate()]) for k, v in full.items()}
    state = {
        "model": model,
        "optim": {
            "state": {
                "embed.weight": {
                    "exp_avg": distribute_tensor(full["embed.weight"] * 0.5, mesh, [Shard(0)]),
                    "step": torch.tensor(3.0),
                }
            },
            "param_groups": [{"lr": 0.01, "params": ["embed.weight"]}],
        },
        "step": 7,
    }
    dcp.save(state, checkpoint_id=out)
    if rank == 0:
        from safetensors.torch import save_file

        oracle_tensors = {f"model.{k}": v for k, v in full.items()}
        oracle_tensors["optim.state.embed.weight.exp_avg"] = full["embed.weight"] * 0.5
        oracle_tensors["optim.state.embed.weight.step"] = torch.tensor(3.0)
        save_file(oracle_tensors, oracle)
    dist.barrier()
    dist.destroy_process_group()


def _save_uneven(rank: int, store: str, out: str, oracle: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = _init(rank, store)
    g = torch.Generator().manual_seed(5)
    full = {  # (tensor, sharded dimension): 13 columns as 7 + 6, 11 rows as 6 + 5, 9 as 5 + 4
        "proj.weight": (torch.randn(5, 13, generator=g), 1),
        "table": (torch.randn(11, 3, generator=g, dtype=torch.float64), 0),
        "counts": (torch.arange(9, dtype=torch.int32) * 3 - 7, 0),
    }
    dcp.save({"model": {k: distribute_tensor(v, mesh, [Shard(d)]) for k, (v, d) in full.items()}}, checkpoint_id=out)
    if rank == 0:
        from safetensors.torch import save_file

        save_file({f"model.{k}": v for k, (v, _) in full.items()}, oracle)
    dist.barrier()
    dist.destroy_process_group()


def _save_bert(rank: int, store: str, out: str, gb: float) -> None:
    """A BERT-shaped model of about ``gb`` GiB (hidden 1024, as many layers as fit), float32, every matrix sharded
    across the ranks, saved as ``{"model": state_dict}`` with its config.json beside it (the DCP bench)."""
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    import transformers
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    layer_bytes = 12 * 1024 * 1024 * 4 + 40_000
    layers = max(1, int((gb * 2**30 - 130 * 2**20) // layer_bytes))
    config = transformers.BertConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                     num_hidden_layers=layers)  # fmt: skip
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in transformers.BertModel(config).state_dict().items()}
    mesh = _init(rank, store)
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, (shape, dtype) in shapes.items():
        full = torch.randn(shape, generator=g) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
        state[name] = distribute_tensor(full, mesh, [Shard(0) if len(shape) == 2 else Replicate()])
    dcp.save({"model": state}, checkpoint_id=out)
    if rank == 0:
        config.save_pretrained(out)
    dist.barrier()
    dist.destroy_process_group()


def _load(rank: int, store: str, src: str, expected_path: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import load_file
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    mesh = _init(rank, store)
    expected = load_file(expected_path)
    names = sorted(expected)
    state: dict[str, Any] = {}
    for i, name in enumerate(names):
        empty = torch.full_like(expected[name], 7)  # never equal to what is loaded by chance
        shard = i % 2 == 0 and empty.ndim >= 1 and empty.shape[0] >= WORLD
        state[name] = distribute_tensor(empty, mesh, [Shard(0)]) if shard else empty
    dcp.load(state, checkpoint_id=src)
    bad = []
    for name in names:
        value = state[name]
        full = value.full_tensor() if isinstance(value, DTensor) else value
        if full.dtype != expected[name].dtype or not torch.equal(
            full.view(-1).view(torch.uint8), expected[name].view(-1).view(torch.uint8)
        ):
            bad.append(name)
    dist.barrier()
    dist.destroy_process_group()
    if bad:
        raise SystemExit(f"rank {rank}: values differ from {expected_path}: {bad}")


def _rank(rank: int, mode: str, store: str, args: list[str]) -> None:
    if mode == "save-bert":
        _save_bert(rank, store, args[0], float(args[1]))
    elif mode == "save":
        _save(rank, store, args[0], args[1])
    elif mode == "save-uneven":
        _save_uneven(rank, store, args[0], args[1])
    else:
        _load(rank, store, args[0], args[1])


def main(argv: list[str]) -> None:
    import torch.multiprocessing as mp

    mode, args = argv[0], argv[1:]
    with tempfile.TemporaryDirectory(prefix="bridge-dcp-") as tmp:
        mp.start_processes(_rank, args=(mode, str(Path(tmp) / "store"), args), nprocs=WORLD, start_method="spawn")


if __name__ == "__main__":
    main(sys.argv[1:])
