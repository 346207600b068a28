"""What a KerasHub preset directory's JSON files say (``save_to_preset``): JSON only, sizes checked first.

Shared by the preset reader (:mod:`tf_side.keras_hub_preset`) and the pack that maps presets to transformers, which
reads the same facts for the config it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.jsonio import load_json

__all__ = ["PRESET_CONFIG", "TASK_PREFIX", "preset_facts", "sniff_keras_hub_preset"]

PRESET_CONFIG = "config.json"
TASK_PREFIX = "task/"
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
        raise CorruptCheckpoint(
            f"Unreadable {what}", path=path, detail=f"{size} bytes, past {_MAX_JSON >> 20} MiB", hint=hint
        )
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
