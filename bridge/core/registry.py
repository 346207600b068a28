"""Import strings: how a registry names code without importing it.

``"tf_side.bundle:read_checkpoint"`` names a function that is imported only when it is used, so a table of formats,
a pack's writer or forward check, or a framework side of ``unused`` costs nothing until a path or a model asks for
it (and the floor that holds the table names no module above it).
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(spec: str) -> Any:
    """The object an import string ``"module:attribute"`` names, imported now."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)
