"""The mapping plan: computed before any byte moves, printed by ``check``, executed by ``convert``.

Every item is plain data.  ``Plan.ok`` is the verdict: every target tensor that
needs a source has one, nothing is mismatched, and no leftover changes the math.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.core.packs import RulePack
    from bridge.core.pad_rows import PadRow


class Assumption(str):
    """A note that is a guess the plan rests on (a module's kind told from its names and shapes alone, where two
    kinds look the same): a report marks a verdict that rests on one (``assumed``), so a guess never reads as a
    proven result."""

    __slots__ = ()


@dataclass(frozen=True)
class TargetTensor:
    """A tensor the target expects; ``tied_to`` names the tensor whose storage it shares."""

    name: str
    shape: tuple[int, ...]
    dtype: str | None = None
    tied_to: str | None = None


@dataclass(frozen=True)
class TargetModule:
    """A parameter-bearing module of a PyTorch target, in registration order (structural matching).

    ``kind`` is one word of the Keras pack's vocabulary (``linear``, ``conv2d``, ``depthwise_conv2d``,
    ``batch_norm``, ``layer_norm``, ``embedding``, ``lstm``, ``gru``) or ``other``; ``facts`` holds
    what changes the math without being a tensor (``eps``, ``num_layers``, ``bidirectional``).
    """

    name: str
    kind: str
    cls: str
    facts: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass
class TargetSpec:
    """What the target side expects: names, shapes, ties, and where that knowledge came from."""

    framework: str  # "pytorch" or "tensorflow"
    description: str
    tensors: dict[str, TargetTensor]
    class_name: str | None = None
    config: dict[str, Any] | None = None
    base_prefix: str | None = None  # transformers' base_model_prefix, for automatic alignment
    modules: list[TargetModule] | None = None  # a built PyTorch model's modules (None: names only)
    metadata: dict[str, Any] = field(default_factory=dict)  # layout facts a writer needs (Keras 3 groups)
    # The user named this target (a class, a reference, a factory): a source head it lacks is dropped on purpose.
    # False where bridge picked it (the default class, a layout laid out for the source's heads).
    chosen: bool = True


@dataclass(frozen=True)
class Match:
    source: str
    target: str
    transform: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Leftover:
    """An unused source tensor or a missing target tensor, with a verdict a person understands."""

    name: str
    reason: str
    expected: bool
    shape: tuple[int, ...] = ()
    kind: str = "model"
    suggestion: str | None = None
    # "zeros": a missing target that convert writes as zeros; else how convert computes it (``Fill.describe``)
    fill: str | None = None
    head: str | None = None  # the source head this tensor belongs to, which the target lacks: not in the output


@dataclass(frozen=True)
class Mismatch:
    source: str
    target: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    transform: str
    detail: str


@dataclass(frozen=True)
class Tie:
    name: str
    tied_to: str


@dataclass(frozen=True)
class UserRuleUse:
    """A rule the user added (``--map``, ``--rules FILE``) and how many TF-side names its regex matched."""

    origin: str  # "--map" or the rule file's path
    index: int  # 1-based, within its origin
    source: str
    matched: int


@dataclass
class Plan:
    """What ``check`` computes before a byte moves and ``convert`` executes: every source tensor and target tensor
    accounted for.

    ``matched`` pairs a source with a target through a named transform; ``unused`` (source tensors no target takes)
    and ``missing`` (target tensors no source fills) each carry a reason and whether that is expected (a dropped head,
    optimizer state, a newly initialised classifier) or a gap; ``mismatched`` are shapes that disagree after the
    transform; ``tied`` are target tensors stored once for another.  ``ok`` when there is no gap and no mismatch;
    a :class:`~bridge.core.reports.Report`.
    """

    source_path: str
    source_format: str
    pack: str
    target: TargetSpec
    matched: list[Match] = field(default_factory=list)
    unused: list[Leftover] = field(default_factory=list)
    missing: list[Leftover] = field(default_factory=list)
    mismatched: list[Mismatch] = field(default_factory=list)
    tied: list[Tie] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_model_tensors: int = 0
    user_rules: list[UserRuleUse] = field(default_factory=list)
    # Both sides in one framework: names are compared as they are (aligned by prefix), no rule maps them; the pack
    # only lays out a class it knows and explains leftovers.
    names_as_is: bool = False
    pad_rows: list[PadRow] = field(default_factory=list)  # the word-embedding table's padding row (the pack's)
    # The pack itself (a rule file's own, or one bound to this source and target), for the writers.
    rule_pack: RulePack | None = field(default=None, repr=False, compare=False)

    @property
    def gaps(self) -> list[Leftover]:
        return [x for x in self.unused + self.missing if not x.expected]

    @property
    def assumed(self) -> list[str]:
        """The guesses among the notes (:class:`Assumption`)."""
        return [str(n) for n in self.notes if isinstance(n, Assumption)]

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.gaps

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def rules_label(self) -> str:
        """What matched the names, for a report's header: the pack's rules, or the names themselves."""
        if self.names_as_is:
            pack = self.rule_pack
            laid_out = pack is not None and self.target.class_name in pack.pt.targets  # the pack's own class table
            role = "lays out the target and explains leftovers" if laid_out else "explains leftovers"
            return f"no rules: names compared as they are; {self.pack} {role}"
        return f"rules: {self.pack}"

    def coverage(self) -> dict[str, float]:
        tied = {t.name for t in self.tied}
        # a tie's copy counts where it holds the value for its source (a source filled from its copy)
        needing = {
            n for n, t in self.target.tensors.items() if n not in tied and (t.tied_to is None or t.tied_to in tied)
        }
        # A source that also stores tied tensors fills them too; count what needed a source.
        filled = len(needing & {m.target for m in self.matched})
        return {
            "source_consumed": len({m.source for m in self.matched}) / self.source_model_tensors
            if self.source_model_tensors
            else 1.0,  # a split source (a GRU's bias rows) counts once
            "target_filled": filled / len(needing) if needing else 1.0,
        }

    def to_json(self) -> dict[str, Any]:
        def items(rows: list[Any]) -> list[dict[str, Any]]:
            out = []
            for row in rows:
                d = asdict(row)
                out.append({k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if v is not None})
            return out

        payload = {
            "ok": self.ok,
            "source": {"path": self.source_path, "format": self.source_format},
            "target": {
                "framework": self.target.framework,
                "description": self.target.description,
                "class": self.target.class_name,
                "config": self.target.config,
            },
            "rules": self.pack,
            "coverage": self.coverage(),
            "matched": items(self.matched),
            "unused": items(self.unused),
            "missing": items(self.missing),
            "mismatched": items(self.mismatched),
            "tied": items(self.tied),
            "notes": self.notes,
        }
        if self.user_rules:  # only with --map/--rules, so that plain plans keep their shape
            payload["user_rules"] = items(self.user_rules)
        if self.names_as_is:
            payload["rules_applied"] = False
        if self.assumed:  # only where the plan rests on a guess
            payload["assumed"] = self.assumed
        if self.pad_rows:  # only for a family that declares its word-embedding table
            payload["pad_rows"] = [row.to_json() for row in self.pad_rows]
        return payload
