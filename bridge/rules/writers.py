"""The TF-side writers packs name in their :class:`~bridge.core.packs.Output`: each imports its adapter only when
called, so a pack (and ``check``) loads no writer, and mypy checks each against the writer it calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def write_tf1_checkpoint(
    path: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    on_tensor: Callable[[Any], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """A TF1 checkpoint (``.index`` + ``.data-*``): :func:`tf_side.bundle.write.write_tf1_checkpoint`."""
    from tf_side.bundle.write import write_tf1_checkpoint as write

    return write(path, tensors, metadata=metadata, on_tensor=on_tensor, max_shard_size=max_shard_size)


def write_keras2_h5(
    path: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    on_tensor: Callable[[Any], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """A Keras 2 weights file (transformers' ``tf_model.h5``): :func:`tf_side.keras2_h5_writer.write_keras2_h5`."""
    from tf_side.keras2_h5_writer import write_keras2_h5 as write

    return write(path, tensors, metadata=metadata, on_tensor=on_tensor, max_shard_size=max_shard_size)


def write_keras3_weights(
    path: Path, tensors: Sequence[Any], *, metadata: Mapping[str, Any], on_tensor: Callable[[Any], None] | None = None
) -> list[Path]:
    """A Keras 3 ``.weights.h5`` (one file, never sharded):
    :func:`tf_side.keras3_weights_writer.write_keras3_weights`."""
    from tf_side.keras3_weights_writer import write_keras3_weights as write

    return write(path, tensors, metadata=metadata, on_tensor=on_tensor)


def write_keras_hub_preset(
    path: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any],
    on_tensor: Callable[[Any], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """A KerasHub preset directory (``model.weights.h5`` is ``path``, or ``model.weights.json`` + shards above the
    shard size; task weights and JSON files beside it):
    :func:`tf_side.keras_hub_preset_writer.write_keras_hub_preset`."""
    from tf_side.keras_hub_preset_writer import write_keras_hub_preset as write

    return write(path, tensors, metadata=metadata, on_tensor=on_tensor, max_shard_size=max_shard_size)
