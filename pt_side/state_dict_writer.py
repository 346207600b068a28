"""Writers for the PyTorch side: safetensors (native, streaming, sharded) and ``pytorch_model.bin``.

The safetensors header is computed from shapes and dtypes before any value is
read, then values stream one at a time from the source: peak memory is about
the largest tensor, not the model.  Output is deterministic: same input, same bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import MissingDependency
from bridge.core.outputs import OutTensor, plan_shards
from bridge.core.stream import prefetched, produced_value

_SAFETENSORS_DTYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "int32": "I32",
    "uint32": "U32", "int64": "I64", "uint64": "U64", "float16": "F16", "bfloat16": "BF16",
    "float32": "F32", "float64": "F64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip


def write_safetensors(
    folder: Path,
    tensors: Sequence[OutTensor],
    *,
    stem: str = "model",
    max_shard_size: int | None = None,
    metadata: dict[str, str] | None = None,
    on_tensor: Callable[[OutTensor], None] | None = None,
    owns: Callable[[int], bool] | None = None,
) -> list[Path]:
    """Write ``{stem}.safetensors`` (or ``{stem}-0000K-of-0000N.safetensors`` + index) into ``folder``.

    ``owns(k)`` says which shards (from 0) this process writes, where several share the job (torchrun ranks);
    the one that owns shard 0 writes the index.  The paths of every file are returned either way.
    """
    shards = plan_shards(tensors, max_shard_size)
    meta = {"format": "pt", **(metadata or {})}
    mine = owns or (lambda k: True)
    if len(shards) == 1:
        path = folder / f"{stem}.safetensors"
        if mine(0):
            _write_one(path, shards[0], meta, on_tensor)
        return [path]
    paths = []
    weight_map: dict[str, str] = {}
    for k, shard in enumerate(shards, start=1):
        path = folder / f"{stem}-{k:05d}-of-{len(shards):05d}.safetensors"
        if mine(k - 1):
            _write_one(path, shard, meta, on_tensor)
        paths.append(path)
        weight_map.update({t.name: path.name for t in shard})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors)}, "weight_map": dict(sorted(weight_map.items()))}
    index_path = folder / f"{stem}.safetensors.index.json"
    if mine(0):
        index_path.write_text(json.dumps(index, indent=2) + "\n")
    return [index_path, *paths]


def _write_one(
    path: Path, tensors: Iterable[OutTensor], metadata: dict[str, str], on_tensor: Callable[[OutTensor], None] | None
) -> None:
    tensors = list(tensors)
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for t in tensors:
        header[t.name] = {
            "dtype": _SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t, value in prefetched(tensors, produced_value):
            if value.dtype.byteorder == ">":
                value = value.astype(value.dtype.newbyteorder("<"))
            f.write(value.tobytes() if value.ndim == 0 else value.reshape(-1).view(np.uint8).data)
            if on_tensor is not None:
                on_tensor(t)


def write_torch_bin(folder: Path, tensors: Sequence[OutTensor], *, stem: str = "pytorch_model") -> list[Path]:
    """``pytorch_model.bin`` via ``torch.save`` (needs torch; holds the whole state dict in memory)."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependency("torch is needed to write .bin files", hint="pip install torch") from e
    state = {t.name: torch_tensor(value, t.dtype) for t, value in prefetched(tensors, produced_value)}
    path = folder / f"{stem}.bin"
    torch.save(state, path)
    return [path]


# dtypes numpy holds as ml_dtypes (or torch has no numpy twin for): moved as raw bits, then viewed as torch's.
_VIEWED = {"bfloat16": ("uint16", "bfloat16"), "float8_e4m3fn": ("uint8", "float8_e4m3fn"),
           "float8_e5m2": ("uint8", "float8_e5m2")}  # fmt: skip


def torch_tensor(value: np.ndarray, dtype: str) -> Any:
    """A torch tensor of ``value``'s bits (a copy: torch must not share a read-only memory map)."""
    import torch

    value = value.astype(value.dtype.newbyteorder("<")) if value.dtype.byteorder == ">" else value.copy()
    if dtype in _VIEWED:
        raw, name = _VIEWED[dtype]
        return torch.from_numpy(value.view(raw)).view(getattr(torch, name))
    return torch.from_numpy(value)
