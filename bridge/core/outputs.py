"""What ``convert`` writes, whatever the format: the planned tensors and the config file beside the weights.

Writers on either side take :class:`OutTensor` values (:class:`~bridge.core.stream.Planned`), so the TF
writers need nothing from the PyTorch side's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bridge.core import dtypes
from bridge.core.stream import Planned

P = TypeVar("P", bound=Planned)


@dataclass(frozen=True)
class OutTensor:
    """A tensor to write: metadata now, value produced (read + transformed) on demand."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        size = dtypes.itemsize(self.dtype)
        if size is None:
            raise ValueError(f"{self.name}: strings cannot be written to safetensors")
        return size * int(np.prod(self.shape, dtype=np.int64))


def planned_nbytes(t: Planned) -> int:
    """The bytes of a planned tensor's value; strings (whose size is known only once produced) count 0."""
    size = dtypes.itemsize(t.dtype)
    return 0 if size is None else size * int(np.prod(t.shape, dtype=np.int64))


def plan_shards(tensors: Sequence[P], max_shard_size: int | None) -> list[list[P]]:
    """Split in order into shards of at most ``max_shard_size`` bytes, never splitting a tensor: one larger than
    the limit gets a shard of its own (every writer's sharding, so the same limit cuts the same way)."""
    if not max_shard_size:
        return [list(tensors)]
    shards: list[list[P]] = [[]]
    size = 0
    for t in tensors:
        nbytes = planned_nbytes(t)
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += nbytes
    return shards


def write_config(
    folder: Path,
    config: dict[str, Any],
    name: str = "config.json",
    render: Callable[[dict[str, Any]], str] | None = None,
) -> Path:
    """The config file: JSON (sorted keys, so the same plan writes the same bytes), or the text ``render`` makes."""
    path = folder / name
    path.write_text(render(config) if render is not None else json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path
