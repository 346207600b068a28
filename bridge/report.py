"""Rendering a :class:`~bridge.core.plan.Plan` for people: summary by folded scope, or every row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from bridge.core.plan import Leftover, Plan
from bridge.core.scopes import fold, numbers_of


def render_plan(plan: Plan, *, verbose: bool = False) -> str:
    cov = plan.coverage()
    t = plan.target
    lines = [
        f"source: {plan.source_path} ({plan.source_format}, rules: {plan.pack})",
        f"target: {t.description}" + (f" [{t.framework}]" if t.framework else ""),
        f"coverage: source model tensors consumed {cov['source_consumed']:.0%}, "
        f"target tensors filled {cov['target_filled']:.0%} "
        f"({len(plan.matched)} matched, {len(plan.tied)} tied, {len(plan.missing)} missing, "
        f"{len(plan.mismatched)} mismatched)",
    ]
    for note in plan.notes:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append("matched (source -> target, transform):")
    if verbose:
        for m in plan.matched:
            shapes = f"{list(m.source_shape)} -> {list(m.target_shape)}"
            lines.append(f"  {m.source} -> {m.target}  [{m.transform}] {shapes}")
    else:
        groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for m in plan.matched:
            groups[m.transform].append((m.source, m.target))
        for transform, pairs in groups.items():
            for source, target, count in fold_pairs(pairs):
                lines.append(f"  {source} -> {target}  [{transform}]" + (f"  ×{count}" if count > 1 else ""))
    if plan.mismatched:
        lines.append("")
        lines.append("MISMATCHED shapes:")
        for x in plan.mismatched:
            lines.append(f"  {x.source} {list(x.source_shape)} -> {x.target} {list(x.target_shape)}: {x.detail}")
    lines.extend(_leftovers("unused source tensors", plan.unused, verbose))
    lines.extend(_leftovers("target tensors without a source", plan.missing, verbose))
    if plan.tied:
        lines.append("")
        lines.append("tied (need no source: filled from the tensor on the right):")
        for tie in plan.tied:
            lines.append(f"  {tie.name} = {tie.tied_to}")
    lines.append("")
    if plan.ok:
        lines.append("verdict: OK: every target tensor has its source; leftovers are expected")
    else:
        gaps = len(plan.gaps) + len(plan.mismatched)
        lines.append(f"verdict: GAPS: {gaps} problem(s) above would make the converted model differ (exit 1)")
    return "\n".join(lines)


def fold_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """Fold (source, target) rows whose sources fold together, whose targets fold to one label, and whose
    varying numbers correspond (``layer_3`` -> ``layer.3``); other rows stay as they are, never paired by position."""
    label_of = {name: label for label, names in fold(s for s, _ in pairs).items() for name in names}
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, target in pairs:
        by_label[label_of[source]].append((source, target))
    out: list[tuple[str, str, int]] = []
    for label, rows in by_label.items():
        targets = fold(t for _, t in rows)
        if len(rows) > 1 and len(targets) == 1 and _varying(s for s, _ in rows) == _varying(t for _, t in rows):
            out.append((label, next(iter(targets)), len(rows)))
        else:
            out.extend((s, t, 1) for s, t in rows)
    return out


def _varying(names: Iterable[str]) -> list[tuple[int, ...]]:
    """Per name, its numbers in the positions where they differ between the names (``layer_{0..11}``'s)."""
    numbers = [numbers_of(n) for n in names]
    columns = [i for i, col in enumerate(zip(*numbers, strict=True)) if len(set(col)) > 1]
    return [tuple(row[i] for i in columns) for row in numbers]


def _leftovers(title: str, rows: list[Leftover], verbose: bool) -> list[str]:
    if not rows:
        return []
    out = ["", f"{title}:"]
    by_reason: dict[tuple[bool, str], list[Leftover]] = defaultdict(list)
    for row in rows:
        by_reason[(row.expected, row.reason)].append(row)
    for (expected, _), group in sorted(by_reason.items(), key=lambda kv: kv[0][0]):
        mark = "  " if expected else "! "
        if verbose or not expected or len(group) == 1:
            for row in group:
                extra = f"  ({row.suggestion})" if row.suggestion else ""
                out.append(f"{mark}{row.name} {list(row.shape)}: {row.reason}{extra}")
        else:
            label = ", ".join(fold(r.name for r in group))
            if len(label) > 100:
                label = label[:97] + "..."
            out.append(f"{mark}{len(group)} tensors: {group[0].reason}  [{label}]")
    return out
