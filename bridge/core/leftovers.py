"""Why a tensor stays, for the matcher: each unused source tensor and each target tensor without a source is
explained from the pack's matching parts (heads dropped, optional, copies, incompatible, buffers) or flagged a gap."""

from __future__ import annotations

import re

import numpy as np

from bridge.core.align import SourceNames
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.naming import closest
from bridge.core.packs import Buffer, Head, RulePack
from bridge.core.plan import Leftover, TargetSpec
from bridge.core.ties import same_values

NON_MODEL = {
    "optimizer": "optimizer state{slot}: not part of the model, dropped",
    "counter": "training counter: dropped",
    "metric": "a compiled metric's running total/count, not a weight: dropped",
    "rng": "random-number state of a Dropout/noise layer (seed generator), not a weight: dropped",
    "metadata": "checkpoint bookkeeping: dropped",
}


def explain_unused(
    ckpt: Checkpoint,
    r: TensorRecord,
    target_name: str | None,
    spec: TargetSpec,
    pack: RulePack,
    filled: dict[str, str],
    open_targets: dict[str, tuple[int, ...]],
    tie: tuple[str, str | None] | None,
    names: SourceNames,
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
            if same_values(ckpt, r.name, owner):
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
    names: SourceNames,
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


def _keeper(ckpt: Checkpoint, head: Head, spec: TargetSpec, pack: RulePack, names: SourceNames) -> str | None:
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
    integral = value.dtype.kind in "iu"  # positions are integers; a float buffer (a zero parameter) stays float
    if value.shape == rebuilt.shape and integral == (rebuilt.dtype.kind in "iu") and np.array_equal(value, rebuilt):
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


def explain_missing(
    name: str, shape: tuple[int, ...], pack: RulePack, leftovers: dict[str, tuple[int, ...]]
) -> Leftover:
    based = f"{pack.pt.base_prefix}.{name}" if pack.pt.base_prefix else name  # the target is the base model
    for opt in pack.matching.optional:
        if any(re.fullmatch(opt.target, n) for n in (name, name.split(".", 1)[-1], based)):
            fill = pack.fill_of(name)
            said = fill.describe() if fill is not None else opt.fill if isinstance(opt.fill, str) else None
            return Leftover(name, f"expected: {opt.reason}", True, shape, fill=said)
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
