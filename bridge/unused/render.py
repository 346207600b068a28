"""The text of `bridge unused` and of a restore report: unused parameters folded by module, with the steps and
ranks they were used on, and what a restore call loads from a checkpoint, with the fix."""

from __future__ import annotations

from bridge.core.scopes import fold
from bridge.core.unused.report import ParameterUsage, UnusedItem, UnusedReport
from bridge.core.unused.restore import HARMLESS_KINDS, LENIENT, RestoreFix, RestoreReport
from bridge.report import listed

_UNUSED_TITLES = {
    "never_read": "never read in the forward pass",
    "no_gradient": "read, but no gradient reaches them from the loss",
    "frozen": "frozen (not trainable: harmless, DDP and optimizers skip them)",
    "sometimes": "reach the loss in some steps only",
    "rank_dependent": "reach the loss on some ranks only at the same step",
}


def _step_list(steps: tuple[int, ...], limit: int = 12) -> str:
    """``(0, 1, 2, 5, 7, 8)`` -> ``0-2, 5, 7-8``; long lists end in ``... N more``."""
    runs: list[list[int]] = []
    for s in steps:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    shown = [f"{a}-{b}" if b > a else str(a) for a, b in runs]
    more = f", ... {len(shown) - limit} more" if len(shown) > limit else ""
    return (", ".join(shown[:limit]) + more) or "none"


def _used_on(items: list[UnusedItem], usage: dict[str, ParameterUsage], rank: str = "rank") -> list[str]:
    """Under a sometimes / rank_dependent group: the steps (each rank's, where recorded) a gradient reached,
    one line per distinct pattern, naming the modules when the group's members differ.  ``rank``: the word for
    one (``replica`` under a TensorFlow strategy)."""
    patterns: dict[str, list[str]] = {}
    for item in items:
        u = usage.get(item.name)
        if u is None:
            continue
        if u.by_rank is None:
            text = f"steps {_step_list(u.steps)}"
        else:
            text = "; ".join(
                f"{rank} {r}: " + (f"steps {_step_list(st)}" if st else "no step")
                for r, st in sorted(u.by_rank.items())
            )
        sep = "/" if "/" in item.name else "."
        module = item.name.rsplit(sep, 1)[0] if sep in item.name else item.name
        patterns.setdefault(text, [])
        if module not in patterns[text]:
            patterns[text].append(module)
    if len(patterns) == 1:
        return [f"    used on {text}" for text in patterns]
    return [f"    used on {text}: {', '.join(fold(mods))}" for text, mods in patterns.items()]


def render_unused(report: UnusedReport, *, verbose: bool = False) -> str:
    """Human-readable report: one block per kind, one row per folded scope, the fix under it."""
    s = report.summary
    runs = (
        f"backward closure of {', '.join(report.losses)}"
        if report.losses
        else f"{report.steps} step{'s' if report.steps != 1 else ''}"
    )
    rank = "replica" if report.framework == "tensorflow" else "rank"
    if report.ranks:
        runs += f" on {report.ranks} {rank}s together (steps counted from 0 on each)"
    lines = [f"{report.framework}: {s['parameters']} parameters ({s['elements']:,} elements), {runs}"]
    usage = report.usage_of()
    if not report.items:
        lines.append("every parameter is read and reaches the loss")
    current = None
    for kind, label, items in report.groups():
        if kind != current:
            current = kind
            n = len(report.by_kind(kind))
            lines.append("")
            lines.append(f"{kind} ({n} parameter{'s' if n != 1 else ''}): {_UNUSED_TITLES[kind]}")
        numel = sum(i.numel for i in items)
        leaves = sorted({i.name[len(i.scope) + 1 :] if i.name.startswith(i.scope) else i.name for i in items})
        shown = ", ".join(leaves[:6]) + (f", ... {len(leaves) - 6} more" if len(leaves) > 6 else "")
        lines.append(f"  {label}: {len(items)} parameter{'s' if len(items) != 1 else ''}, {numel:,} elements ({shown})")
        if verbose:
            lines.extend(f"    {i.name} {list(i.shape)}" for i in items)
        if kind in ("sometimes", "rank_dependent"):
            lines.extend(_used_on(items, usage, rank))
        hints = dict.fromkeys(i.hint for i in items)
        for hint in hints:
            lines.append(f"    fix: {hint}")
    if report.ddp is not None:
        lines.append("")
        d = report.ddp
        if d.get("error_kind") == "setup":
            lines.append(f"DDP check could not run: {d.get('message')}")
        elif d.get("raised"):
            lines.append("DDP (2 gloo processes, find_unused_parameters=False) raised:")
            lines.extend("  | " + row for row in str(d.get("message", "")).strip().splitlines()[:12])
            if d.get("unused_names"):
                lines.append("  the indices DDP names are: " + ", ".join(d["unused_names"]))
        else:
            lines.append(
                f"DDP (2 gloo processes, find_unused_parameters=False): {d.get('steps', 2)} steps ran without error"
            )
    lines += _predictions(report)
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("")
    counts = s["counts"]
    lines.append(
        "verdict: "
        + ("nothing trainable is unused" if report.ok else f"{s['trainable_unused']} trainable parameters unused")
        + f" (never_read {counts['never_read']}, no_gradient {counts['no_gradient']}, "
        f"sometimes {counts['sometimes']}, frozen {counts['frozen']}"
        + (f", rank_dependent {counts['rank_dependent']}" if counts["rank_dependent"] else "")
        + ")"
    )
    return "\n".join(lines)


