"""Import strings: how a registry names code without importing it.

``"tf_side.bundle:read_checkpoint"`` names a function that is imported only when it is used, so a table of formats
or of the framework sides of ``unused`` costs nothing until a path or a model asks for it.  (A pack's writer and
forward check are typed callables instead: :class:`bridge.core.packs.TensorWriter`, ``ForwardCheck``.)
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(spec: str) -> Any:
    """The object an import string ``"module:attribute"`` names, imported now."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)
