"""Helpers shared by the PyTorch-side readers: memory maps, shard indexes (parsed in the core), config.json.

Nothing here imports torch or safetensors: the readers parse the formats themselves.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.jsonio import load_json
from bridge.core.shard_index import ShardIndex
from bridge.core.source import RangeView, RemotePath

# What zipfile raises on a damaged archive: besides BadZipFile, a bad deflate stream is zlib.error, a short one
# EOFError, an unknown compression method NotImplementedError, a negative offset OSError, impossible header fields
# ValueError/OverflowError.  Readers catch BridgeError (a ValueError too) before these.
ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    OSError,
    ValueError,
    OverflowError,
)


class MappedFiles:
    """One read-only ``np.memmap`` per file, opened on first use and shared by every record.

    Mapping costs nothing until pages are touched, so records slice the map instead
    of reading; :meth:`close` drops the maps (arrays already handed out keep theirs alive).
    """

    def __init__(self) -> None:
        self._maps: dict[Path, np.memmap | RangeView] = {}

    def bytes_of(self, path: Path) -> np.memmap | RangeView:
        mapped = self._maps.get(path)
        if mapped is None:
            try:
                # Behind a URL a slice is one range request instead of a page fault.
                mapped = RangeView(path) if isinstance(path, RemotePath) else np.memmap(path, dtype=np.uint8, mode="r")
            except FileNotFoundError:
                raise CheckpointNotFound(
                    "Checkpoint file disappeared", path=path, hint="Reopen the checkpoint"
                ) from None
            self._maps[path] = mapped
        return mapped

    def close(self) -> None:
        self._maps.clear()


def read_config(folder: Path) -> dict[str, Any] | None:
    """``config.json`` beside a checkpoint (transformers' model config), parsed as JSON only."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = load_json(config.read_bytes(), path=config, what="config", hint="")
    except (OSError, CorruptCheckpoint):
        return None  # a broken companion file must not stop reading the weights
    return data if isinstance(data, dict) else None


def check_index_coverage(index: ShardIndex, found: dict[str, Path]) -> None:
    """Every tensor the index names must be in the shard it names."""
    for name, shard_name in index.weight_map.items():
        where = found.get(name)
        if where is None or where.name != Path(shard_name).name:
            raise CorruptCheckpoint(
                "Shard index and shards disagree",
                path=index.path,
                tensor=name,
                detail=f"the index puts it in '{shard_name}'"
                + (f" but it is in '{where.name}'" if where is not None else " but no shard holds it"),
                hint="Re-save the model or restore the matching index",
            )


def resolve_weights(
    path: Path, single_name: str, index_name: str, what: str, point_at: str
) -> tuple[Path, Path | None, Path]:
    """(folder for config.json, the shard index or None, the single file when there is no index).

    ``path`` is a weights file, a ``*.index.json``, or a ``save_pretrained`` folder holding
    ``single_name`` or ``index_name``.
    """
    if path.is_dir():
        if (path / index_name).is_file():
            return path, path / index_name, path
        single = path / single_name
        if not single.is_file():
            raise CheckpointNotFound(
                f"No {what} weights in folder",
                path=path,
                detail=f"neither {single_name} nor {index_name}",
                hint=f"Point at {point_at} or its index",
            )
        return path, None, single
    if not path.is_file():
        raise CheckpointNotFound("Checkpoint not found", path=path, hint="Check the path")
    if path.name.endswith(".index.json"):
        return path.parent, path, path
    return path.parent, None, path


def is_count(value: Any) -> bool:
    """A non-negative int (not a bool): a dimension, an offset, an element count."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def claim_name(found: dict[str, Path], name: str, file: Path) -> None:
    """Record that ``file`` holds ``name``; a name in two shards is a corrupt set."""
    if name in found:
        raise CorruptCheckpoint(
            "Tensor stored twice",
            path=file,
            tensor=name,
            detail=f"also in '{found[name].name}'",
            hint="Re-save the model; shards must not overlap",
        )
    found[name] = file