def _config(find_unused: bool, static: bool, reentrant: bool | None) -> str:
    text = f"find_unused_parameters={find_unused}, static_graph={static}"
    return text + ("" if reentrant is None else f", use_reentrant={reentrant}")


def _predictions(report: UnusedReport) -> list[str]:
    """Each DDP configuration's predicted outcome, the recommendation, and what find_unused_parameters costs."""
    if report.fsdp is not None:
        f = report.fsdp
        where = "runs" if f.outcome == "runs" else f"{f.outcome} at step {f.step} on rank {f.rank}"
        lines = ["", f"FSDP ({f.wrapper}), predicted from the gradients recorded: {where}"]
        if f.parameters:
            lines.append(f"  parameters: {listed(list(f.parameters), False)}")
        return [*lines, f"  advice: {f.advice}"]
    if not report.predictions:
        return []
    where = f"{report.ranks} ranks" if report.ranks else "every rank doing what this process did"
    lines = ["", f"DDP, predicted from the gradients recorded ({where}):"]
    for p in report.predictions:
        what = "runs" if p.outcome == "runs" else f"{p.outcome} at step {p.step} on rank {p.rank}"
        lines.append(f"  {_config(*p.config)}: {what}")
        if p.message:
            lines.append(f"    | {p.message}")
        if p.parameters:
            lines.append(f"    parameters: {listed(list(p.parameters), False)}")
    r = report.recommended
    if r is not None:
        lines.append(f"recommended: {_config(r.find_unused_parameters, r.static_graph, r.reentrant_checkpointing)}")
        if r.code_change:
            lines.append(f"  needs: {r.code_change}")
        lines.append(f"  why: {r.why}")
        if r.alternative:
            lines.append(f"  or change the code so that plain DDP runs: {r.alternative}")
    cost = report.cost
    if cost is not None:
        per = cost.get("seconds_per_step")
        if per and cost.get("ratio"):
            lines.append(
                f"cost: a step with find_unused_parameters=True takes {cost['ratio']:.2f}x the time of one without "
                f"({per['true'] * 1e3:.2f} ms vs {per['false'] * 1e3:.2f} ms, median of "
                f"{2 * cost['steps']} steps each, 2 gloo CPU processes"
                + (", the one without adding the zero-weighted term" if cost.get("touch_all") else "")
                + ")"
            )
        else:
            lines.append(f"cost: could not be measured ({cost.get('message')})")
    return lines


def _count(n: int, total: int) -> str:
    return "nothing" if n == 0 and total else ("everything" if n == total else f"{n} of {total}")


def _indent(code: str) -> list[str]:
    return ["    " + line for line in code.splitlines()]


