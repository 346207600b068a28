"""A TensorFlow-free writer of Keras 2 ``save_weights`` h5 files (transformers' ``tf_model.h5``).

Mirrors tf-keras' ``save_weights_to_hdf5_group`` call for call, so that h5py
lays the file out as Keras does: root attributes ``layer_names`` (the layers in
model order), ``backend`` and ``keras_version``; one group per layer, created in
name order, with a ``weight_names`` attribute (the layer's variables in its own
order) and one dataset per variable named after it; a ``top_level_model_weights``
group (the weights the model owns itself, most often none).  For the same tensors
and h5py/HDF5 versions the bytes equal the file transformers 4.57.6 wrote (``tests/fixtures/hf-tf-bert``).
h5py stores no creation times for datasets by default and none for these
groups, so the same input gives the same bytes.

With ``max_shard_size`` a model larger than the limit is written as transformers
4.57's ``save_pretrained(max_shard_size=...)`` writes it: each variable once (a
layer's copy of another's variable is the same variable), cut in model order into
``tf_model-0000K-of-0000N.h5`` files with a ``layer_names`` attribute listing
their datasets (variable names without the model scope, in name order), and a
``tf_model.h5.index.json`` (``total_size``, variable name -> shard file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bridge.core.errors import UnsupportedFeature
from bridge.core.outputs import plan_shards, planned_nbytes
from bridge.core.stream import Planned, prefetched, produced_value
from tf_side.keras2_h5 import shard_dataset_name

# The Keras 2 release whose layout this reproduces (tf-keras 2.21, which transformers 4.57.6
# saved with).  Keras reads the value only to upgrade Keras 1 files.
KERAS_VERSION = "2.21.0"
_TOP_LEVEL = "top_level_model_weights"  # weights the model owns itself, no layer (most transformers models: none)
# HDF5 has no bfloat16 and Keras 2 h5 files no strings: the types Keras 2 writes and reads back.
_H5_TYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                       "float16", "float32", "float64"})  # fmt: skip


def write_keras2_h5(
    path: Path,
    tensors: Sequence[Planned],
    *,
    metadata: Mapping[str, Any] | None = None,  # the target's; these layouts need none
    on_tensor: Callable[[Planned], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """Write ``tensors`` as a Keras 2 weights file (or transformers' shards of one); values stream one at a time.

    Args:
        path: the ``.h5`` file to create.
        tensors: named ``<layer>/<variable name>`` (``bert/tf_bert_model/bert/.../kernel:0``), in
            model order: layers in the order of their first tensor, variables in the given order.
        on_tensor: called after each tensor is written (progress).
        max_shard_size: bytes per shard; a larger model is written as transformers' sharded layout.

    Returns:
        ``[path]``, or the index and the shards.

    Raises:
        UnsupportedFeature: a dtype Keras 2 h5 files cannot hold (bfloat16, strings), before writing.
    """
    layers: dict[str, list[tuple[str, Planned]]] = {}
    for t in tensors:
        layer, sep, weight = t.name.partition("/")
        if not sep or not weight:
            raise ValueError(f"{t.name}: expected '<layer>/<variable name>'")
        if t.dtype not in _H5_TYPES:
            raise UnsupportedFeature(
                f"Keras 2 h5 files cannot hold {t.dtype}",
                path=path,
                tensor=t.name,
                hint="Pass --dtype float32 (or float16)",
            )
        layers.setdefault(layer, []).append((weight, t))
    variables: dict[str, Planned] = {}  # each variable once, in model order, as Keras' model.weights lists them
    for weights in layers.values():
        for weight, t in weights:
            variables.setdefault(weight, t)
    shards = plan_shards(list(variables.values()), max_shard_size)
    if len(shards) > 1:
        names = {id(t): weight for weight, t in variables.items()}
        return _write_shards(path, [[(names[id(t)], t) for t in shard] for shard in shards], on_tensor)
    own = layers.pop(_TOP_LEVEL, [])  # the model's own weights (a dual encoder's logit scale): no layer's
    with h5py.File(path, "w") as f:
        # Attribute values as Keras passes them (lists of bytes: variable-length strings in the file).
        _list_attr(f, "layer_names", list(layers))
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
        for layer in sorted(layers):  # Keras creates groups in name order ("strictly growing")
            _write_layer(f.create_group(layer), layers[layer], on_tensor)
        _write_layer(f.create_group(_TOP_LEVEL), own, on_tensor)
    return [path]


def _write_layer(
    group: h5py.Group, weights: list[tuple[str, Planned]], on_tensor: Callable[[Planned], None] | None
) -> None:
    _list_attr(group, "weight_names", [name for name, _ in weights])
    for (name, t), value in prefetched(weights, lambda w: produced_value(w[1])):
        _write_dataset(group, name, value)
        if on_tensor is not None:
            on_tensor(t)


def _write_dataset(group: h5py.Group, name: str, value: np.ndarray) -> None:
    ds = group.create_dataset(name.encode("utf8"), value.shape, dtype=value.dtype.newbyteorder("<"))
    if value.shape:
        ds[:] = value
    else:
        ds[()] = value


def _write_shards(
    path: Path, shards: list[list[tuple[str, Planned]]], on_tensor: Callable[[Planned], None] | None
) -> list[Path]:
    """transformers 4.57's sharded ``save_pretrained``: the shards, then the index (``sort_keys``, as it dumps it)."""
    stem = path.name.removesuffix(".h5")
    weight_map: dict[str, str] = {}
    paths = []
    for k, shard in enumerate(shards, start=1):
        paths.append(path.with_name(f"{stem}-{k:05d}-of-{len(shards):05d}.h5"))
        with h5py.File(paths[-1], "w") as f:
            datasets = []
            ordered = sorted(shard, key=lambda item: item[0])
            for (variable, t), value in prefetched(ordered, lambda item: produced_value(item[1])):
                datasets.append(shard_dataset_name(variable))
                _write_dataset(f, datasets[-1], value)
                weight_map[variable] = paths[-1].name
                if on_tensor is not None:
                    on_tensor(t)
            _list_attr(f, "layer_names", datasets)
    total = sum(planned_nbytes(t) for shard in shards for _, t in shard)
    index = path.with_name(f"{path.name}.index.json")
    content = {"metadata": {"total_size": total}, "weight_map": weight_map}
    index.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return [index, *paths]


# The HDF5 object-header limit Keras keeps a list attribute under (save_attributes_to_hdf5_group).
_HEADER_LIMIT = 64512


def _list_attr(obj: h5py.Group, name: str, values: list[str]) -> None:
    """A list attribute as Keras' ``save_attributes_to_hdf5_group`` stores it: whole (variable-length strings), or,
    when its fixed-length form passes the object-header limit, in chunks ``name0``, ``name1``...  One name over the
    limit cannot be stored (Keras raises too)."""
    data = [v.encode("utf8") for v in values]
    too_long = [v for v in values if len(v.encode("utf8")) > _HEADER_LIMIT]
    if too_long:
        raise ValueError(f"{too_long[0][:80]}...: a name longer than {_HEADER_LIMIT} bytes cannot be stored in HDF5")
    array = np.asarray(data)
    chunks = 1
    while any(c.nbytes > _HEADER_LIMIT for c in np.array_split(array, chunks)):
        chunks += 1
    if chunks == 1:
        obj.attrs[name] = data
        return
    for i, chunk in enumerate(np.array_split(array, chunks)):
        obj.attrs[f"{name}{i}"] = chunk
