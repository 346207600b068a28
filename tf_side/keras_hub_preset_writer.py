"""Write a KerasHub preset directory as ``save_to_preset`` does, with h5py and JSON only.

``model.weights.h5`` holds the backbone's variables, ``task.weights.h5`` the task's own (the tensors named
``task/...``, as :mod:`tf_side.keras_hub_preset` reads them), both in the Keras 3 layout
(:mod:`tf_side.keras3_weights_writer`); ``config.json``, ``task.json`` and ``tokenizer.json`` come from the pack
(``metadata["preset_files"]``), ``metadata.json`` is completed with what the tensors give (the parameter count)
and the date, and the tokenizer's vocabulary files go to ``assets/tokenizer/``.

A backbone larger than the shard size (KerasHub's ``save_to_preset`` default: 10 GiB) is written as KerasHub writes
it then: ``model.weights.json`` and ``model_00000.weights.h5``, ... (:func:`tf_side.keras3_weights_writer.
write_keras3_shards`), no ``model.weights.h5``.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.keras_hub_preset import TASK_PREFIX
from bridge.core.outputs import OutTensor
from tf_side.keras3_weights_writer import write_keras3_shards, write_keras3_weights

__all__ = ["write_keras_hub_preset"]

_TASK_WEIGHTS = "task.weights.h5"
_SHARD_INDEX = "model.weights.json"
# save_to_preset's max_shard_size=10 (GB as Keras counts them: 1024**3 bytes)
KERAS_HUB_SHARD_SIZE = 10 * 1024**3


def _json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=4))
    return path


def _with_policy(config: dict[str, Any], dtype: str) -> dict[str, Any]:
    """A serialized config whose dtype policies (its own and its backbone's) name ``dtype``."""
    out = copy.deepcopy(config)
    for inner in (out.get("config", {}), out.get("config", {}).get("backbone", {}).get("config", {})):
        policy = inner.get("dtype") if isinstance(inner, dict) else None
        if isinstance(policy, dict):
            policy["config"]["name"] = dtype
    return out


def _optimizer_state(optimizer: Mapping[str, Any] | None, names: dict[str, str]) -> list[OutTensor]:
    """The compiled optimizer's iteration and learning rate, which a task saved by KerasHub carries (its loader
    warns of a task file without them)."""
    if not optimizer:
        return []
    names["optimizer/vars"] = str(optimizer["name"])
    iteration = np.array(0, dtype=np.int32)
    rate = np.array(optimizer["learning_rate"], dtype=np.float32)
    return [
        OutTensor("optimizer/vars/0", (), "int32", lambda: iteration),
        OutTensor("optimizer/vars/1", (), "float32", lambda: rate),
    ]


class _Renamed:
    """A planned tensor under another name (a task variable without its ``task/`` prefix)."""

    def __init__(self, tensor: Any, name: str) -> None:
        self._tensor, self.name = tensor, name
        self.shape, self.dtype = tensor.shape, tensor.dtype

    def produce(self) -> Any:
        return self._tensor.produce()


def write_keras_hub_preset(
    path: Path,
    tensors: Sequence[Any],
    *,
    metadata: Mapping[str, Any],
    on_tensor: Callable[[Any], None] | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """Write the preset whose backbone weights file is ``path`` (``model.weights.h5``) and its siblings.

    Args:
        path: the backbone's ``model.weights.h5`` in the preset directory.
        tensors: the planned tensors, Keras variable paths; ``task/...`` ones go to ``task.weights.h5``.
        metadata: ``{"preset_files": {file name: JSON value, "assets": {asset name: source file or
            {"text": ...}}}}`` from the pack.
        on_tensor: called after each tensor (progress).
        max_shard_size: bytes; a backbone larger than this (default KerasHub's 10 GiB) is written sharded.
    """
    files: dict[str, Any] = dict(metadata["preset_files"])
    folder = path.parent
    backbone = [t for t in tensors if not t.name.startswith(TASK_PREFIX)]
    task = [_Renamed(t, t.name.removeprefix(TASK_PREFIX)) for t in tensors if t.name.startswith(TASK_PREFIX)]
    config = files["config.json"]
    floating = [t.dtype for t in tensors if dtypes.is_floating(t.dtype)]
    dtype = floating[0] if floating else "float32"
    names = {"vars": config["config"]["name"]}
    written = [_json(folder / "config.json", _with_policy(config, dtype))]
    limit = max_shard_size or KERAS_HUB_SHARD_SIZE
    if sum(math.prod(t.shape) * (dtypes.itemsize(t.dtype) or 0) for t in backbone) > limit:
        written += write_keras3_shards(
            folder / _SHARD_INDEX, backbone, metadata={"object_names": names}, max_shard_size=limit, on_tensor=on_tensor
        )
    else:
        written += write_keras3_weights(path, backbone, metadata={"object_names": names}, on_tensor=on_tensor)
    if "task.json" in files:
        task_json = _with_policy(files["task.json"], dtype)
        written.append(_json(folder / "task.json", task_json))
        if task:
            names = {"vars": task_json["config"]["name"]}
            state = _optimizer_state(files.get("task_optimizer"), names)
            hook = (lambda t: None if t in state else on_tensor(t)) if on_tensor is not None else None
            written += write_keras3_weights(
                folder / _TASK_WEIGHTS, [*task, *state], metadata={"object_names": names}, on_tensor=hook
            )
    meta = dict(files["metadata.json"])
    meta["parameter_count"] = sum(math.prod(t.shape) for t in backbone)
    meta["date_saved"] = datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")
    ordered = {k: meta[k] for k in ("keras_version", "keras_hub_version", "parameter_count", "date_saved", "tasks")}
    written.append(_json(folder / "metadata.json", ordered))
    if isinstance(files.get("assets"), dict) and "tokenizer.json" in files:
        assets = folder / "assets" / "tokenizer"
        assets.mkdir(parents=True)
        for name, source in files["assets"].items():
            if isinstance(source, dict):  # text the pack extracted (a tokenizer.json's vocabulary and merges)
                (assets / name).write_text(source["text"], encoding="utf-8")
                written.append(assets / name)
            else:
                written.append(Path(shutil.copyfile(source, assets / name)))
        written.append(_json(folder / "tokenizer.json", files["tokenizer.json"]))
    return written