def render_restore(report: RestoreReport, *, verbose: bool = False) -> str:
    """Human-readable restore report: what the user's call restores as written, what it loses and lacks,
    what may be dropped safely, and (PyTorch) the aligned call that would restore more."""
    s = report.summary
    lines = [
        f"{report.framework}: {s['restored']} of {s['model_variables']} model variables restored from "
        f"{report.checkpoint}" + (f" (weights at `{report.root}`)" if report.root else "")
    ]
    if report.call:
        lines += ["  by this call, as written:", *_indent(report.call)]
    if report.framework == "pytorch":
        lines.append(
            f"  load_state_dict reports {len(report.missing)} missing_keys, {len(report.unexpected)} unexpected_keys"
        )
    titles = {
        "model_leftover": "model leftovers: checkpoint weights the model never restores",
        "shape_mismatch": "mismatches (shape, or a dtype the call does not cast): restore fails",
        "missing": "missing: model variables the checkpoint does not provide (they keep their initial values)",
    }
    fix = report.fix
    for kind, title in titles.items():
        items = report.by_kind(kind)
        if not items:
            continue
        lines += ["", f"{title} ({len(items)})"]
        if fix is not None and kind != "shape_mismatch" and not verbose and len(items) > 4:
            # a prefix makes every key differ: one line per hint, the fix below says the rest
            by_hint: dict[str, list[str]] = {}
            for i in items:
                by_hint.setdefault(i.hint, []).append(i.path or i.name)
            for hint, names in by_hint.items():
                lines += [f"  {listed(names, False)}", f"    fix: {hint}"]
            continue
        for i in items:
            lines += [f"  {i.path or i.name} {list(i.shape)}", f"    fix: {i.hint}"]
    harmless = [i for i in report.items if i.kind in HARMLESS_KINDS]
    if harmless:
        lines += ["", f"safe to drop ({len(harmless)}): optimizer state, counters, metrics, bookkeeping"]
        for kind in HARMLESS_KINDS:
            items = report.by_kind(kind)
            if items:
                lines += [
                    f"  {kind} ({len(items)}): {listed([i.path or i.name for i in items], verbose)}",
                    f"    {items[0].hint}",
                ]
    if fix is not None and fix.code:
        lines += ["", f"fix: this call restores {fix.restored} of {report.total}:", *_indent(fix.code)]
    elif fix is not None:
        lines += ["", f"fix: none: with the keys aligned ({_fix_words(fix)}), no tensor has the model's shape"]
    if fix is not None:
        if fix.mismatched:
            shown = [f"{k} {list(a)} vs the model's {list(b)}" for k, a, b in fix.mismatched]
            lines.append(
                f"  {len(fix.mismatched)} aligned keys hold another shape than the model's, left out of the call: "
                f"{listed(shown, verbose)}; the file is of another config (hidden size, vocabulary, number of "
                "classes?): build the model with the file's config to restore them"
            )
        if fix.left_out:
            lines.append(
                f"  it leaves out {len(fix.left_out)} keys without `{fix.strip_prefix}`: "
                f"{listed(list(fix.left_out), verbose)}"
            )
        if fix.unexpected:
            lines.append(
                f"  it still drops {len(fix.unexpected)} unexpected keys: {listed(list(fix.unexpected), verbose)}"
            )
        if fix.missing:
            lines.append(f"  it still misses {len(fix.missing)}: {listed(list(fix.missing), verbose)}")
        if fix.untouched:
            lines.append(
                f"  outside `model.{fix.submodule}`, {len(fix.untouched)} keep their initial values: "
                f"{listed(list(fix.untouched), verbose)}"
            )
    if report.other is not None:
        o = report.other
        lines += ["", f"`{o.call}` restores {_count(o.restored, report.total)} here: {o.why}"]
    lines += [f"note: {n}" for n in report.notes]
    partial = (
        "safe (only optimizer state, counters, bookkeeping left over)"
        if report.expect_partial_safe
        else ("NOT safe: it would silently drop model weights")
    )
    drop = LENIENT[report.framework]
    if report.ok:
        verdict = "the model restores completely"
    else:
        c = s["counts"]
        verdict = (
            f"restores {_count(report.matched, report.total)} as is ({c['model_leftover']} model leftovers, "
            f"{c['missing']} missing, {c['shape_mismatch']} mismatched)"
        )
        if fix is not None and fix.code:
            verdict += f"; the fix above restores {fix.restored} of {report.total}"
        elif fix is not None:
            verdict += "; the file is of another config than the model (build the model with the file's config)"
    lines += ["", f"{drop}: {partial}", f"verdict: {verdict}"]
    return "\n".join(lines)


def _fix_words(fix: RestoreFix) -> str:
    """The alignment a fix makes, in words."""
    moves = [
        f"`{fix.strip_prefix}` stripped" if fix.strip_prefix else "",
        f"into `model.{fix.submodule}`" if fix.submodule else "",
    ]
    return ", ".join(m for m in moves if m)


# --------------------------------------------------------------------------- inspect
