"""Writer of ``torch.distributed.checkpoint`` (DCP) directories that ``torch.distributed.checkpoint.load`` reads on
any number of ranks (each rank reads the slices of the full tensors it asks for).

The layout is the one torch 2.13's ``FileSystemWriter`` gives a single-rank save (``pt_side/dcp_reader.py`` describes
it): every tensor is one chunk, a ``torch.save`` archive appended to ``__0_0.distcp``, and ``.metadata`` is the
pickle of torch's own ``Metadata`` objects naming each chunk's offset and length; the flattened names are the state
dict's keys.  torch is needed (its ``torch.save`` and metadata classes make the files exactly as torch does), but
only one tensor is held at a time.  Output is deterministic: no save id, no checkpoint path in the metadata.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, cast

from bridge.core.errors import MissingDependency
from bridge.core.outputs import OutTensor
from bridge.core.stream import prefetched, produced_value
from pt_side.state_dict_writer import torch_tensor

DATA_NAME = "__0_0.distcp"
METADATA_NAME = ".metadata"


class _Appender(io.RawIOBase):
    """Write-only view of the data file: torch.save then writes a self-contained archive from the current end, as
    torch's own writer does through a stream without ``tell``/``seek``."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        super().__init__()
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return self._raw.write(b)


def write_dcp(
    folder: Path, tensors: Sequence[OutTensor], *, on_tensor: Callable[[OutTensor], None] | None = None
) -> list[Path]:
    """Write ``.metadata`` + ``__0_0.distcp`` into ``folder``; returns both paths."""
    try:
        import torch
        from torch.distributed.checkpoint.filesystem import _StorageInfo
        from torch.distributed.checkpoint.metadata import (
            ChunkStorageMetadata,
            Metadata,
            MetadataIndex,
            StorageMeta,
            TensorProperties,
            TensorStorageMetadata,
        )
    except ImportError as e:
        raise MissingDependency("torch is needed to write DCP directories", hint="pip install torch") from e
    version: str | None = None  # before torch 2.5 the version was not recorded
    try:
        from torch.distributed.checkpoint.filesystem import CURRENT_DCP_VERSION

        version = str(CURRENT_DCP_VERSION)
    except ImportError:
        pass
    entries: dict[str, Any] = {}
    storage: dict[Any, Any] = {}
    data = folder / DATA_NAME
    with open(data, "wb") as f:
        for t, value in prefetched(list(tensors), produced_value):
            tensor = torch_tensor(value, t.dtype)
            size, origin = torch.Size(t.shape), [0] * len(t.shape)
            start = f.tell()
            torch.save(tensor, cast(IO[bytes], _Appender(f)))
            entries[t.name] = TensorStorageMetadata(
                properties=TensorProperties(dtype=tensor.dtype),
                size=size,
                chunks=[ChunkStorageMetadata(offsets=torch.Size(origin), sizes=size)],
            )
            storage[MetadataIndex(t.name, origin, 0)] = _StorageInfo(DATA_NAME, start, f.tell() - start)
            del tensor
            if on_tensor is not None:
                on_tensor(t)
    metadata = Metadata(
        state_dict_metadata=entries,
        planner_data={name: (name,) for name in entries},
        storage_data=storage,
        storage_meta=StorageMeta(),
        version=version,
    )
    meta = folder / METADATA_NAME
    with open(meta, "wb") as f:
        pickle.dump(metadata, f)
    return [meta, data]
