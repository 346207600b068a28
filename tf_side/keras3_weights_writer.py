"""Write a Keras 3 ``.weights.h5`` natively with h5py, in the layout Keras' ``H5IOStore`` writes.

Every saved object has a group named by its attribute path (``layers/dense``,
``layers/lstm/cell``) holding a ``vars`` group whose ``name`` attribute is the object's
name and whose datasets ``0, 1, ...`` are its variables in order; objects without
variables still have their empty ``vars`` group, and the model's own is ``/vars``
(Keras 3.15; ``model.load_weights`` looks each group up by path).  bfloat16 is stored as Keras stores it: a 2-byte
HDF5 opaque type (numpy ``|V2``) with the attribute ``dtype = "bfloat16"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py

from bridge.core import dtypes
from bridge.core.errors import UnsupportedFeature
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
            if dtypes.itemsize(t.dtype) is None:
                raise UnsupportedFeature(
                    f"Writing {t.dtype} to a Keras weights file", tensor=t.name, hint="Convert with --dtype float32"
                )
            value = produced_value(t)
            group, _, index = t.name.rpartition("/")
            if t.dtype == "bfloat16":  # as Keras' H5IOStore: a 2-byte opaque type, the dtype in an attribute
                f.require_group(group).create_dataset(index, data=value.view("V2")).attrs["dtype"] = "bfloat16"
            else:
                f.require_group(group).create_dataset(index, data=value)
            if on_tensor is not None:
                on_tensor(t)
    return [path]
