"""Reader of Keras 3 ``.weights.h5`` files (``H5IOStore``) and sharded ``.weights.json`` sets, with h5py only.

One group per saved object, named by its *attribute path* (``layers/<snake_case
class>``, ``layers/lstm/cell``, ``optimizer``), each with a ``vars`` group whose
datasets are numbered ``0, 1, ...`` in the object's variable order and whose
``name`` attribute is the object's name (Keras 3.15).  Variable names are not
stored, so records have no ``path``.  The writer is
:mod:`tf_side.keras3_weights_writer`; the ``.keras`` archive's inner
``model.weights.h5`` is read by :func:`keras3_records` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint, FormatNotRecognized
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint, TensorKind, TensorRecord
from bridge.core.naming import bookkeeping_kind
from tf_side.h5io import (
    H5_ERRORS,
    Source,
    check_file,
    guarded,
    is_legacy,
    must,
    open_plain,
    probe,
    record,
    str_attr,
    walk,
)

__all__ = [
    "keras3_records",
    "read_keras3_weights",
    "sniff_keras3_weights",
]


def _is_keras3(root: h5py.Group) -> bool:
    # H5IOStore puts every object's variables in a `vars` group: `vars` at the root
    # for the saved object itself, `<attribute path>/vars` below.  Keras 2 files
    # have no such group and always carry `layer_names`.
    if is_legacy(root):
        return False
    if isinstance(root.get("vars"), h5py.Group):
        return True
    # A weights file of an object without own variables may lack the root `vars`;
    # then `layers/<name>/vars` or `optimizer/vars` must be there (tf.keras 2.13
    # wrote `_layer_checkpoint_dependencies` instead of `layers`).
    for key in ("layers", "optimizer", "_layer_checkpoint_dependencies"):
        group = root.get(key)
        if not isinstance(group, h5py.Group):
            continue
        if isinstance(group.get("vars"), h5py.Group):
            return True
        if any(isinstance(group.get(f"{child}/vars"), h5py.Group) for child in group):
            return True
    return False


def sniff_keras3_weights(path: Path) -> bool:
    """A Keras 3 ``.weights.h5`` (HDF5 with ``vars`` groups, no ``layer_names``),
    or the ``.weights.json`` index of a sharded set."""
    if path.name.endswith(".weights.json"):
        return _shard_index(path) is not None
    f = probe(path)
    if f is None:
        return False
    with f:
        try:
            return _is_keras3(f)
        except H5_ERRORS:
            # Damaged past the root: claim what is named like one, so that reading says what is wrong.
            return path.name.endswith(".weights.h5")


def keras3_records(source: Source, f: h5py.File, *, offsets: bool) -> tuple[list[TensorRecord], dict[str, Any]]:
    """Records and metadata of an ``H5IOStore`` file (standalone or in an archive)."""
    records: list[TensorRecord] = []
    object_names: dict[str, str] = {}
    for name, ds in walk(f):
        parts = name.split("/")
        kind: TensorKind
        if parts[0] == "optimizer":
            # The optimizer's state lives under `optimizer/` (the attribute path of
            # model.optimizer).  Its vars/0 is `iteration` (int64 scalar), created
            # first by BaseOptimizer (Keras 3.15; also tf-keras 2.21's .keras);
            # Keras 3 then has `learning_rate` (float32 scalar) and the slots.
            kind = "optimizer"
            if parts[-2:] == ["vars", "0"] and ds.shape == () and ds.dtype.kind in "iu":
                kind = "counter"
        else:
            # tf-keras' .keras archives also save metric accumulators (metrics/mean/vars/0 = total, 1 = count),
            # Keras 3 a random layer's seed (layers/random_flip/seed_generator/vars/0): bookkeeping, not weights.
            kind = bookkeeping_kind(parts) or "model"
        records.append(must(record(source, ds, name, kind=kind, offsets=offsets), source, name))
    # Each `vars` group carries the saved object's name (`layers/embedding/vars`
    # -> "emb"): the group names are class-derived, not the layer names.
    for key in _vars_groups(f):
        owner = str_attr(f[key], "name")
        if owner is not None:
            object_names[key] = owner
    metadata: dict[str, Any] = {"layout": "keras3"}
    if "vars" in object_names:
        metadata["model_name"] = object_names["vars"]
    if object_names:
        metadata["object_names"] = object_names
    return records, metadata


def _vars_groups(f: h5py.File) -> list[str]:
    found: list[str] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars":
            found.append(name)

    f.visititems(visit)
    return found


# Keras 3.10+ `save_weights("x.weights.json", max_shard_size=GB)` (ShardedH5IOStore)
# writes x_00000.weights.h5, x_00001.weights.h5... in the same H5IOStore layout and
# an index {"metadata": {"total_size": ...}, "weight_map": {"/layers/dense/vars":
# "x_00000.weights.h5", ...}}; a vars group spanning several shards lists them all.
_SHARD_INDEX_MAX_BYTES = 64 << 20


def _shard_index(path: Path) -> dict[str, Any] | None:
    """The parsed sharding index, or None when ``path`` is not one."""
    try:
        if not path.is_file() or path.stat().st_size > _SHARD_INDEX_MAX_BYTES:
            return None
        with open(path, "rb") as fh:
            if fh.read(1) != b"{":
                return None
            fh.seek(0)
            text = fh.read()
        index = load_json(text, path=path, what="Keras shard index", hint="")
    except (OSError, ValueError):  # CorruptCheckpoint is a ValueError: not an index, then
        return None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(n, str) for n in v)) for v in weight_map.values()
    ):
        return None
    return dict(index)


def _shard_names(index: dict[str, Any]) -> list[str]:
    """The shard files an index names, in order of first mention (one name or a list per vars group)."""
    names: list[str] = []
    for value in index["weight_map"].values():
        for name in [value] if isinstance(value, str) else value:
            if name not in names:
                names.append(name)
    return names


def _read_keras3_shards(path: Path, index: dict[str, Any]) -> Checkpoint:
    shards = [path.with_name(Path(name).name) for name in _shard_names(index)]  # siblings only
    for shard in shards:
        if not shard.is_file():
            raise CheckpointNotFound(
                "Weight shard not found",
                path=shard,
                detail=f"listed in the weight_map of '{path.name}'",
                hint="Put every shard next to the .weights.json index",
            )
    sources: list[Source] = []

    def close_all() -> None:
        for source in sources:
            source.close()

    records: list[TensorRecord] = []
    object_names: dict[str, str] = {}
    try:
        for shard in shards:
            source, f = open_plain(shard)
            sources.append(source)
            shard_records, shard_meta = keras3_records(source, f, offsets=True)
            records += shard_records
            object_names.update(shard_meta.get("object_names", {}))
        metadata: dict[str, Any] = {"layout": "keras3-sharded", "shards": [s.name for s in shards]}
        if "vars" in object_names:
            metadata["model_name"] = object_names["vars"]
        if object_names:
            metadata["object_names"] = object_names
        total = index.get("metadata", {}).get("total_size") if isinstance(index.get("metadata"), dict) else None
        if total is not None:
            metadata["total_size"] = total
        try:
            return Checkpoint(
                records,
                format="keras-weights",
                path=str(path),
                framework="keras",
                files=[str(path), *map(str, shards)],
                metadata=metadata,
                closer=close_all,
            )
        except ValueError as exc:  # the same dataset in two shards
            raise CorruptCheckpoint(
                "Shards overlap", path=path, detail=str(exc), hint="Re-save the sharded weights"
            ) from None
    except BaseException:
        close_all()
        raise


def read_keras3_weights(path: Path) -> Checkpoint:
    """A Keras 3 ``.weights.h5`` (or sharded ``.weights.json`` set): every dataset by path."""
    if path.name.endswith(".weights.json"):
        check_file(path)
        index = _shard_index(path)
        if index is None:
            raise FormatNotRecognized(
                "Not a Keras sharded-weights index",
                path=path,
                detail="expected JSON with a `weight_map` of vars group -> shard file names",
                hint="Point at the .weights.json that Keras' save_weights(max_shard_size=...) wrote",
            )
        return _read_keras3_shards(path, index)
    source, f = open_plain(path)

    def build() -> Checkpoint:
        records, metadata = keras3_records(source, f, offsets=True)
        return Checkpoint(
            records,
            format="keras-weights",
            path=str(path),
            files=[str(path)],
            framework="keras",
            metadata=metadata,
            closer=source.close,
        )

    return guarded(source, build)
