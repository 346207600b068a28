"""The matcher: a source checkpoint + a target spec + a rule pack -> a validated :class:`Plan`.

Reads metadata only.  Rules map TF-side names to PyTorch-side names; for a
PyTorch source and a TF target the TF layout is enumerated, mapped, and each
transform inverted.  Names are then aligned (a base-model prefix added or
stripped), shapes checked after the transform, and every leftover explained.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.core.align import Domain, SourceNames, aligner, flag_suspicious
from bridge.core.leftovers import NON_MODEL, explain_missing, explain_unused
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.packs import Rule, RulePack
from bridge.core.plan import Leftover, Match, Mismatch, Plan, TargetSpec, Tie
from bridge.core.ties import check_ties, stored_once, tie_candidates
from bridge.core.transforms import IDENTITY, Transform


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
            plan.unused.append(Leftover(r.name, NON_MODEL[r.kind].format(slot=slot), True, r.shape, r.kind))

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
    check_ties(ckpt, spec, plan, filled, how)
    open_targets = {n: t.shape for n, t in spec.tensors.items() if n not in filled and t.tied_to is None}
    names = SourceNames.of(ckpt, strip_prefix, add_prefix)
    source_ties = tie_candidates(ckpt, pack, spec, names)
    written = {m.source for m in plan.matched}
    keepers: dict[str, str | None] = {}  # head label -> the class that keeps it (asked once per head)
    for r, proposed in unplaced:
        tie = stored_once(ckpt, r.name, source_ties, written)
        plan.unused.append(explain_unused(ckpt, r, proposed, spec, pack, filled, open_targets, tie, names, keepers))

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
        plan.missing.append(explain_missing(name, t.shape, pack, leftover_sources))

    flag_suspicious(plan, model, domain)
    return plan


def _propose(
    ckpt: Checkpoint,
    model: list[TensorRecord],
    spec: TargetSpec,
    rules: tuple[Rule, ...],
    plan: Plan,
    strip_prefix: str | None,
    add_prefix: str | None,
) -> tuple[dict[str, list[tuple[str, Transform]]], Domain]:
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
        align = aligner([t for hits in mapped.values() for t, _ in hits], spec, plan, strip_prefix, add_prefix)
        shapes = {r.name: r.shape for r in model}
        names = [(t, tr.shape(shapes[s])) for s, hits in mapped.items() for t, tr in hits]
        domain = Domain(names, {n: t.shape for n, t in spec.tensors.items()})
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
        align = aligner([r.name for r in model], lookup, plan, strip_prefix, add_prefix)
        domain = Domain([(r.name, r.shape) for r in model], pt_shapes)
        return {r.name: reverse[align(r.name)] for r in model if align(r.name) in reverse}, domain
    align = aligner([r.name for r in model], spec, plan, strip_prefix, add_prefix)
    domain = Domain([(r.name, r.shape) for r in model], {n: t.shape for n, t in spec.tensors.items()})
    return {r.name: [(align(r.name), IDENTITY)] for r in model}, domain


def _pt_name(source: str, proposals: dict[str, list[tuple[str, Transform]]]) -> str:
    return proposals[source][0][0] if source in proposals else source
