"""bridge: TensorFlow/Keras <-> PyTorch checkpoints, read natively, matched, converted, verified."""

from __future__ import annotations

from bridge.api import load
from bridge.check import check
from bridge.convert import convert
from bridge.errors import BridgeError
from bridge.model import Checkpoint, TensorRecord
from bridge.verify import verify

__all__ = ["BridgeError", "Checkpoint", "TensorRecord", "check", "convert", "load", "verify"]
__version__ = "0.1.0"
