"""A bundle opened as a :class:`~bridge.core.model.Checkpoint`: the readers the format registry names.

Opening reads the index only (and, for TF2 object-based checkpoints, the small object-graph string, which tags
each name); values are loaded on demand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.model import Checkpoint, RowReader, TensorKind, TensorRecord
from bridge.core.naming import classify_tf_name
from bridge.core.source import RemotePath, as_path
from tf_side import object_graph
from tf_side.bundle.index import DATA_TYPES, UNSUPPORTED_TYPES, BundleEntry
from tf_side.bundle.locate import index_of, locate, saved_model
from tf_side.bundle.read import Bundle, plain_loader, row_reader
from tf_side.bundle.slices import assembled_loader, slice_parts
from tf_side.proto import DecodeError

OBJECT_GRAPH_KEY = object_graph.OBJECT_GRAPH_KEY


def _open(path: Path, prefix: Path, *, format: str, metadata: dict[str, object] | None = None) -> Checkpoint:
    bundle = Bundle(prefix)
    try:
        return _build(path, bundle, format=format, metadata=metadata or {})
    except BaseException:
        bundle.shards.close()
        raise


@dataclass(frozen=True)
class _Located:
    loader: Callable[[], np.ndarray]
    nbytes: int
    location: str
    row_reader: RowReader | None = None


def _locate_value(bundle: Bundle, entry: BundleEntry, name: str, sizes: dict[int, int | None]) -> _Located:
    """Check where an entry's bytes lie (stat only) and make its loader."""
    if not entry.slices:
        bundle.check_extent(entry, name, sizes)
        located = plain_loader(bundle, entry, name), entry.size, bundle.data_location(entry)
        return _Located(*located, row_reader=row_reader(bundle, entry, name))
    parts = slice_parts(bundle, entry, name)
    for part in parts:
        bundle.check_extent(part.entry, name, sizes)
    location = bundle.data_location(parts[0].entry)
    if len(parts) > 1:
        location += f" (+{len(parts) - 1} more slices)"
    return _Located(assembled_loader(bundle, entry, parts, name), sum(p.entry.size for p in parts), location)


def _read_graph(bundle: Bundle, located: dict[str, _Located]) -> dict[str, object_graph.GraphEntry] | None:
    entry = bundle.entries.get(OBJECT_GRAPH_KEY.encode())
    if entry is None or OBJECT_GRAPH_KEY not in located or DATA_TYPES.get(entry.dtype) != dtypes.STRING:
        return None
    if entry.shard_id in bundle.missing:
        return None  # the warning names the shard; names stay as the index lists them
    # The one value read at open time: a few KB that say what every other key is.
    serialized = located[OBJECT_GRAPH_KEY].loader().reshape(-1)
    if serialized.size != 1:
        return None
    try:
        return object_graph.read_object_graph(bytes(serialized[0]))
    except DecodeError as e:
        raise CorruptCheckpoint(
            "Corrupt object graph",
            path=bundle.shards.filename(entry.shard_id),
            tensor=OBJECT_GRAPH_KEY,
            detail=str(e),
            hint="The checkpoint's object graph is damaged; copy or download the checkpoint again",
        ) from e


def _fingerprint(bundle: Bundle, key: str) -> tuple[int, tuple[int, ...], int, int] | None:
    """What the index says of a value's bytes (dtype, shape, size, CRC32C); ``None`` for a partitioned one."""
    entry = bundle.entries.get(key.encode("utf-8", "surrogateescape"))
    if entry is None or entry.slices:
        return None
    return entry.dtype, entry.shape, entry.size, entry.crc32c


