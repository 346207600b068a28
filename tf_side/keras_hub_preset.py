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
from typing import Any

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint, TensorRecord
from tf_side.keras3_weights import read_keras3_weights

__all__ = ["PRESET_CONFIG", "TASK_PREFIX", "preset_facts", "read_keras_hub_preset", "sniff_keras_hub_preset"]

PRESET_CONFIG = "config.json"
TASK_PREFIX = "task/"
_WEIGHTS = ("model.weights.h5", "model.weights.json")
_TASK_WEIGHTS = "task.weights.h5"
_MAX_JSON = 64 << 20  # a preset's JSON files are a few KiB (a tokenizer.json a few MiB)
_REGISTERED_PREFIX = "keras_hub>"


def _json(path: Path, what: str) -> dict[str, Any]:
    """A preset JSON file, its size checked before reading; damage is bad input (exit 2)."""
    hint = "Re-save the preset with save_to_preset, or download it again"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointNotFound(f"Unreadable {what}", path=path, detail=str(exc), hint=hint) from None
    if size > _MAX_JSON:
        raise CorruptCheckpoint(f"Unreadable {what}", path=path, detail=f"{size} bytes, past {_MAX_JSON >> 20} MiB", hint=hint)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CorruptCheckpoint(f"Unreadable {what}", path=path, detail=str(exc), hint=hint) from None
    value = load_json(text, path=path, what=what, hint=hint)
    if not isinstance(value, dict):
        raise CorruptCheckpoint(f"Unreadable {what}", path=path, detail="not a JSON object", hint=hint)
    return value


def _registered(path: Path) -> str | None:
    """The ``registered_name`` of a small JSON config, or None (no exception: this is a sniff)."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_JSON:
            return None
        head = path.read_bytes()
        if b'"keras_hub>' not in head:
            return None
        value = load_json(head, path=path, what="config", hint="")
    except (OSError, ValueError):
        return None
    name = value.get("registered_name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


def sniff_keras_hub_preset(path: Path) -> bool:
    """A directory whose ``config.json`` names a ``keras_hub>...Backbone``."""
    if not path.is_dir():
        return False
    name = _registered(path / PRESET_CONFIG)
    return name is not None and name.startswith(_REGISTERED_PREFIX) and name.endswith("Backbone")


def _class_name(config: dict[str, Any]) -> str:
    name = config.get("registered_name") or config.get("class_name") or ""
    return str(name).removeprefix(_REGISTERED_PREFIX)


def _dtype_policy(config: dict[str, Any]) -> str | None:
    dtype = config.get("config", {}).get("dtype") if isinstance(config.get("config"), dict) else None
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, dict):
        name = dtype.get("config", {}).get("name") if isinstance(dtype.get("config"), dict) else None
        return name if isinstance(name, str) else None
    return None


def preset_facts(path: Path) -> dict[str, Any]:
    """What a preset's JSON files say: backbone and task classes, configs, dtype policy, tokenizer assets."""
    config = _json(path / PRESET_CONFIG, "preset config.json")
    facts: dict[str, Any] = {
        "layout": "keras-hub-preset",
        "backbone_class": _class_name(config),
        "backbone_config": config.get("config") if isinstance(config.get("config"), dict) else {},
    }
    policy = _dtype_policy(config)
    if policy is not None:
        facts["dtype_policy"] = policy
    if (path / "task.json").is_file():
        task = _json(path / "task.json", "preset task.json")
        facts["task_class"] = _class_name(task)
        facts["task_config"] = task.get("config") if isinstance(task.get("config"), dict) else {}
    if (path / "metadata.json").is_file():
        meta = _json(path / "metadata.json", "preset metadata.json")
        for key in ("parameter_count", "keras_version", "keras_hub_version"):
            if isinstance(meta.get(key), (int, str)):
                facts[key] = meta[key]
    if (path / "tokenizer.json").is_file():
        facts["tokenizer_class"] = _class_name(_json(path / "tokenizer.json", "preset tokenizer.json"))
    assets = sorted(p.relative_to(path).as_posix() for p in (path / "assets").rglob("*") if p.is_file())
    if assets:
        facts["tokenizer_assets"] = ", ".join(assets)
    return facts


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
