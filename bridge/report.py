"""Rendering reports for people, in one place: a :class:`~bridge.core.plan.Plan` (summary by folded scope, or every
row), an inspect report, a verify report, an unused report (one row per folded scope, the fix under it) and a restore
report (what the call restores).  Every report also has ``to_json()``, which ``--json`` prints instead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bridge.core.invoked import command_name
from bridge.core.model import KIND_MEANINGS
from bridge.core.plan import Assumption, Leftover, Plan
from bridge.core.scopes import ROOT_SCOPE, fold, numbers_of

if TYPE_CHECKING:
    from bridge.commands.convert import ConvertResult
    from bridge.commands.inspect import InspectReport, ScopeRow
    from bridge.commands.layouts import LayoutsReport
    from bridge.core.model import Checkpoint
    from bridge.core.pad_rows import PadRow
    from bridge.core.verify_report import VerifyReport


def note_line(note: str) -> str:
    """A plan's note as a report prints it: a guess (:class:`Assumption`) says it is one."""
    return f"assumed: {note}" if isinstance(note, Assumption) else f"note: {note}"


def render_plan(plan: Plan, *, verbose: bool = False) -> str:
    cov = plan.coverage()
    t = plan.target
    lines = [
        f"source: {plan.source_path} ({plan.source_format}, {plan.rules_label})",
        f"target: {t.description}" + (f" [{t.framework}]" if t.framework else ""),
        f"coverage: source model tensors consumed {cov['source_consumed']:.0%}, "
        f"target tensors filled {cov['target_filled']:.0%} "
        f"({len(plan.matched)} matched, {len(plan.tied)} tied, {len(plan.missing)} missing, "
        f"{len(plan.mismatched)} mismatched)",
    ]
    lines.extend(note_line(note) for note in plan.notes)
    lines.extend(render_pad_rows(plan.pad_rows))
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
        assumed = f" (assumed: {'; '.join(plan.assumed)})" if plan.assumed else ""
        lines.append(f"verdict: OK: every target tensor has its source; leftovers are expected{assumed}")
    else:
        gaps = len(plan.gaps) + len(plan.mismatched)
        lines.append(f"verdict: GAPS: {gaps} problem(s) above would make the converted model differ (exit 1)")
    return "\n".join(lines)


def render_convert(result: ConvertResult, *, check_command: str, verify_command: str) -> str:
    """What convert wrote and dropped, the plan's notes, a warning naming ``check_command`` when written with gaps,
    and ``verify_command`` as the ``next:`` line."""
    plan = result.plan
    lines = [
        f"wrote {result.out}/: {', '.join(result.files)}",
        f"  {result.tensors} tensors, {human_bytes(result.bytes_written)}; "
        f"{len(plan.tied)} tied tensors need no source; "
        f"dropped {human_bytes(result.dropped_bytes)} of optimizer state and counters",
    ]
    lines += [f"  {note_line(note)}" for note in plan.notes + result.notes]
    if not plan.ok:
        lines.append(f"  WARNING: written with gaps (--allow-gaps); `{check_command}` shows them")
    return "\n".join([*lines, f"next: {verify_command}"])


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


def listed(names: list[str], verbose: bool) -> str:
    shown = names if verbose else names[:4] + ([f"... {len(names) - 4} more"] if len(names) > 4 else [])
    return ", ".join(shown)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # noqa: S101


def human_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def render_inspect(report: InspectReport, *, every_tensor: bool = False) -> str:
    """``bridge inspect``: the header, tensors by scope (or every tensor, with stats), slots, counters, ties."""
    ckpt = report.checkpoint
    lines = [f"{ckpt.path}", f"  format: {ckpt.format} ({ckpt.framework})"]
    for key, value in ckpt.metadata.items():
        if isinstance(value, (str, int, float, bool)):
            lines.append(f"  {key}: {value}")
    totals = report.totals()
    lines.append(
        "  "
        + ", ".join(
            f"{kind}: {t['tensors']} tensors, {human_count(t['params'])} values, {human_bytes(t['bytes'])}"
            for kind, t in totals.items()
            if t["tensors"]
        )
    )
    lines.append("")
    if every_tensor or report.stats:
        lines.extend(_tensor_table(report))
    else:
        lines.extend(_scope_table("model tensors by scope", report.scopes))
        if report.root_names:
            lines.append(
                f"{ROOT_SCOPE}: {len(report.root_names)} model tensors at the top level (a name without a scope): "
                f"{listed(report.root_names, every_tensor)}"
            )
    if report.slots and not every_tensor:
        lines.append("")
        lines.extend(_scope_table("optimizer state by slot (not model weights)", report.slots))
    if report.pad_rows:
        lines.append("")
        lines.extend(render_pad_rows(report.pad_rows))
    if report.counters:
        lines.append("")
        lines.append("counters: " + ", ".join(f"{k} = {v}" for k, v in report.counters.items()))
    for kind, values in report.bookkeeping.items():
        shown = [name if value is None else f"{name} = {value}" for name, value in values.items()]
        lines += ["", f"{kind}: {len(values)} tensors, {KIND_MEANINGS[kind]}", f"  {listed(shown, every_tensor)}"]
    if ckpt.tied:
        lines.append("")
        lines.append("tied (one storage, several names): " + "; ".join(" = ".join(g) for g in ckpt.tied))
    copies = ckpt.metadata.get("copies")
    if isinstance(copies, dict) and copies:
        shown = [f"{_readable(ckpt, c)} = {_readable(ckpt, o)}" for c, o in list(copies.items())[:3]]
        lines.append("")
        lines.append(
            f"saved twice (second copies: same full name, dtype, shape and checksum): {len(copies)} "
            "tensors, e.g. " + "; ".join(shown) + ("; ..." if len(copies) > 3 else "")
        )
    if ckpt.warnings:
        lines.append("")
        lines += [f"warning: {w}" for w in ckpt.warnings]
    return "\n".join(lines)


