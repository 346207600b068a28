"""bridge: TensorFlow/Keras <-> PyTorch checkpoints, read natively, matched, converted, verified."""

from __future__ import annotations

from typing import Any

from bridge.api import load
from bridge.check import check
from bridge.convert import convert
from bridge.errors import BridgeError
from bridge.model import Checkpoint, TensorRecord
from bridge.verify import verify


def find_unused(model: Any, batch: Any, loss_fn: Any = None, steps: int = 1) -> Any:
    """Which parameters/variables ``model`` never uses on ``batch``; see :func:`bridge.unused.find_unused`."""
    from bridge.unused import find_unused as _find_unused

    return _find_unused(model, batch, loss_fn, steps=steps)


__all__ = ["BridgeError", "Checkpoint", "TensorRecord", "check", "convert", "find_unused", "load", "verify"]
__version__ = "0.1.0"
