"""The matcher: a source checkpoint + a target spec + a rule pack -> a validated :class:`Plan`.

Reads metadata only.  Rules map TF-side names to PyTorch-side names; for a
PyTorch source and a TF target the TF layout is enumerated, mapped, and each
transform inverted.  Names are then aligned (a base-model prefix added or
stripped), shapes checked after the transform, and every leftover explained.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import closest
from bridge.core.packs import Buffer, Head, Rule, RulePack
from bridge.core.plan import Leftover, Match, Mismatch, Plan, TargetSpec, Tie
from bridge.core.transforms import IDENTITY, Transform

_NON_MODEL = {
    "optimizer": "optimizer state{slot}: not part of the model, dropped",
    "counter": "training counter: dropped",
    "metric": "a compiled metric's running total/count, not a weight: dropped",
    "rng": "random-number state of a Dropout/noise layer (seed generator), not a weight: dropped",
    "metadata": "checkpoint bookkeeping: dropped",
}
_SUSPICIOUS_FRACTION = 0.5


def build_plan(
    ckpt: Checkpoint,
    spec: TargetSpec,
    pack: RulePack,
    *,
    extra_rules: Sequence[Rule] = (),
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
) -> Plan:
    """Match every model tensor of ``ckpt`` to ``spec`` and explain what is left.

    Args:
        ckpt: the source checkpoint (only metadata is read).
        spec: the names, shapes and ties the target expects.
        pack: the rule pack of the checkpoint family.
        extra_rules: user rules (``--map``, ``--rules``), tried before the pack's.
        strip_prefix: remove this prefix from PyTorch-side source names before matching.
        add_prefix: add this prefix to PyTorch-side source names before matching.

    Returns:
        A :class:`Plan`; ``plan.ok`` tells whether a conversion would be complete and faithful.
    """
    plan = Plan(source_path=ckpt.path, source_format=ckpt.format, pack=pack.name, target=spec, rule_pack=pack)
    plan.names_as_is = (spec.framework == "pytorch") == (ckpt.framework == "pytorch")  # one side: no rules apply
    rules = tuple(extra_rules) + pack.matching.rules
    model = [r for r in ckpt.values() if r.kind == "model"]
    plan.source_model_tensors = len(model)
    for r in ckpt.values():
        if r.kind != "model":
            slot = f" ({r.slot_name})" if r.slot_name else ""
            plan.unused.append(Leftover(r.name, _NON_MODEL[r.kind].format(slot=slot), True, r.shape, r.kind))

    proposals, domain = _propose(ckpt, model, spec, rules, plan, strip_prefix, add_prefix)
    filled: dict[str, str] = {}
    how: dict[str, Transform] = {}  # target -> the transform its source takes (ties compare values after it)
    parts: dict[str, tuple[set[int], int]] = {}  # targets assembled from n parts (place/sum/block(k,n)): the parts seen
    unplaced: list[tuple[TensorRecord, str | None]] = []
    for r in model:
        placed = False
        for target_name, transform in proposals.get(r.name, ()):
            target = spec.tensors.get(target_name)
            part = transform.part
            if target is None or (target_name in filled and (part is None or part[0] in parts[target_name][0])):
                continue
            filled[target_name] = r.name
            how[target_name] = transform
            if part is not None:
                parts.setdefault(target_name, (set(), part[1]))[0].add(part[0])
            placed = True
            out_shape = transform.shape(r.shape)
            if out_shape != target.shape:
                plan.mismatched.append(
                    Mismatch(
                        r.name,
                        target_name,
                        r.shape,
                        target.shape,
                        str(transform),
                        f"after {transform} the source is {out_shape}, the target expects {target.shape}",
                    )
                )
                continue
            plan.matched.append(Match(r.name, target_name, str(transform), r.shape, target.shape, r.dtype))
        if not placed:
            first = proposals.get(r.name)
            unplaced.append((r, first[0][0] if first else None))

    for target_name, (seen, n) in parts.items():
        if len(seen) != n:
            plan.missing.append(
                Leftover(
                    target_name,
                    f"assembled from {n} parts, only parts {sorted(seen)} have a source",
                    False,
                    spec.tensors[target_name].shape,
                )
            )
    _check_ties(ckpt, spec, plan, filled, how)
    open_targets = {n: t.shape for n, t in spec.tensors.items() if n not in filled and t.tied_to is None}
    names = _SourceNames.of(ckpt, strip_prefix, add_prefix)
    source_ties = _source_ties(ckpt, pack, spec, names)
    written = {m.source for m in plan.matched}
    keepers: dict[str, str | None] = {}  # head label -> the class that keeps it (asked once per head)
    for r, proposed in unplaced:
        tie = _stored_once(ckpt, r.name, source_ties, written)
        plan.unused.append(_explain_unused(ckpt, r, proposed, spec, pack, filled, open_targets, tie, names, keepers))

    leftover_sources = {_pt_name(x.name, proposals): x.shape for x in plan.unused if x.kind == "model"}
    # a tie's source that only its copy fills (a class that declares its LM head the source of the word embeddings,
    # which the checkpoint stores): the shared parameter loads from the copy, so the source is tied to it
    filled_copies = {t.tied_to: n for n, t in spec.tensors.items() if t.tied_to is not None and n in filled}
    for name, t in spec.tensors.items():
        if name in filled:
            continue
        if t.tied_to is not None and (t.tied_to in filled or spec.tensors.get(t.tied_to) is not None):
            plan.tied.append(Tie(name, t.tied_to))
            continue
        if t.tied_to is None and name in filled_copies:
            plan.tied.append(Tie(name, filled_copies[name]))
            continue
        plan.missing.append(_explain_missing(name, t.shape, pack, leftover_sources))

    _flag_suspicious(plan, model, domain)
    return plan


def _check_ties(
    ckpt: Checkpoint, spec: TargetSpec, plan: Plan, filled: dict[str, str], how: dict[str, Transform]
) -> None:
    """A source that stores both sides of a tie the target makes must hold one value, not two.

    Storage identity (a torch state dict of a tied model) settles it from metadata; otherwise the
    two tensors' values are compared.  Where they differ, the target would tie them on load and
    one of the two would silently win: the tied copy is not loaded and the report says so (exit 1).
    """
    same_storage = {frozenset((a, b)) for group in ckpt.tied for a in group for b in group}
    for name, t in spec.tensors.items():
        if t.tied_to is None or name not in filled or t.tied_to not in filled:
            continue
        copy, owner = filled[name], filled[t.tied_to]
        if frozenset((copy, owner)) in same_storage or _same_values(ckpt, copy, owner):
            continue
        flag = " (tie_word_embeddings)" if "embeddings" in t.tied_to else ""
        plan.matched = [m for m in plan.matched if m.target != name]
        del filled[name]
        if str(how[name]) != str(how[t.tied_to]) and _same_after(ckpt, (copy, how[name]), (owner, how[t.tied_to])):
            # one value stored in two layouts (an LM head's kernel beside the embedding matrix it is tied to):
            # the tie is written once, as transformers saves it
            reason = (
                f"tied in the config{flag} to `{t.tied_to}`: the same values as `{owner}` ({how[name]}), stored once"
            )
            plan.unused.append(Leftover(copy, reason, True, ckpt[copy].shape))
            continue
        plan.unused.append(
            Leftover(
                copy,
                f"tied in the config{flag} to `{t.tied_to}`, but its values differ from `{owner}`: the target "
                f"keeps one tensor for both, so the checkpoint contradicts its config (untie it in the config, "
                f"or check which of the two was trained)",
                False,
                ckpt[copy].shape,
            )
        )


def _same_values(ckpt: Checkpoint, a: str, b: str) -> bool:
    return _difference(ckpt, a, b) is None


def _same_after(ckpt: Checkpoint, *sides: tuple[str, Transform]) -> bool:
    """Two sources that hold the same bytes once each is brought to the target layout."""
    (a, ta), (b, tb) = sides
    if ta.shape(ckpt[a].shape) != tb.shape(ckpt[b].shape) or ckpt[a].dtype != ckpt[b].dtype:
        return False
    return bool(ta.apply(ckpt[a].numpy()).tobytes() == tb.apply(ckpt[b].numpy()).tobytes())


def _difference(ckpt: Checkpoint, a: str, b: str) -> str | None:
    """None when ``a`` and ``b`` hold the same bytes; else how they differ, for a report."""
    ra, rb = ckpt[a], ckpt[b]
    if ra.shape != rb.shape:
        return f"shape {list(ra.shape)} vs {list(rb.shape)}"
    if ra.dtype != rb.dtype:
        return f"dtype {ra.dtype} vs {rb.dtype}"
    va, vb = ra.numpy(), rb.numpy()
    if va.tobytes() == vb.tobytes():
        return None
    if va.dtype.kind not in "fiub":  # strings, bf16 stored as void: no arithmetic, bytes differ
        return "different bytes"
    diff = np.abs(va.astype(np.float64) - vb.astype(np.float64))
    return f"max abs diff {float(np.nanmax(diff)) if diff.size else 0.0:.3g}"


def _propose(
    ckpt: Checkpoint,
    model: list[TensorRecord],
    spec: TargetSpec,
    rules: tuple[Rule, ...],
    plan: Plan,
    strip_prefix: str | None,
    add_prefix: str | None,
) -> tuple[dict[str, list[tuple[str, Transform]]], _Domain]:
    """Source name -> [(target name, transform)], before validation; and what the names were aligned on.

    Usually one target per source; a source split in parts (a Keras GRU's two bias rows) has
    one per part: every rule that matches a source name and names another target adds one.
    """

    def map_tf(name: str) -> list[tuple[str, Transform]]:
        hits: list[tuple[str, Transform]] = []
        for rule in rules:
            hit = rule.apply(name)
            if hit is None or any(hit[0] == t for t, _ in hits):
                continue
            if hits and not (hit[1].splits and hits[0][1].splits):
                break  # the first rule wins, as always; only the parts of a split source go on
            hits.append(hit)
        return hits

    source_is_pt = ckpt.framework == "pytorch"
    if spec.framework == "pytorch" and not source_is_pt:  # TF -> PyTorch: rules forwards
        mapped = {r.name: hits for r in model if (hits := map_tf(r.name))}
        align = _aligner([t for hits in mapped.values() for t, _ in hits], spec, plan, strip_prefix, add_prefix)
        shapes = {r.name: r.shape for r in model}
        names = [(t, tr.shape(shapes[s])) for s, hits in mapped.items() for t, tr in hits]
        domain = _Domain(names, {n: t.shape for n, t in spec.tensors.items()})
        return {s: [(align(t), tr) for t, tr in hits] for s, hits in mapped.items()}, domain
    if spec.framework == "tensorflow" and source_is_pt:  # PyTorch -> TF: enumerate the TF layout
        # A PyTorch tensor split in parts feeds several TF tensors (torch's in_proj_weight is Keras' query, key and
        # value: chunk(k,3) each); otherwise the last TF name mapped to it wins.
        reverse: dict[str, list[tuple[str, Transform]]] = {}
        pt_shapes: dict[str, tuple[int, ...]] = {}
        for tf_name, t in spec.tensors.items():
            for pt_name, transform in map_tf(tf_name):
                pt_shape = transform.shape(t.shape)
                if pt_shape is not None:
                    pt_shapes.setdefault(pt_name, pt_shape)
                hit, before = (tf_name, transform.inverse(t.shape)), reverse.get(pt_name, [])
                reverse[pt_name] = [*before, hit] if before and hit[1].splits and before[0][1].splits else [hit]
        lookup = TargetSpec(
            spec.framework,
            spec.description,
            {k: spec.tensors[v[0][0]] for k, v in reverse.items()},
            base_prefix=spec.base_prefix,
        )
        align = _aligner([r.name for r in model], lookup, plan, strip_prefix, add_prefix)
        domain = _Domain([(r.name, r.shape) for r in model], pt_shapes)
        return {r.name: reverse[align(r.name)] for r in model if align(r.name) in reverse}, domain
    align = _aligner([r.name for r in model], spec, plan, strip_prefix, add_prefix)
    domain = _Domain([(r.name, r.shape) for r in model], {n: t.shape for n, t in spec.tensors.items()})
    return {r.name: [(align(r.name), IDENTITY)] for r in model}, domain


@dataclass(frozen=True)
class _Domain:
    """What ``--strip-prefix``/``--add-prefix`` act on: the PyTorch-side names (with the shapes they would have on
    the target) and the PyTorch-side names and shapes they are aligned to; a prefix hint is tried on these."""

    names: list[tuple[str, tuple[int, ...] | None]]  # None: the transform does not apply to the source's shape
    targets: dict[str, tuple[int, ...]]


def _aligner(
    names: list[str], spec: TargetSpec, plan: Plan, strip_prefix: str | None, add_prefix: str | None
) -> Callable[[str], str]:
    """A renaming of PyTorch-side names that lines them up with the spec's: the prefix options' first, then the
    automatic one where it lines up more (``--strip-prefix module.`` of a wrapped base model, then its ``bert.``)."""
    targets = set(spec.tensors)
    if not (strip_prefix or add_prefix):
        return _automatic(names, spec, plan)
    plan.notes.append(f"names aligned as asked: strip {strip_prefix or ''!r}, add {add_prefix or ''!r}")
    asked = _keeping(prefix_renaming(strip_prefix, add_prefix), targets)
    then = _automatic([asked(n) for n in names], spec, plan)
    return asked if then is _same else lambda n: then(asked(n))


def _automatic(names: list[str], spec: TargetSpec, plan: Plan) -> Callable[[str], str]:
    """The renaming among the ones a base model's prefix and legacy names suggest that lines up the most names."""
    targets = set(spec.tensors)

    def score(fn: Callable[[str], str]) -> int:
        return sum(fn(n) in targets for n in names)

    candidates: list[tuple[Callable[[str], str], str | None]] = [(_same, None)]
    if spec.base_prefix:
        prefix = spec.base_prefix + "."
        candidates += [
            (_keeping(_stripper(prefix), targets), f"removed prefix `{prefix}` (the target is the base model)"),
            (_keeping(_adder(prefix), targets), f"added prefix `{prefix}` (the target wraps the base model)"),
        ]
    if any(n.rpartition(".")[2] in _LEGACY_NAMES for n in names):  # pytorch-pretrained-bert's LayerNorm names
        legacy = "legacy `gamma`/`beta` read as `weight`/`bias`"
        candidates += [
            (_keeping(_then_legacy(fn, targets), targets), f"{note}; {legacy}" if note else legacy)
            for fn, note in candidates
        ]
    best: tuple[int, Callable[[str], str], str | None] = (score(_same), _same, None)
    for fn, note in candidates[1:]:
        s = score(fn)
        if s > best[0]:
            best = (s, fn, note)
    if best[2]:
        renamed = sum(best[1](n) != n for n in names)
        kept = sum(best[1](n) == n in targets for n in names)
        detail = f": {renamed} of {len(names)} names; {kept} matched as they are" if kept else ""
        plan.notes.append(f"aligned automatically: {best[2]}{detail}")
    return best[1]


def prefix_renaming(strip_prefix: str | None, add_prefix: str | None) -> Callable[[str], str]:
    """The renaming ``--strip-prefix``/``--add-prefix`` ask for: strip first (where the name has it), then add."""
    strip, add = strip_prefix or "", add_prefix or ""
    return lambda n: add + (n[len(strip) :] if strip and n.startswith(strip) else n)


@dataclass(frozen=True)
class _SourceNames:
    """A PyTorch source's names as the user's prefix options give them, so that the pack's layout ties, copies,
    buffers and heads (written in the target class's names) see the names the matcher aligned, not the file's."""

    aligned: Callable[[str], str]  # source name -> the name the pack's patterns are written for
    back: dict[str, str]  # that name -> the source name (a name the source has as it is wins)

    @classmethod
    def of(cls, ckpt: Checkpoint, strip_prefix: str | None, add_prefix: str | None) -> _SourceNames:
        if ckpt.framework != "pytorch" or not (strip_prefix or add_prefix):  # a TF source: the options act on
            return cls(_same, {})  # the names rules map it to, not on its own
        present, aligned = set(ckpt), prefix_renaming(strip_prefix, add_prefix)
        return cls(aligned, {aligned(n): n for n in present if aligned(n) not in present})

    def source(self, name: str) -> str:
        return self.back.get(name, name)


def _keeping(fn: Callable[[str], str], targets: set[str]) -> Callable[[str], str]:
    """``fn``, except for names the target already has (a head beside the base model: ``lm_head.``)."""
    return lambda n: n if n in targets else fn(n)


def _same(name: str) -> str:
    return name


_LEGACY_NAMES = {"gamma": "weight", "beta": "bias"}


def _then_legacy(fn: Callable[[str], str], targets: set[str]) -> Callable[[str], str]:
    """``fn``, then a last component ``gamma``/``beta`` renamed ``weight``/``bias`` where the target has that."""

    def rename(name: str) -> str:
        moved = fn(name)
        head, _, last = moved.rpartition(".")
        legacy = f"{head}.{_LEGACY_NAMES[last]}" if head and last in _LEGACY_NAMES else moved
        return legacy if legacy in targets else moved

    return rename


def _stripper(prefix: str) -> Callable[[str], str]:
    return lambda n: n[len(prefix) :] if n.startswith(prefix) else n


def _adder(prefix: str) -> Callable[[str], str]:
    return lambda n: prefix + n


def _source_ties(ckpt: Checkpoint, pack: RulePack, spec: TargetSpec, names: _SourceNames) -> dict[str, list[str]]:
    """Source names another source tensor may stand for on the target side: name -> candidate owners.

    Names sharing one torch storage (settled from metadata), and, for a PyTorch source, the ties of
    the pack's class layouts (a decoder tied to the word embeddings), also under the names a source
    saved without the pack's base-model prefix carries, each read back through the user's prefix options.
    A claim, until :func:`_stored_once` checks it.
    """
    ties: dict[str, list[str]] = {}
    for group in ckpt.tied:
        for name in group:
            ties.setdefault(name, []).extend(n for n in group if n != name)
    if ckpt.framework == "pytorch" and spec.config is not None:
        base = f"{pack.pt.base_prefix}." if pack.pt.base_prefix else None
        for layout in pack.pt.targets.values():
            try:
                entries = layout(spec.config)
            except KeyError:
                continue
            for name, (_, tied_to) in entries.items():
                if not tied_to:
                    continue
                pairs = [(name, tied_to)] + ([(name.removeprefix(base), tied_to.removeprefix(base))] if base else [])
                for copy, owner in ((names.source(c), names.source(o)) for c, o in pairs):
                    if owner not in ties.setdefault(copy, []):
                        ties[copy].append(owner)
    return ties


def _stored_once(
    ckpt: Checkpoint, name: str, ties: dict[str, list[str]], written: set[str]
) -> tuple[str, str | None] | None:
    """Whether the target stores source ``name`` through another source tensor that is written.

    Returns ``(owner, None)`` when the two are one value (one torch storage: no read; else equal
    bytes), ``(owner, how they differ)`` when they are not, and None when no written tensor stands
    for ``name`` (ties are followed in chains: a copy of a copy of a written tensor).
    """
    same_storage = {n for group in ckpt.tied if name in group for n in group}
    seen, queue = {name}, list(ties.get(name, ()))
    while queue:
        owner = queue.pop(0)
        if owner in seen or owner not in ckpt:
            continue
        seen.add(owner)
        if owner in written:
            return owner, None if owner in same_storage else _difference(ckpt, name, owner)
        queue.extend(ties.get(owner, ()))
    return None


def _explain_unused(
    ckpt: Checkpoint,
    r: TensorRecord,
    target_name: str | None,
    spec: TargetSpec,
    pack: RulePack,
    filled: dict[str, str],
    open_targets: dict[str, tuple[int, ...]],
    tie: tuple[str, str | None] | None,
    names: _SourceNames,
    keepers: dict[str, str | None],
) -> Leftover:
    if tie is not None and tie[1] is None:
        return Leftover(r.name, f"tied to `{tie[0]}`: stored once on the target side", True, r.shape)
    aligned = names.aligned(r.name)  # the pack's patterns name the target's layout
    for bad in pack.matching.incompatible:
        if re.search(bad.source, aligned):
            return Leftover(r.name, f"changes the model's math: {bad.reason}", False, r.shape)
    for buffer in pack.matching.buffers:
        if re.search(buffer.source, aligned):
            return _explain_buffer(r, buffer)
    for copy in pack.matching.copies:
        if re.fullmatch(copy.source, aligned):
            found = copy.owner_of(aligned)
            owner = None if found is None else names.source(found)
            if owner is None or owner == r.name or owner not in ckpt:
                return Leftover(r.name, f"expected: {copy.reason}", True, r.shape)
            # A second copy of a source tensor is expected only when it holds the same bytes.
            if _same_values(ckpt, r.name, owner):
                return Leftover(r.name, f"expected: {copy.reason} (byte-equal to the tensor it copies)", True, r.shape)
            return Leftover(
                r.name,
                f"{copy.reason}, but its values differ from `{owner}`: the source disagrees "
                "with itself; check which of the two the model computes with",
                False,
                r.shape,
            )
    if target_name is not None and target_name in filled:
        return Leftover(r.name, f"maps to `{target_name}`, already filled by `{filled[target_name]}`", False, r.shape)
    for head in pack.matching.heads:
        head_name = target_name or ""
        if head.claims_source(aligned) or head_name.startswith(head.target_prefix):
            if not any(_has_prefix(n, head.target_prefix, spec) for n in spec.tensors):
                return _dropped_head(ckpt, r, head, spec, pack, keepers, names)
    if tie is not None:  # a tie that the values contradict, and nothing else explains the leftover
        owner, how = tie
        return Leftover(
            r.name,
            f"differs from `{owner}` ({how}): the target, {spec.description}, stores one "
            f"tensor for both, so the values of `{r.name}` would be lost; if the two were trained apart, "
            "convert to a target that keeps both (a PyTorch class with the tie off in its config), else "
            "check which of the two the model computes with",
            False,
            r.shape,
        )
    key = target_name or r.name
    suggestion = _suggest(key, r.shape, open_targets)
    if target_name is None:
        reason = "no rule maps this name: not loaded, the converted model would lack it"
    else:
        reason = f"maps to `{target_name}`, which the target does not have: not loaded"
    return Leftover(r.name, reason, False, r.shape, suggestion=suggestion)


def _dropped_head(
    ckpt: Checkpoint,
    r: TensorRecord,
    head: Head,
    spec: TargetSpec,
    pack: RulePack,
    keepers: dict[str, str | None],
    names: _SourceNames,
) -> Leftover:
    """A source head the target lacks.  Expected where the user named that target, or where none of the pack's
    classes keeps the head beside everything this target keeps (a second network no one class holds); where bridge
    chose a target that loses what another keeps, a gap: nothing is lost unless asked for."""
    target = spec.class_name or "the target"
    if head.separate:
        return Leftover(r.name, f"expected: {head.label} dropped ({target} has none)", True, r.shape)
    if spec.chosen:
        return Leftover(r.name, f"expected: {head.label} dropped ({target} has none)", True, r.shape, head=head.label)
    if spec.framework == "tensorflow":  # a layout laid out for the source's heads that still has no place for one
        return Leftover(
            r.name,
            f"{head.label}: {spec.description}, laid out by bridge for this source, has no place for it, so the "
            "output would lack it; pass --target with a layout or reference checkpoint that keeps it "
            "(or --allow-gaps to drop it knowingly)",
            False,
            r.shape,
            head=head.label,
        )
    if head.label not in keepers:
        keepers[head.label] = _keeper(ckpt, head, spec, pack, names)
    keeper = keepers[head.label]
    if keeper is None:
        reason = (
            f"expected: {head.label} dropped ({target} has none, nor does any {pack.name} class that keeps the rest)"
        )
        return Leftover(r.name, reason, True, r.shape, head=head.label)
    return Leftover(
        r.name,
        f"{head.label}: {target}, the class bridge chose, has none, so the output would lack it; pass --target "
        f"{keeper} to keep it (or --target {target} to drop it knowingly)",
        False,
        r.shape,
        head=head.label,
    )


def _keeper(ckpt: Checkpoint, head: Head, spec: TargetSpec, pack: RulePack, names: _SourceNames) -> str | None:
    """The class the pack lays out that has ``head`` and every tensor ``spec`` has (names compared without the
    base-model prefix: a head class wraps the base model), keeping the most of the source's heads, then the
    smallest; None if there is none."""
    base = f"{spec.base_prefix}." if spec.base_prefix else ""
    kept = {n.removeprefix(base) for n in spec.tensors}
    model = [names.aligned(x.name) for x in ckpt.values() if x.kind == "model"]
    present = [
        h
        for h in pack.matching.heads
        if any(h.claims_source(n) or _has_prefix(n, h.target_prefix, spec) for n in model)
    ]
    ranked = []
    for name, layout in pack.pt.targets.items():
        try:
            laid_out = set(layout(spec.config or {}))
        except (KeyError, TypeError, ValueError):
            continue
        holds = [h for h in present if any(_has_prefix(n, h.target_prefix, spec) for n in laid_out)]
        if kept <= {n.removeprefix(base) for n in laid_out} and head in holds:
            ranked.append((-len(holds), len(laid_out), name))
    return min(ranked)[2] if ranked else None


def _explain_buffer(r: TensorRecord, buffer: Buffer) -> Leftover:
    """A constant buffer is an expected leftover only when it holds what the target rebuilds: a checkpoint whose
    buffer was edited (shifted positions) computed with other values, which the converted model would lose."""
    value = r.numpy()
    rebuilt = buffer.value(r.shape)
    if value.shape == rebuilt.shape and value.dtype.kind in "iu" and np.array_equal(value, rebuilt):
        return Leftover(r.name, f"expected: constant buffer: {buffer.reason}", True, r.shape)
    return Leftover(
        r.name,
        f"a constant buffer ({buffer.reason}), but its values are not the ones the target rebuilds: "
        "the model computed with these, the converted one would not",
        False,
        r.shape,
    )


def _has_prefix(name: str, prefix: str, spec: TargetSpec) -> bool:
    if name.startswith(prefix):
        return True
    base = (spec.base_prefix or "") + "."
    return bool(spec.base_prefix) and prefix.startswith(base) and name.startswith(prefix[len(base) :])


def _explain_missing(
    name: str, shape: tuple[int, ...], pack: RulePack, leftovers: dict[str, tuple[int, ...]]
) -> Leftover:
    based = f"{pack.pt.base_prefix}.{name}" if pack.pt.base_prefix else name  # the target is the base model
    for opt in pack.matching.optional:
        if any(re.fullmatch(opt.target, n) for n in (name, name.split(".", 1)[-1], based)):
            return Leftover(name, f"expected: {opt.reason}", True, shape, fill=opt.fill)
    return Leftover(
        name,
        "no source tensor: it would keep its random initialisation",
        False,
        shape,
        suggestion=_suggest(name, shape, leftovers),
    )


def _suggest(name: str, shape: tuple[int, ...], pool: dict[str, tuple[int, ...]]) -> str | None:
    candidates = list(pool.items())
    # Across sides a kernel may be transposed: the same dimensions in any order count as the same shape.
    index = closest(name, shape, candidates, same_shape=lambda a, b: sorted(a) == sorted(b))
    if index is None:
        return None
    pick = candidates[index][0]
    return f"did you mean `{pick}` {list(pool[pick])}?"


def _pt_name(source: str, proposals: dict[str, list[tuple[str, Transform]]]) -> str:
    return proposals[source][0][0] if source in proposals else source


def _flag_suspicious(plan: Plan, model: list[TensorRecord], domain: _Domain) -> None:
    if not model:
        return
    unmatched = sum(not x.expected for x in plan.unused if x.kind == "model")
    if unmatched <= len(model) * _SUSPICIOUS_FRACTION:
        return
    hint = _prefix_hint(domain, len(plan.matched))
    plan.notes.insert(
        0,
        f"suspicious: {unmatched} of {len(model)} model tensors unmatched"
        + (f": prefix mismatch? try {hint}" if hint else ": is this the right target class or rule pack?"),
    )


def _prefix_hint(domain: _Domain, matched: int) -> str | None:
    """The ``--strip-prefix``/``--add-prefix`` flag that would line up the most names, each with the shape its target
    expects, applied as the flag is (names the target has stay as they are); None unless it beats the ``matched``
    the plan already has: advice that would not match is no advice."""
    targets = domain.targets

    def score(rename: Callable[[str], str]) -> int:
        return sum(
            shape is not None and targets.get(n if n in targets else rename(n)) == shape for n, shape in domain.names
        )

    firsts = Counter(n.split(".", 1)[0] + "." for n, _ in domain.names if "." in n)
    target_firsts = Counter(n.split(".", 1)[0] + "." for n in targets if "." in n)
    best: tuple[int, str | None] = (matched, None)
    for prefix, _ in firsts.most_common(3):
        s = score(_stripper(prefix))
        if s > best[0]:
            best = (s, f"--strip-prefix {prefix}")
    for prefix, _ in target_firsts.most_common(3):
        s = score(_adder(prefix))
        if s > best[0]:
            best = (s, f"--add-prefix {prefix}")
    return best[1]
