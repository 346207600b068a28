"""A TensorFlow-free writer of Keras 2 ``save_weights`` h5 files (transformers' ``tf_model.h5``).

Mirrors tf-keras' ``save_weights_to_hdf5_group`` call for call, so that h5py
lays the file out as Keras does: root attributes ``layer_names`` (the layers in
model order), ``backend`` and ``keras_version``; one group per layer, created in
name order, with a ``weight_names`` attribute (the layer's variables in its own
order) and one dataset per variable named after it; an empty
``top_level_model_weights`` group.  For the same tensors and h5py/HDF5 versions
the bytes equal the file transformers 4.57.6 wrote (``tests/fixtures/hf-tf-bert``).
h5py stores no creation times for datasets by default and none for these
groups, so the same input gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py

from bridge.core.errors import UnsupportedFeature
from bridge.core.stream import Planned, prefetched, produced_value

# The Keras 2 release whose layout this reproduces (tf-keras 2.21, which transformers 4.57.6
# saved with).  Keras reads the value only to upgrade Keras 1 files.
KERAS_VERSION = "2.21.0"
_TOP_LEVEL = "top_level_model_weights"  # weights owned by the model itself: none for transformers' models
# HDF5 has no bfloat16 and Keras 2 h5 files no strings: the types Keras 2 writes and reads back.
_H5_TYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                       "float16", "float32", "float64"})  # fmt: skip


def write_keras2_h5(
    path: Path,
    tensors: Sequence[Planned],
    *,
    metadata: Mapping[str, Any] | None = None,  # the target's; these layouts need none
    on_tensor: Callable[[Planned], None] | None = None,
) -> list[Path]:
    """Write ``tensors`` as a Keras 2 weights file; values stream one at a time.

    Args:
        path: the ``.h5`` file to create.
        tensors: named ``<layer>/<variable name>`` (``bert/tf_bert_model/bert/.../kernel:0``), in
            model order: layers in the order of their first tensor, variables in the given order.
        on_tensor: called after each tensor is written (progress).

    Returns:
        ``[path]``.

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
    with h5py.File(path, "w") as f:
        # Attribute values as Keras passes them (lists of bytes: variable-length strings in the file).
        f.attrs["layer_names"] = [name.encode("utf8") for name in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
        for layer in sorted(layers):  # Keras creates groups in name order ("strictly growing")
            _write_layer(f.create_group(layer), layers[layer], on_tensor)
        _write_layer(f.create_group(_TOP_LEVEL), [], on_tensor)
    return [path]


def _write_layer(
    group: h5py.Group, weights: list[tuple[str, Planned]], on_tensor: Callable[[Planned], None] | None
) -> None:
    group.attrs["weight_names"] = [name.encode("utf8") for name, _ in weights]
    for (name, t), value in prefetched(weights, lambda w: produced_value(w[1])):
        ds = group.create_dataset(name.encode("utf8"), value.shape, dtype=value.dtype.newbyteorder("<"))
        if value.shape:
            ds[:] = value
        else:
            ds[()] = value
        if on_tensor is not None:
            on_tensor(t)