def _build(path: Path, bundle: Bundle, *, format: str, metadata: dict[str, object]) -> Checkpoint:
    sizes: dict[int, int | None] = {}
    located: dict[str, _Located] = {}
    skipped: dict[str, str] = {}
    for key, entry in bundle.entries.items():
        if key.startswith(b"\x00"):
            continue  # one saved slice of a partitioned tensor: listed under the tensor's name
        if entry.dtype not in DATA_TYPES:
            skipped[entry.name] = UNSUPPORTED_TYPES.get(entry.dtype, f"DataType {entry.dtype}")
            continue
        located[entry.name] = _locate_value(bundle, entry, entry.name, sizes)
    graph = _read_graph(bundle, located)
    copies: dict[str, str] = {}
    if graph is not None:
        graph, copies = object_graph.merge_copies(graph, lambda key: _fingerprint(bundle, key))

    records: list[TensorRecord] = []
    tied: list[tuple[str, ...]] = []
    for name, where in located.items():
        entry = bundle.entries[name.encode("utf-8", "surrogateescape")]
        kind: TensorKind
        record_path = slot_of = slot_name = None
        info = graph.get(name) if graph is not None else None
        if name == OBJECT_GRAPH_KEY:
            kind = "metadata"
        elif info is not None:
            kind, record_path, slot_of, slot_name = info.kind, info.path, info.slot_of, info.slot_name
            if info.aliases:  # one variable held by two model objects: stored once, a tie
                tied.append((info.readable_path, *info.alias_paths))
        else:
            tagged = classify_tf_name(name)
            kind, slot_of, slot_name = tagged.kind, tagged.slot_of, tagged.slot_name
        records.append(
            TensorRecord(
                name=name,
                shape=entry.shape,
                dtype=DATA_TYPES[entry.dtype],
                nbytes=where.nbytes,
                location=where.location,
                loader=where.loader,
                row_reader=where.row_reader,
                kind=kind,
                path=record_path,
                slot_of=slot_of,
                slot_name=slot_name,
            )
        )

    files = [str(bundle.index_path), *map(str, _present_shards(bundle))]
    warnings = []
    if bundle.missing:
        absent = sorted(bundle.missing)
        shown = ", ".join(bundle.shards.filename(i).name for i in absent[:3]) + (", ..." if len(absent) > 3 else "")
        warnings.append(
            f"{len(absent)} of the {bundle.num_shards} data shard(s) the index needs are missing ({shown}): names, "
            "shapes and dtypes come from the index alone, values in them cannot be read"
            + ("; without the object graph, TF2 names are not tagged" if _graph_missing(bundle) else "")
        )
    meta: dict[str, object] = {
        "style": "object-based" if graph is not None or _graph_missing(bundle) else "name-based",
        "prefix": str(bundle.prefix),
        "num_shards": bundle.num_shards,
        "endianness": bundle.endianness,
        **metadata,
    }
    if copies:
        meta["copies"] = copies  # second saved copies of a model variable (Keras' export): copy key -> original key
    if skipped:
        meta["skipped"] = skipped  # dtypes with no numpy equivalent (variants, quantized)
    return Checkpoint(
        records,
        format=format,
        path=str(path),
        files=files,
        framework="tensorflow",
        metadata=meta,
        tied=tied,
        closer=bundle.shards.close,
        warnings=warnings,
    )


def _present_shards(bundle: Bundle) -> list[Path]:
    """The data shards on disk, found by listing the folder once: a damaged header may claim 2^31 shards."""
    stem = f"{bundle.prefix.name}.data-"
    tail = f"-of-{bundle.num_shards:05d}"
    if isinstance(bundle.prefix, RemotePath):  # no listing behind a URL: the shards the index uses, found by stat
        used = {e.shard_id for e in bundle.entries.values() if 0 <= e.shard_id < bundle.num_shards}
        return [bundle.shards.filename(i) for i in sorted(used - bundle.missing)]
    try:
        names = os.listdir(bundle.prefix.parent)
    except OSError:
        return []
    found = [n for n in names if n.startswith(stem) and n.endswith(tail) and n[len(stem) : -len(tail)].isdigit()]
    return [bundle.prefix.parent / n for n in sorted(found) if int(n[len(stem) : -len(tail)]) < bundle.num_shards]


def _graph_missing(bundle: Bundle) -> bool:
    entry = bundle.entries.get(OBJECT_GRAPH_KEY.encode())
    return entry is not None and entry.shard_id in bundle.missing


def read_checkpoint(path: Path) -> Checkpoint:
    """Open a TF1 name-based or TF2 object-based checkpoint, reading only its index.

    Args:
        path: the prefix (``model.ckpt-1000``), its ``.index``, ``.data-*`` or ``.meta`` file,
            or a directory with a ``checkpoint`` state file or a single ``*.index``.

    Returns:
        A :class:`~bridge.core.model.Checkpoint` (format ``tf-checkpoint``) whose names are
        those ``tf.train.list_variables`` shows; partitioned variables appear once,
        assembled from their slices when read.

    Raises:
        CheckpointNotFound: the index or a data shard is missing.
        CorruptCheckpoint: the index or a shard contradicts the format.
        UnsupportedFeature: a Snappy-compressed index or a newer bundle version.
    """
    path = as_path(path)
    return _open(path, locate(path), format="tf-checkpoint")


def read_saved_model(path: Path) -> Checkpoint:
    """Open the ``variables/variables`` bundle of a SavedModel or TF1 Hub module directory.

    Raises:
        CheckpointNotFound: the directory has no ``variables/variables.index``.
    """
    path = as_path(path)
    found = saved_model(path)
    if found is None:
        raise CheckpointNotFound(
            "SavedModel not found",
            path=path,
            detail="no saved_model.pb or tfhub_module.pb in the directory",
            hint="Pass the SavedModel directory (the one holding saved_model.pb and variables/)",
        )
    directory, container = found
    prefix = directory / "variables" / "variables"
    if not index_of(prefix).is_file():
        raise CheckpointNotFound(
            "SavedModel variables not found",
            path=index_of(prefix),
            detail="no variables bundle (a model without variables, or an incomplete copy)",
            hint="Copy the variables/ directory too",
        )
    metadata: dict[str, object] = {"container": container}
    if directory != path and directory.parent == path:  # a TF Serving base path: the version it would serve
        metadata["serving_version"] = f"{directory.name} (the highest version, the one TF Serving loads)"
    return _open(path, prefix, format="saved-model", metadata=metadata)
