"""transformers' shard index (``*.index.json``): the one format of sharded safetensors, ``.bin`` and ``tf_model.h5``.

``{"metadata": {"total_size": N}, "weight_map": {tensor name: shard file name}}``, each shard a plain file name
beside the index.  Parsed as bounded JSON; a shard that is missing, or named outside the index's folder, is an
error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.jsonio import load_json

__all__ = ["ShardIndex", "load_index"]

_HINT = "Re-save the model or restore the index from its source"


@dataclass
class ShardIndex:
    """A parsed ``*.index.json``: its shards in first-seen order, every tensor's shard file name, its metadata."""

    path: Path
    shards: list[Path]
    weight_map: dict[str, str]
    metadata: dict[str, Any] = field(default_factory=dict)


def load_index(path: Path) -> ShardIndex:
    """Parse a shard index; every shard it names must be a file beside it."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointNotFound("Shard index not found", path=path) from None
    except OSError as exc:
        raise CorruptCheckpoint("Unreadable shard index", path=path, detail=str(exc)) from None
    data = load_json(text, path=path, what="shard index", hint=_HINT)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CorruptCheckpoint(
            "Shard index has no usable weight_map",
            path=path,
            detail='expected {"weight_map": {tensor name: shard file name}}',
            hint=_HINT,
        )
    shards: list[Path] = []
    for shard_name in dict.fromkeys(weight_map.values()):  # first-seen order, no duplicates
        if shard_name in ("", ".", "..") or "/" in shard_name or "\\" in shard_name:
            raise CorruptCheckpoint(
                "Shard index names a file outside its folder",
                path=path,
                detail=f"shard {shard_name!r}: transformers names shards by file name alone",
                hint=_HINT,
            )
        shard = path.parent / shard_name
        if not shard.is_file():
            raise CheckpointNotFound(
                "Shard missing",
                path=shard,
                detail=f"listed in the index '{path}' but not on disk",
                hint="Download or copy every shard named in the index's weight_map next to it",
            )
        shards.append(shard)
    metadata = data.get("metadata")
    return ShardIndex(path, shards, dict(weight_map), dict(metadata) if isinstance(metadata, dict) else {})
