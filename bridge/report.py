"""Rendering a :class:`~bridge.plan.Plan` for people: summary by folded scope, or every row."""

from __future__ import annotations

from collections import defaultdict

from bridge.plan import Leftover, Plan
from bridge.scopes import fold


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
            sources = fold(s for s, _ in pairs)
            targets = fold(t for _, t in pairs)
            if len(sources) == len(targets):
                for (s, members), tgt in zip(sources.items(), targets, strict=True):
                    lines.append(f"  {s} -> {tgt}  [{transform}]" + (f"  ×{len(members)}" if len(members) > 1 else ""))
            else:
                for s, tgt in pairs:
                    lines.append(f"  {s} -> {tgt}  [{transform}]")
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
