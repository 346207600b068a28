"""Group tensor names by scope, folding numbered siblings (``layer_{0..11}``).

Shared by ``inspect`` and, later, the match report: one folding rule everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.core.naming import separator

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
# The scope of a name without any scope component (a top-level variable: ``w``, ``global_step``).
ROOT_SCOPE = "(root)"


def scope_of(name: str, depth: int) -> str:
    """The first ``depth`` scope components of ``name`` (the leaf is never a scope)."""
    sep = separator(name)
    parts = name.split(sep)
    scope = parts[:-1][:depth]
    return sep.join(scope) if scope else ROOT_SCOPE


def fold(names: Iterable[str]) -> dict[str, list[str]]:
    """Fold names that differ only in trailing numbers of components.

    ``bert/encoder/layer_0`` ... ``layer_11`` -> ``bert/encoder/layer_{0..11}``.
    Returns folded label -> member names, in first-seen order.
    """
    numbers: dict[_Key, list[tuple[int, ...]]] = {}
    members: dict[_Key, list[str]] = {}
    for name in names:
        key, found = _split(name)
        numbers.setdefault(key, []).append(found)
        members.setdefault(key, []).append(name)
    out: dict[str, list[str]] = {}
    for group_key, rows in numbers.items():
        sep, parts = group_key
        columns = list(zip(*rows, strict=True)) if rows and rows[0] else []
        labels = iter(_render_numbers(sorted(set(col))) for col in columns)
        label = sep.join(prefix + next(labels) if numbered else prefix for prefix, numbered in parts)
        out[label] = members[group_key]
    return out


def numbers_of(name: str) -> tuple[int, ...]:
    """The trailing numbers of ``name``'s components, the ones :func:`fold` folds (``layer_3`` -> 3)."""
    return _split(name)[1]


# (separator, then each component as (text before its trailing number, whether it had one)): a flag, not a
# sentinel character, since a damaged file's names may hold any character.
_Key = tuple[str, tuple[tuple[str, bool], ...]]


def _split(name: str) -> tuple[_Key, tuple[int, ...]]:
    """(separator + components with trailing numbers blanked, those numbers)."""
    sep = separator(name)
    parts: list[tuple[str, bool]] = []
    found: list[int] = []
    for part in name.split(sep):
        m = _NUMBERED.match(part)
        if m and not (m.group(1) and m.group(1)[-1].isdigit()):
            parts.append((m.group(1), True))
            found.append(int(m.group(2)))
        else:
            parts.append((part, False))
    return (sep, tuple(parts)), tuple(found)


def _render_numbers(values: list[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{{{values[0]}..{values[-1]}}}"
    return "{" + ",".join(map(str, values)) + "}"