def render_pad_rows(rows: list[PadRow]) -> list[str]:
    """The padding row of a word-embedding table: its norm against the typical row, the tie, and why."""
    lines = []
    for row in rows:
        ratio = f" ({row.norm / row.median_norm:.2f}x)" if row.median_norm else ""
        tied = "tied to the output projection" if row.tied else "not tied to an output projection"
        of = "median row norm" if row.sampled_rows is None else f"median norm of {row.sampled_rows} sampled rows"
        state = "zero" if row.zero else f"norm {row.norm:.4g} vs {of} {row.median_norm:.4g}{ratio}"
        lines.append(
            f"padding row: {row.table}[{row.pad_token_id}] (pad_token_id from {row.pad_from}): {state}; {tied}"
        )
        if row.explanation:
            lines.append(f"  why not zero: {row.explanation}")
    return lines


def _readable(ckpt: Checkpoint, name: str) -> str:
    return (ckpt[name].path or name) if name in ckpt else name


def _scope_table(title: str, rows: list[ScopeRow]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    width = max(len(title), *(len(r.scope) for r in rows))
    out = [f"{title:<{width}}  {'tensors':>7}  {'values':>8}  {'bytes':>10}  dtypes"]
    for r in rows:
        mix = ", ".join(f"{d}" if n == r.tensors else f"{d}×{n}" for d, n in r.dtypes.items())
        out.append(
            f"{r.scope:<{width}}  {r.tensors:>7}  {human_count(r.params):>8}  {human_bytes(r.nbytes):>10}  {mix}"
        )
    return out


def _tensor_table(report: InspectReport) -> list[str]:
    recs = report.records
    if not recs:
        return ["no tensors match"]
    width = max(len(r.name) for r in recs)
    paths = any(r.path for r in recs)
    head = f"{'name':<{width}}  {'kind':<9}  {'dtype':<8}  shape" + ("  path" if paths else "")
    if report.stats:
        head += "  |  min  max  mean  std  nan  inf"
    out = [head]
    for r in recs:
        line = f"{r.name:<{width}}  {r.kind:<9}  {r.dtype:<8}  {list(r.shape)}"
        if paths:
            line += f"  {r.path or ''}"
        s = report.stats.get(r.name)
        if s is not None:
            line += "  |  " + "  ".join(_fmt(s[k]) for k in ("min", "max", "mean", "std", "nan", "inf"))
        out.append(line)
    return out


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


# --------------------------------------------------------------------------- verify


_GAPS_LISTED = 10


def render_verify(report: VerifyReport) -> str:
    """``bridge verify``: values, each forward output, notes, the verdict line."""
    lines = [f"values: {report.values_equal}/{report.values_compared} tensors bit-exact after their transform"]
    lines += [f"  ! {failure}" for failure in report.value_failures]
    if report.plan_gaps:
        lines.append(f"plan: {len(report.plan_gaps)} gap(s) between the source and the output")
        lines += [f"  ! {gap}" for gap in report.plan_gaps[:_GAPS_LISTED]]
        more = len(report.plan_gaps) - _GAPS_LISTED
        lines += (
            [f"  ... and {more} more (`{command_name()} check SOURCE --to SIDE --target OUT` lists them)"]
            if more > 0
            else []
        )
    for o in report.outputs:
        mark = "ok" if o.ok else "FAIL"
        lines.append(
            f"forward {o.name} {list(o.shape)}: max abs {o.max_abs:.3g}, max rel {o.max_rel:.3g} "
            f"(atol {report.atol:g}) {mark}"
        )
    lines += [f"note: {note}" for note in report.notes]
    lines.append("verdict: " + report.verdict())
    return "\n".join(lines)


def render_layouts(report: LayoutsReport) -> str:
    """``bridge layouts``: per direction, each layout name, what it is, and the families it converts."""
    lines: list[str] = []
    for title, rows in (
        ("TensorFlow -> PyTorch (--to pytorch; the layout is detected, or --rules NAME):", report.read),
        ("PyTorch -> TensorFlow (--to tensorflow --target NAME):", report.written),
    ):
        lines.append(title)
        width = max((len(row.name) for row in rows), default=0)
        for row in rows:
            default = " (the default for these)" if row.default else ""
            lines.append(f"  {row.name:<{width}}  {row.layout}{default}: {', '.join(row.model_types) or 'any family'}")
    lines.append(
        "A PyTorch source goes only to a layout that writes its family (config.json's model_type); without --target,"
        " to its family's default layout, else the first listed."
    )
    return "\n".join(lines)
