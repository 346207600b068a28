"""What ``convert`` writes, whatever the format: the planned tensors and the config file beside the weights.

Writers on either side take :class:`OutTensor` values (:class:`~bridge.core.stream.Planned`), so the TF
writers need nothing from the PyTorch side's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core import dtypes


@dataclass(frozen=True)
class OutTensor:
    """A tensor to write: metadata now, value produced (read + transformed) on demand."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        size = dtypes.itemsize(self.dtype)
        if size is None:
            raise ValueError(f"{self.name}: strings cannot be written to safetensors")
        return size * int(np.prod(self.shape, dtype=np.int64))


def write_config(folder: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    """The config file (sorted keys, so the same plan writes the same bytes)."""
    path = folder / name
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path
