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


def checkpoint_vs_model(model: Any, checkpoint: Any, *, batch: Any = None) -> Any:
    """What ``model`` would not restore from ``checkpoint``; see :func:`bridge.unused.checkpoint_vs_model`."""
    from bridge.unused import checkpoint_vs_model as _checkpoint_vs_model

    return _checkpoint_vs_model(model, checkpoint, batch=batch)


def find_unused_in_graph(path: Any, losses: Any) -> Any:
    """Trainable variables of a TF1 ``.meta`` graph no gradient of ``losses`` reaches; see
    :func:`bridge.unused.find_unused_in_graph`."""
    from bridge.unused import find_unused_in_graph as _find_unused_in_graph

    return _find_unused_in_graph(path, losses)


__all__ = [
    "BridgeError", "Checkpoint", "TensorRecord", "check", "checkpoint_vs_model", "convert", "find_unused",
    "find_unused_in_graph", "load", "verify",
]  # fmt: skip
__version__ = "0.1.0"
