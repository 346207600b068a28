"""bridge: TensorFlow/Keras <-> PyTorch checkpoints, read natively, matched, converted, verified."""

from __future__ import annotations

from bridge.api import load
from bridge.errors import BridgeError
from bridge.model import Checkpoint, TensorRecord

__all__ = ["BridgeError", "Checkpoint", "TensorRecord", "load"]
__version__ = "0.1.0"
