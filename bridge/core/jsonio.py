"""JSON from files a checkpoint brings along, parsed with a bound on nesting.

Every JSON reader (a safetensors header, ``config.json``, a shard ``index.json``, a ``.keras`` archive's
``config.json``) goes through :func:`load_json`: a hostile file of ``[[[[...`` would otherwise end in a
``RecursionError`` in the parser or in whatever walks the result.  Real files nest a dozen levels at most (a Keras
functional config); the bound leaves room for models nested in models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from os import PathLike
from typing import Any

from bridge.core.errors import BridgeError, CorruptCheckpoint

__all__ = ["MAX_JSON_DEPTH", "json_depth", "load_json"]

MAX_JSON_DEPTH = 100


def json_depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return deepest


def load_json(
    data: str | bytes,
    *,
    path: str | PathLike[str],
    what: str,
    hint: str,
    error: type[BridgeError] = CorruptCheckpoint,
    max_depth: int = MAX_JSON_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse ``data`` (the text of ``what`` in ``path``), or raise ``error`` saying what is wrong with it.

    Invalid UTF-8, invalid JSON, a ``ValueError`` from ``object_pairs_hook`` and nesting deeper than ``max_depth``
    all become ``error``; nothing else escapes.
    """
    try:
        value = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        value, detail = None, f"lists or objects nest deeper than the parser allows (limit {max_depth})"
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"Unreadable {what}", path=path, detail=f"not valid JSON ({exc})", hint=hint) from None
    else:
        depth = json_depth(value)
        if depth <= max_depth:
            return value
        detail = f"lists or objects nest {depth} levels deep (limit {max_depth})"
    raise error(f"Unreadable {what}", path=path, detail=detail, hint=hint)
