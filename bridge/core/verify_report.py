"""What ``bridge verify`` reports: values compared bit for bit, forward outputs compared at ``atol``, the verdict.

The forward checks (one per family, named by each pack's ``forward_check``) fill a :class:`VerifyReport` with
:meth:`VerifyReport.compare_output`; :class:`ForwardContext` is what they are given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.model import Checkpoint
from bridge.core.plan import Plan


@dataclass(frozen=True)
class OutputDiff:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool


@dataclass(frozen=True)
class ForwardCause:
    """A forward difference over ``atol`` traced to one cause: with that cause removed (the same math on both
    sides), every output agreed within ``atol``."""

    cause: str  # "activation"
    detail: str  # what differs between the two sides, in words
    matched_max_abs: float  # the largest output difference with the cause removed
    accept_atol: float  # the --atol that accepts the difference as it is
    fix: str  # what to change so that both sides compute the same


def differences(expected: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """Max abs and max rel difference of ``got`` from ``expected``."""
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    scale = np.maximum(np.abs(expected.astype(np.float64)), 1e-6)
    return (float(diff.max()) if diff.size else 0.0), (float((diff / scale).max()) if diff.size else 0.0)


@dataclass
class VerifyReport:
    """What ``verify`` proved: how many tensors were compared and how many are bit-exact after their transform
    (``value_failures`` names the others), each forward output's max abs / max rel difference, and, when a forward
    difference has a known cause (``explained``), that cause and the way forward.  ``ok`` when every value is
    bit-exact and every output within ``atol``; a :class:`~bridge.core.reports.Report`."""

    source: str
    out: str
    atol: float
    values_compared: int = 0
    values_equal: int = 0
    value_failures: list[str] = field(default_factory=list)
    outputs: list[OutputDiff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explained: ForwardCause | None = None  # the forward fails at atol, all of it from this cause
    # what the plan between source and output leaves uncovered (a convert run with --allow-gaps): not a PASS
    plan_gaps: list[str] = field(default_factory=list)
    # every gap is a head a target class without it dropped: dropped on purpose, ``--dropped-heads`` says so
    heads_only: bool = False
    # the plan's guesses (:class:`~bridge.core.plan.Assumption`); a passing forward comparison settles them
    assumptions: list[str] = field(default_factory=list)

    def compare_output(self, name: str, expected: np.ndarray, got: np.ndarray) -> None:
        """Record one forward output: max abs / max rel difference of ``got`` from ``expected``, pass at ``atol``."""
        max_abs, max_rel = differences(expected, got)
        self.outputs.append(OutputDiff(name, tuple(got.shape), max_abs, max_rel, max_abs <= self.atol))

    def fail_output(self, name: str, shape: tuple[int, ...]) -> None:
        """Record an output that cannot be compared (the two sides' shapes differ): a failure at any ``atol``."""
        self.outputs.append(OutputDiff(name, shape, float("inf"), float("inf"), False))

    @property
    def ok(self) -> bool:
        return (
            self.values_compared > 0
            and not self.value_failures
            and not self.plan_gaps
            and all(o.ok for o in self.outputs)
        )

    @property
    def exit_code(self) -> int:
        # An explained difference still fails: the two models do compute different things.
        return 0 if self.ok else 1

    @property
    def forward_status(self) -> str:
        """``none`` (no forward compared), ``pass``, ``explained`` (over atol, with values bit-exact, and all of
        it from one cause the report names), or ``fail``."""
        if not self.outputs:
            return "none"
        if all(o.ok for o in self.outputs):
            return "pass"
        return "explained" if self.explained is not None and not self.value_failures else "fail"

    @property
    def assumed(self) -> list[str]:
        """The guesses a PASS rests on: the plan's, unless every forward output agreed (the guess computed the same)."""
        return [] if self.forward_status == "pass" else self.assumptions

    def verdict(self) -> str:
        """The verdict line: PASS, FAIL, or FAIL with its cause and the way forward; a guess says it is one."""
        if self.ok:
            marks = [] if self.outputs else ["values only: no forward pass was compared"]
            marks += [f"assumed: {'; '.join(self.assumed)}"] if self.assumed else []
            return "PASS" + (f" ({'; '.join(marks)})" if marks else "")
        why = self.explained
        if self.plan_gaps:
            uncovered = f"FAIL: the output does not cover the source ({len(self.plan_gaps)} gap(s) in the plan)"
            if self.heads_only:
                uncovered += "; if these heads were dropped on purpose (convert --target CLASS), pass --dropped-heads"
            return uncovered
        if why is None or self.forward_status != "explained":
            return "FAIL"
        worst = max(o.max_abs for o in self.outputs)
        return (
            f"FAIL (explained): values bit-exact; the forward differs by up to {worst:.1e} (atol {self.atol:g}), "
            f"all of it from the {why.cause}: {why.detail}; with matched {why.cause}s the outputs agree to "
            f"{why.matched_max_abs:.1e}. To accept the difference: --atol {why.accept_atol:g}; to remove it, "
            f"{why.fix}"
        )

    def to_json(self) -> dict[str, Any]:
        forward: dict[str, Any] = {"status": self.forward_status}
        if self.forward_status == "explained" and self.explained is not None:
            forward.update(asdict(self.explained))
        return {
            "ok": self.ok,
            "source": self.source,
            "out": self.out,
            "atol": self.atol,
            "values": {
                "compared": self.values_compared,
                "bit_exact": self.values_equal,
                "failures": self.value_failures,
            },
            "plan_gaps": self.plan_gaps,
            "outputs": [asdict(o) for o in self.outputs],
            "forward": forward,
            "notes": self.notes,
            "assumed": self.assumed,
        }


@dataclass(frozen=True)
class ForwardContext:
    """What a pack's forward check gets besides the report: both sides opened, the plan verified, and how to run.

    ``target`` / ``source_model`` are ``file.py:factory`` specs of the models on the output's / the source's side
    (structural packs); ``strip_prefix`` / ``add_prefix`` as given to ``convert``.
    """

    src: Checkpoint
    dst: Checkpoint
    to: str  # "pytorch" or "tensorflow": the output's side
    source: Path
    out: Path
    plan: Plan
    seed: int
    batch: int
    seq_len: int
    target: str | None = None
    source_model: str | None = None
    strip_prefix: str | None = None
    add_prefix: str | None = None
