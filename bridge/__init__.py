"""bridge: TensorFlow/Keras <-> PyTorch checkpoints, read natively, matched, converted, verified.

The public API is loaded on first use (module ``__getattr__``), so importing a core module or an adapter
(``import tf_side.bundle``) loads no front module, and ``import bridge`` loads almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.api import load
    from bridge.commands.check import check
    from bridge.commands.convert import convert
    from bridge.commands.verify import verify
    from bridge.core.errors import BridgeError
    from bridge.core.model import Checkpoint, TensorRecord
    from bridge.unused import checkpoint_vs_model, find_unused, find_unused_in_graph, watch

# public name -> the module that defines it
_API = {
    "BridgeError": "bridge.core.errors",
    "Checkpoint": "bridge.core.model",
    "TensorRecord": "bridge.core.model",
    "load": "bridge.api",
    "check": "bridge.commands.check",
    "convert": "bridge.commands.convert",
    "verify": "bridge.commands.verify",
    "find_unused": "bridge.unused",
    "checkpoint_vs_model": "bridge.unused",
    "find_unused_in_graph": "bridge.unused",
    "watch": "bridge.unused",
}

__all__ = [
    "BridgeError",
    "Checkpoint",
    "TensorRecord",
    "check",
    "checkpoint_vs_model",
    "convert",
    "find_unused",
    "find_unused_in_graph",
    "load",
    "verify",
    "watch",
]
__version__ = "0.1.0"


# submodules reached as attributes without an import (``bridge.keras.UnusedVariables``)
_SUBMODULES = ("keras",)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_SUBMODULES))
