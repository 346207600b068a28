"""Tensors the target stores once, for the matcher: a tie the target makes whose two sources must hold one value
(:func:`check_ties`), and source tensors another written tensor stands for (:func:`tie_candidates`,
:func:`stored_once`), each settled by one torch storage or by comparing bytes."""

from __future__ import annotations

import numpy as np

from bridge.core.align import SourceNames
from bridge.core.model import Checkpoint
from bridge.core.packs import RulePack
from bridge.core.plan import Leftover, Plan, TargetSpec
from bridge.core.transforms import Transform


def check_ties(
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
        if frozenset((copy, owner)) in same_storage or same_values(ckpt, copy, owner):
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


def same_values(ckpt: Checkpoint, a: str, b: str) -> bool:
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


def tie_candidates(ckpt: Checkpoint, pack: RulePack, spec: TargetSpec, names: SourceNames) -> dict[str, list[str]]:
    """Source names another source tensor may stand for on the target side: name -> candidate owners.

    Names sharing one torch storage (settled from metadata), and, for a PyTorch source, the ties of
    the pack's class layouts (a decoder tied to the word embeddings), also under the names a source
    saved without the pack's base-model prefix carries, each read back through the user's prefix options.
    A claim, until :func:`stored_once` checks it.
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


def stored_once(
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
