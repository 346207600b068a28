"""How the matcher lines PyTorch-side names up with the target's: the prefix options (``--strip-prefix``,
``--add-prefix``), then the automatic renaming a base model's prefix or legacy names suggest; and, when most names
stay unmatched, the prefix flag that would line up more (:func:`flag_suspicious`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.plan import Plan, TargetSpec

_SUSPICIOUS_FRACTION = 0.5


@dataclass(frozen=True)
class Domain:
    """What ``--strip-prefix``/``--add-prefix`` act on: the PyTorch-side names (with the shapes they would have on
    the target) and the PyTorch-side names and shapes they are aligned to; a prefix hint is tried on these."""

    names: list[tuple[str, tuple[int, ...] | None]]  # None: the transform does not apply to the source's shape
    targets: dict[str, tuple[int, ...]]


def aligner(
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
class SourceNames:
    """A PyTorch source's names as the user's prefix options give them, so that the pack's layout ties, copies,
    buffers and heads (written in the target class's names) see the names the matcher aligned, not the file's."""

    aligned: Callable[[str], str]  # source name -> the name the pack's patterns are written for
    back: dict[str, str]  # that name -> the source name (a name the source has as it is wins)

    @classmethod
    def of(cls, ckpt: Checkpoint, strip_prefix: str | None, add_prefix: str | None) -> SourceNames:
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


def flag_suspicious(plan: Plan, model: list[TensorRecord], domain: Domain) -> None:
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


def _prefix_hint(domain: Domain, matched: int) -> str | None:
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
