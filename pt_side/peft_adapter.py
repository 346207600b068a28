"""A PEFT adapter directory: ``adapter_config.json`` + ``adapter_model.safetensors``, read and written without
torch or peft (JSON and the safetensors numpy API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.core.atomic import atomic_directory
from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint
from bridge.core.jsonio import load_json

if TYPE_CHECKING:
    import numpy as np

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
_HINT = "Save the adapter again with PeftModel.save_pretrained(DIR)"


def sniff_peft_adapter(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


def read_peft_adapter(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(adapter_config.json, {tensor name: value})``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not sniff_peft_adapter(path):
        raise CheckpointNotFound(f"No PEFT adapter ({CONFIG})", path=path, hint=_HINT)
    config = load_json((path / CONFIG).read_bytes(), path=path / CONFIG, what="adapter config", hint=_HINT)
    if not isinstance(config, dict):
        raise CorruptCheckpoint("Unreadable adapter config", path=path / CONFIG, detail="not a JSON object", hint=_HINT)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointNotFound(
            f"No {WEIGHTS}", path=path, hint="Save with safe_serialization=True (PEFT's default), or " + _HINT
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CorruptCheckpoint("Unreadable adapter weights", path=weights, detail=str(exc), hint=_HINT) from None
    return config, tensors


def write_peft_adapter(
    out: Path, config: dict[str, Any], tensors: dict[str, np.ndarray], *, force: bool, inputs: tuple[Path, ...]
) -> list[Path]:
    """Write the directory ``PeftModel.from_pretrained`` loads, atomically."""
    from safetensors.numpy import save_file

    with atomic_directory(out, force=force, inputs=inputs) as tmp:
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
    return [out / CONFIG, out / WEIGHTS]
