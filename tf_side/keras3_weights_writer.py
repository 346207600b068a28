"""Write a Keras 3 ``.weights.h5`` natively with h5py, in the layout Keras' ``H5IOStore`` writes.

Every saved object has a group named by its attribute path (``layers/dense``,
``layers/lstm/cell``) holding a ``vars`` group whose ``name`` attribute is the object's
name and whose datasets ``0, 1, ...`` are its variables in order; objects without
variables still have their empty ``vars`` group, and the model's own is ``/vars``
(Keras 3.15; ``model.load_weights`` looks each group up by path).  bfloat16 is stored as Keras stores it: a 2-byte
HDF5 opaque type (numpy ``|V2``) with the attribute ``dtype = "bfloat16"``.

:func:`write_keras3_shards` writes the set Keras 3.15's ``save_weights("x.weights.json", max_shard_size=GB)``
(``ShardedH5IOStore``) writes: ``x_00000.weights.h5``, ``x_00001.weights.h5``, ... in the same layout, a new shard
when the running size would pass the limit (a variable larger than the limit alone is refused, as Keras refuses
it), and the index ``{"metadata": {"total_size": bytes}, "weight_map": {"/<group>/vars": shard file}}`` (a list of
files where a vars group spans several).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py

from bridge.core import dtypes
from bridge.core.errors import UnsupportedFeature, UsageError
from bridge.core.stream import produced_value


def write_keras3_weights(
    path: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any],
    on_tensor: Callable[[Any], None] | None = None,
) -> list[Path]:
    """Write ``tensors`` (named ``<object path>/vars/<i>``) and the ``vars`` groups of ``layout``.

    Args:
        path: the ``.weights.h5`` to create.
        tensors: objects with ``name``, ``shape``, ``dtype`` and ``produce()`` (one value at a time).
        metadata: the target's, ``{"object_names": {vars group path: object name}}`` from the Keras model's
            own file.
        on_tensor: called after each tensor (progress).
    """
    object_names: dict[str, str] = dict(metadata.get("object_names", {}))
    with h5py.File(path, "w") as f:
        for group, name in sorted(object_names.items()):
            f.require_group(group).attrs["name"] = name
        for t in tensors:
            _write_tensor(f, t)
            if on_tensor is not None:
                on_tensor(t)
    return [path]


def _nbytes(t: Any) -> int:
    size = dtypes.itemsize(t.dtype)
    if size is None:
        raise UnsupportedFeature(
            f"Writing {t.dtype} to a Keras weights file", tensor=t.name, hint="Convert with --dtype float32"
        )
    return int(math.prod(t.shape)) * size


def _write_tensor(f: h5py.File, t: Any) -> None:
    _nbytes(t)  # refuses a dtype Keras cannot store before producing the value
    value = produced_value(t)
    group, _, index = t.name.rpartition("/")
    if t.dtype == "bfloat16":  # as Keras' H5IOStore: a 2-byte opaque type, the dtype in an attribute
        f.require_group(group).create_dataset(index, data=value.view("V2")).attrs["dtype"] = "bfloat16"
    else:
        f.require_group(group).create_dataset(index, data=value)


def write_keras3_shards(
    index: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any],
    max_shard_size: int,
    on_tensor: Callable[[Any], None] | None = None,
) -> list[Path]:
    """Write ``tensors`` as Keras' sharded set: ``index`` (``x.weights.json``) and its ``x_<k>.weights.h5`` shards
    of at most ``max_shard_size`` bytes each; a vars group's ``name`` goes to the shard where the group starts
    (groups without variables: the first shard)."""
    stem = index.name.removesuffix(".weights.json")
    object_names: dict[str, str] = dict(metadata.get("object_names", {}))
    for t in tensors:
        if _nbytes(t) > max_shard_size:
            raise UsageError(
                f"The tensor is larger ({_nbytes(t)} bytes) than the shard size ({max_shard_size} bytes)",
                tensor=t.name,
                hint="Pass a larger --max-shard-size (Keras never splits a variable)",
            )
    written: list[Path] = []
    weight_map: dict[str, str | list[str]] = {}
    named: set[str] = set()
    total = running = 0
    f: h5py.File | None = None
    try:
        for t in tensors:
            size = _nbytes(t)
            if f is None or running + size > max_shard_size:
                if f is not None:
                    f.close()
                written.append(index.with_name(f"{stem}_{len(written):05}.weights.h5"))
                f = h5py.File(written[-1], "w")
                running = 0
                if len(written) == 1:  # the objects without variables, and the model's own group
                    carried = set(object_names) - {x.name.rpartition("/")[0] for x in tensors}
                    for group in sorted(carried):
                        f.require_group(group).attrs["name"] = object_names[group]
                    named |= carried
            group = t.name.rpartition("/")[0]
            if group not in named and group in object_names:
                f.require_group(group).attrs["name"] = object_names[group]
                named.add(group)
            _write_tensor(f, t)
            running += size
            total += size
            shard, key = written[-1].name, "/" + group
            held = weight_map.setdefault(key, shard)
            if held != shard and (isinstance(held, str) or shard not in held):
                weight_map[key] = [*([held] if isinstance(held, str) else held), shard]
            if on_tensor is not None:
                on_tensor(t)
    finally:
        if f is not None:
            f.close()
    index.write_text(json.dumps({"metadata": {"total_size": float(total)}, "weight_map": weight_map}, indent=4))
    return [index, *written]
