"""Reader of KerasHub preset directories (``save_to_preset``), with h5py and JSON only.

A preset is a directory: ``config.json`` (the backbone's Keras config, ``registered_name``
``keras_hub>...Backbone``), ``model.weights.h5`` (or ``model.weights.json`` + ``model_*.weights.h5`` shards),
``metadata.json`` (versions, parameter count), and for a task ``task.json`` + ``task.weights.h5`` (the head's
layers only: KerasHub saves the backbone apart), ``preprocessor.json``, ``tokenizer.json`` and ``assets/``
(tokenizer vocabularies).  Backbone tensors keep their Keras 3 path (``layers/transformer_encoder_1/...``);
the task's are prefixed ``task/``, so one checkpoint holds both without a clash.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge.core.errors import CheckpointNotFound
from bridge.core.keras_hub_preset import PRESET_CONFIG, TASK_PREFIX, preset_facts, sniff_keras_hub_preset
from bridge.core.model import Checkpoint, TensorRecord
from tf_side.keras3_weights import read_keras3_weights

__all__ = ["read_keras_hub_preset", "sniff_keras_hub_preset"]

_WEIGHTS = ("model.weights.h5", "model.weights.json")
_TASK_WEIGHTS = "task.weights.h5"


def read_keras_hub_preset(path: Path) -> Checkpoint:
    """The backbone's weights (and a task's head, prefixed ``task/``), read as Keras 3 weights files."""
    facts = preset_facts(path)
    weights = next((path / name for name in _WEIGHTS if (path / name).is_file()), None)
    if weights is None:
        raise CheckpointNotFound(
            "Preset weights not found",
            path=path,
            detail=f"neither {' nor '.join(_WEIGHTS)} in the preset directory",
            hint="A preset saved by save_to_preset holds model.weights.h5 beside config.json",
        )
    parts = [read_keras3_weights(weights)]
    try:
        if (path / _TASK_WEIGHTS).is_file():
            parts.append(read_keras3_weights(path / _TASK_WEIGHTS))
        records: list[TensorRecord] = list(parts[0].values())
        if len(parts) > 1:
            records += [replace(r, name=TASK_PREFIX + r.name) for r in parts[1].values()]
        files = [str(path / PRESET_CONFIG), *(f for part in parts for f in part.files)]
        object_names = dict(parts[0].metadata.get("object_names", {}))
        if len(parts) > 1:
            object_names.update({TASK_PREFIX + k: v for k, v in parts[1].metadata.get("object_names", {}).items()})
        facts["object_names"] = object_names

        def close_all() -> None:
            for part in parts:
                part.close()

        return Checkpoint(
            records,
            format="keras-hub-preset",
            path=str(path),
            files=files,
            framework="keras",
            metadata=facts,
            closer=close_all,
        )
    except BaseException:
        for part in parts:
            part.close()
        raise
