"""KerasHub's LoRA file (``Backbone.save_lora_weights``, ``*.lora.h5``): read and written with h5py alone.

Keras' ``H5IOStore`` lays it out as ``lora/vars/rank`` (an int64 scalar) and, per adapted layer,
``lora/<index>/vars/lora_kernel_a`` and ``lora_kernel_b`` (float32); ``<index>`` counts the backbone's layers that
hold weights (see :mod:`bridge.families.keras_hub.lora`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.core.errors import CheckpointNotFound, CorruptCheckpoint

if TYPE_CHECKING:
    import numpy as np

SUFFIX = ".lora.h5"
_HINT = "Write it again with backbone.save_lora_weights(PATH)"


def sniff_keras_hub_lora(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIX)


def read_keras_hub_lora(path: Path) -> tuple[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """``(rank, {layer index: (lora_kernel_a, lora_kernel_b)})``."""
    import h5py

    if not path.is_file():
        raise CheckpointNotFound("No KerasHub LoRA file", path=path, hint="Pass the .lora.h5 save_lora_weights wrote")
    try:
        with h5py.File(path, "r") as f:
            root = f.get("lora")
            if not isinstance(root, h5py.Group) or "vars/rank" not in root:
                raise CorruptCheckpoint("Not a KerasHub LoRA file", path=path, detail="no lora/vars/rank", hint=_HINT)
            rank = int(root["vars/rank"][()])
            layers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for name, group in root.items():
                if name == "vars":
                    continue
                try:
                    index = int(name)
                    a, b = group["vars/lora_kernel_a"][()], group["vars/lora_kernel_b"][()]
                except (ValueError, KeyError):
                    raise CorruptCheckpoint(
                        "Unreadable KerasHub LoRA layer", path=path, tensor=f"lora/{name}", hint=_HINT
                    ) from None
                if a.shape[-1] != rank or b.shape[0] != rank:
                    raise CorruptCheckpoint(
                        "LoRA factors disagree with the file's rank",
                        path=path,
                        tensor=f"lora/{name}",
                        detail=f"rank {rank}, lora_kernel_a {a.shape}, lora_kernel_b {b.shape}",
                        hint=_HINT,
                    )
                layers[index] = (a, b)
    except OSError as exc:
        raise CorruptCheckpoint("Unreadable KerasHub LoRA file", path=path, detail=str(exc), hint=_HINT) from None
    return rank, layers


def write_keras_hub_lora(path: Path, rank: int, layers: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the file ``load_lora_weights`` reads, atomically (a temporary sibling renamed into place)."""
    import h5py
    import numpy as np

    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("lora/vars/rank", data=np.int64(rank))
            for index, (a, b) in sorted(layers.items()):
                f.create_dataset(f"lora/{index}/vars/lora_kernel_a", data=a)
                f.create_dataset(f"lora/{index}/vars/lora_kernel_b", data=b)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
