"""``bridge.keras.UnusedVariables``, the public name of :mod:`bridge.unused.keras`'s ``model.fit`` callback.

Made on first access, as there: ``import bridge.keras`` imports no framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UnusedVariables"]  # noqa: F822 - made on first access by __getattr__


def __getattr__(name: str) -> Any:
    if name == "UnusedVariables":
        from bridge.unused import keras

        cls = keras.UnusedVariables
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 'bridge.keras' has no attribute {name!r}")
