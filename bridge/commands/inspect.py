"""``bridge inspect``: what a checkpoint holds, grouped by scope.

Computing (:func:`inspect_checkpoint`) is separate from rendering
(:meth:`InspectReport.to_json`, and :func:`bridge.report.render_inspect` for people): one result, two views.
Only metadata is read, except counters (scalars) and, with ``stats=True``,
every value (which also verifies every checksum).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import CheckpointNotFound, UsageError
from bridge.core.model import KIND_MEANINGS, KINDS, Checkpoint, TensorKind, TensorRecord
from bridge.core.pad_rows import PadRow, pad_rows
from bridge.core.scopes import ROOT_SCOPE, fold, scope_of
from bridge.rules import packs

# Training state that is neither a weight nor an optimizer slot nor a step counter: listed apart, by kind.
BOOKKEEPING_KINDS: tuple[TensorKind, ...] = ("metric", "rng")


@dataclass(frozen=True)
class ScopeRow:
    scope: str
    tensors: int
    params: int
    nbytes: int
    dtypes: dict[str, int]


@dataclass
class InspectReport:
    """What ``inspect`` found: every record (or those the filter keeps), folded into scopes with optimizer slots
    apart, the counters (``global_step``), metric accumulators and seed-generator state, and with ``stats``
    every value's min/max/mean/std and NaN/Inf counts.
    Always ``ok``: reading a damaged file raises instead; a :class:`~bridge.core.reports.Report`."""

    checkpoint: Checkpoint
    records: list[TensorRecord]
    scopes: list[ScopeRow]
    slots: list[ScopeRow]
    counters: dict[str, Any]
    # metric accumulators and seed-generator state, by kind: readable name -> value (a scalar's) or None
    bookkeeping: dict[TensorKind, dict[str, Any]] = field(default_factory=dict)
    # readable names of the model tensors in the "(root)" scope row: named without any scope
    root_names: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    pad_rows: list[PadRow] | None = None  # with stats: the padding row of a word-embedding table a pack declares

    ok = True
    exit_code = 0

    def totals(self) -> dict[TensorKind, dict[str, int]]:
        out: dict[TensorKind, dict[str, int]] = {}
        for kind in KINDS:
            recs = [r for r in self.records if r.kind == kind]
            out[kind] = {
                "tensors": len(recs),
                "params": sum(r.numel for r in recs),
                "bytes": sum(r.nbytes for r in recs),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        ckpt = self.checkpoint
        tensors = []
        for r in self.records:
            item = r.to_json()
            if r.name in self.stats:
                item["stats"] = self.stats[r.name]
            tensors.append(item)
        return {
            "format": ckpt.format,
            "framework": ckpt.framework,
            "path": ckpt.path,
            "files": ckpt.files,
            "metadata": ckpt.metadata,
            "summary": self.totals(),
            "counters": self.counters,
            "bookkeeping": self.bookkeeping,
            "kinds": {kind: KIND_MEANINGS[kind] for kind, t in self.totals().items() if t["tensors"]},
            "tied": [list(group) for group in ckpt.tied],
            "warnings": ckpt.warnings,
            "tensors": tensors,
            **({"pad_rows": [row.to_json() for row in self.pad_rows]} if self.pad_rows is not None else {}),
        }


def inspect_checkpoint(
    ckpt: Checkpoint,
    *,
    pattern: str | None = None,
    depth: int = 3,
    stats: bool = False,
    progress: Callable[[Iterable[TensorRecord]], Iterable[TensorRecord]] | None = None,
) -> InspectReport:
    """Summarise ``ckpt``.

    Args:
        ckpt: an opened checkpoint.
        pattern: a regular expression; only names (or readable paths) it finds are kept.
        depth: how many scope components a row of the scope table keeps.
        stats: read every kept value and compute min/max/mean/std and NaN/Inf counts.
        progress: wraps the iteration over values when ``stats`` is set (a progress bar).

    Returns:
        An :class:`InspectReport`.
    """
    records = list(ckpt.values())
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise UsageError("Invalid --filter pattern", detail=str(e), hint=f"Received: {pattern!r}") from e
        records = [r for r in records if rx.search(r.name) or (r.path and rx.search(r.path))]
    model = [r for r in records if r.kind == "model"]

    def scope(r: TensorRecord) -> str:
        # TF2 object-graph keys (optimizer/_trainable_variables/3/.ATTRIBUTES/...) say little; their paths do.
        return scope_of(r.path or r.name, depth)

    scopes = _rows(fold(scope(r) for r in model), model, scope)
    slot_records = [r for r in records if r.kind == "optimizer"]
    slots = _rows(
        {name: [name] for name in dict.fromkeys(_slot_label(r) for r in slot_records)},
        slot_records,
        _slot_label,
    )
    counters = {r.name: _scalar(r, ckpt) for r in records if r.kind == "counter"}
    bookkeeping = {
        kind: {r.path or r.name: _scalar(r, ckpt) for r in records if r.kind == kind}
        for kind in BOOKKEEPING_KINDS
        if any(r.kind == kind for r in records)
    }
    root_names = [r.path or r.name for r in model if scope(r) == ROOT_SCOPE]
    report = InspectReport(ckpt, records, scopes, slots, counters, bookkeeping, root_names)
    if stats:
        iterable: Iterable[TensorRecord] = progress(records) if progress else records
        for r in iterable:
            report.stats[r.name] = tensor_stats(r)
        report.pad_rows = pad_rows(ckpt, packs(), {r.name for r in records})
    return report


def _slot_label(r: TensorRecord) -> str:
    return r.slot_name or "(other optimizer state)"


def _rows(
    groups: dict[str, list[str]], records: list[TensorRecord], key: Callable[[TensorRecord], str]
) -> list[ScopeRow]:
    by_key: dict[str, list[TensorRecord]] = {}
    for r in records:
        by_key.setdefault(key(r), []).append(r)
    rows = []
    for label, members in groups.items():
        recs = [r for m in dict.fromkeys(members) for r in by_key.get(m, [])]
        rows.append(
            ScopeRow(
                scope=label,
                tensors=len(recs),
                params=sum(r.numel for r in recs),
                nbytes=sum(r.nbytes for r in recs),
                dtypes=dict(Counter(r.dtype for r in recs)),
            )
        )
    return rows


def _scalar(r: TensorRecord, ckpt: Checkpoint) -> Any:
    if r.numel != 1 or r.dtype == dtypes.STRING:
        return None
    try:
        value = r.numpy().reshape(()).item()
    except CheckpointNotFound:
        if ckpt.warnings:  # its file is missing, and the report's warning says so
            return None
        raise
    return value if isinstance(value, (int, float, bool)) else str(value)


_CHUNK = 1 << 22  # elements per chunk: bounds the float64 temporaries on big tensors


def tensor_stats(r: TensorRecord) -> dict[str, float | int | None]:
    """min/max/mean/std over finite values and NaN/Inf counts; reading checks the checksum."""
    value = r.numpy()
    if r.dtype == dtypes.STRING or r.dtype == "bool" or r.numel == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nan": 0, "inf": 0}
    flat = value.reshape(-1)
    lo, hi, total, total_sq, count, nan, inf = np.inf, -np.inf, 0.0, 0.0, 0, 0, 0
    for start in range(0, flat.size, _CHUNK):
        chunk = np.asarray(flat[start : start + _CHUNK])
        if np.iscomplexobj(chunk):
            chunk = np.abs(chunk)
        chunk = chunk.astype(np.float64)
        finite = np.isfinite(chunk)
        nan += int(np.isnan(chunk).sum())
        inf += int(np.isinf(chunk).sum())
        good = chunk[finite]
        if good.size:
            lo, hi = min(lo, float(good.min())), max(hi, float(good.max()))
            total += float(good.sum())
            total_sq += float(np.square(good).sum())
            count += good.size
    if count == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nan": nan, "inf": inf}
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return {"min": lo, "max": hi, "mean": mean, "std": var**0.5, "nan": nan, "inf": inf}
