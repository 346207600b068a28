"""What DistributedDataParallel will do with a model, predicted from the usage recorded per step and per rank.

Pure logic (no torch): from which trainable parameters a gradient reached at each step of each rank, and whether
the model runs blocks under ``torch.utils.checkpoint`` (reentrant or not), each DDP configuration
(``find_unused_parameters`` x ``static_graph`` x reentrant checkpointing) gets an outcome: ``runs``, ``raises``
(at which step, with the start of DDP's own message) or ``hangs``.  The rules are DDP's reducer's, each one
reproduced under real DDP (2 gloo ranks) in ``tests/pt_side/test_unused_predict.py``:

* ``find_unused_parameters=False``: a step that leaves a trainable parameter without a gradient on some rank
  leaves the reduction unfinished; that rank raises at the next step's forward.
* ``static_graph=True`` (with either ``find_unused_parameters``): the first step fixes the set of parameters
  that get gradients; a parameter used later but not then raises at that step ("Your training graph has
  changed"), one used then but missed later raises at the next step.
* ``find_unused_parameters=True`` with reentrant checkpointing: the forward's graph traversal cannot see the
  parameters inside a reentrant checkpoint (its backward recomputes them), marks them unused, and their
  gradients then arrive a second time: DDP raises at step 0's backward.
* ``find_unused_parameters=True`` otherwise runs, at the price of one traversal of the autograd graph per step.

Step numbers count from 0; a step equal to the number of steps recorded is the forward of the step after them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.core.unused.report import module_expression

MISSED = (
    "Expected to have finished reduction in the prior iteration before starting a new one. This error indicates "
    "that your module has parameters that were not used in producing loss."
)
STATIC_MISSED = (
    "Expected to have finished reduction in the prior iteration before starting a new one. This error indicates "
    "that your training graph has changed in this iteration"
)
STATIC_NEWLY_USED = (
    "Your training graph has changed in this iteration, e.g., one parameter is unused in first iteration, but "
    "then got used in the second iteration."
)
MARKED_TWICE = "Expected to mark a variable ready only once."

# Cheapest first: plain DDP; static_graph (no per-step traversal); find_unused_parameters (one traversal a step).
_COST_ORDER = ((False, False), (False, True), (True, True), (True, False))


@dataclass(frozen=True)
class Prediction:
    """One DDP configuration's outcome; ``parameters``: the ones that cause it (none when it runs)."""

    find_unused_parameters: bool
    static_graph: bool
    reentrant_checkpointing: bool | None  # None: the model does not use torch.utils.checkpoint
    outcome: str  # "runs", "raises" or "hangs"
    step: int | None = None
    rank: int | None = None
    message: str | None = None
    parameters: tuple[str, ...] = ()

    @property
    def config(self) -> tuple[bool, bool, bool | None]:
        return self.find_unused_parameters, self.static_graph, self.reentrant_checkpointing

    def to_json(self) -> dict[str, Any]:
        return {
            "find_unused_parameters": self.find_unused_parameters,
            "static_graph": self.static_graph,
            "reentrant_checkpointing": self.reentrant_checkpointing,
            "outcome": self.outcome,
            "step": self.step,
            "rank": self.rank,
            "message": self.message,
            "parameters": list(self.parameters),
        }


@dataclass(frozen=True)
class Recommendation:
    """The cheapest configuration that runs; ``code_change``: what that configuration needs changed in the code
    (``use_reentrant=False``), or ``None``; ``alternative``: the code change after which plain DDP
    (both flags off) runs, where one is needed."""

    find_unused_parameters: bool
    static_graph: bool
    reentrant_checkpointing: bool | None
    code_change: str | None
    alternative: str | None
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "find_unused_parameters": self.find_unused_parameters,
            "static_graph": self.static_graph,
            "reentrant_checkpointing": self.reentrant_checkpointing,
            "code_change": self.code_change,
            "alternative": self.alternative,
            "why": self.why,
        }


def predict(
    passes: Mapping[int, Sequence[frozenset[str] | set[str]]],
    trainable: Sequence[str],
    checkpointing: str | None = None,
) -> list[Prediction]:
    """Each DDP configuration's outcome.

    ``passes[rank][step]``: the trainable parameters a gradient reached at that step; ``trainable``: every
    parameter DDP reduces (``requires_grad``), in order; ``checkpointing``: ``"reentrant"``, ``"non_reentrant"``
    or ``None`` (the model's own use of ``torch.utils.checkpoint``; the usage recorded is assumed the same with
    the other mode).
    """
    own = checkpointing == "reentrant"
    modes: tuple[bool | None, ...] = (None,) if checkpointing is None else (own, not own)
    out = []
    for find_unused in (False, True):
        for static in (False, True):
            for reentrant in modes:
                out.append(_one(passes, trainable, find_unused, static, reentrant))
    return out


def _one(
    passes: Mapping[int, Sequence[frozenset[str] | set[str]]],
    trainable: Sequence[str],
    find_unused: bool,
    static: bool,
    reentrant: bool | None,
) -> Prediction:
    order = {name: i for i, name in enumerate(trainable)}
    everything = set(trainable)
    events: list[tuple[int, int, str, tuple[str, ...]]] = []  # (step, rank, message, parameters)
    for rank, steps in sorted(passes.items()):
        if static:
            first = set(steps[0]) & everything if steps else everything
            for s, used in enumerate(steps[1:], start=1):
                new, missed = (set(used) & everything) - first, first - set(used)
                if new:
                    events.append((s, rank, STATIC_NEWLY_USED, _sorted(new, order)))
                    break
                if missed:
                    events.append((s + 1, rank, STATIC_MISSED, _sorted(missed, order)))
                    break
        elif find_unused:
            if reentrant and steps:
                events.append((0, rank, MARKED_TWICE, ()))
        else:
            for s, used in enumerate(steps):
                missed = everything - set(used)
                if missed:
                    events.append((s + 1, rank, MISSED, _sorted(missed, order)))
                    break
    if not events:
        return Prediction(find_unused, static, reentrant, "runs")
    step, rank, message, names = min(events)
    return Prediction(find_unused, static, reentrant, "raises", step, rank, message, names)


def _sorted(names: set[str], order: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: order.get(n, len(order))))


def recommend(
    predictions: Sequence[Prediction],
    checkpointing: str | None,
    *,
    never: Sequence[str] = (),
    varying: Sequence[str] = (),
) -> Recommendation | None:
    """The cheapest configuration that runs with the code as written, else the cheapest after a code change
    (``use_reentrant=False``); ``never``/``varying``: the module scopes of the trainable parameters no step /
    some steps (or ranks) reach, for the alternative code change that makes plain DDP run.  ``None`` when
    nothing is predicted."""
    by_config = {p.config: p for p in predictions}
    own: bool | None = None if checkpointing is None else checkpointing == "reentrant"
    alternative = _alternative(never, varying)
    for reentrant, change in ((own, None), (False, "use_reentrant=False in every torch.utils.checkpoint call")):
        for find_unused, static in _COST_ORDER:
            p = by_config.get((find_unused, static, reentrant))
            if p is None or p.outcome != "runs":
                continue
            if reentrant is False and own is not True and change:
                continue  # the second pass is only for a model that runs reentrant checkpoints
            why = _why(find_unused, static, change, predictions)
            plain = not find_unused and not static
            return Recommendation(find_unused, static, reentrant, change, None if plain else alternative, why)
    return None


def _why(find_unused: bool, static: bool, change: str | None, predictions: Sequence[Prediction]) -> str:
    if not find_unused and not static:
        return "every trainable parameter gets a gradient at every step on every rank: plain DDP runs"
    if static and not find_unused:
        return (
            "the set of parameters that get gradients is the same at every step: static_graph=True runs without "
            "the per-step graph traversal of find_unused_parameters"
        )
    lead = "with " + change + ", " if change else ""
    return (
        lead + "the parameters that get gradients change with the step or the rank: find_unused_parameters=True "
        "marks the missing ones ready every step (one extra traversal of the autograd graph per step)"
    )


def _alternative(never: Sequence[str], varying: Sequence[str]) -> str | None:
    """The code change after which every trainable parameter gets a gradient at every step."""
    parts = []
    if never:
        scopes = ", ".join(_models(never))
        parts.append(f"freeze or delete what no step uses ({scopes}.requires_grad_(False))")
    if varying:
        touched = " + ".join(f"sum(p.sum() for p in {m}.parameters())" for m in _models(varying))
        parts.append(
            "touch what some steps or ranks skip with a zero-weighted term every step "
            f"(loss = loss + 0.0 * ({touched})), or detach/freeze that branch where it should not train"
        )
    return "; ".join(parts) or None


def _models(scopes: Sequence[str]) -> list[str]:
    """Module scopes as the expressions that reach them: ``vision`` -> ``model.vision``."""
    return list(dict.fromkeys(module_expression(s) for s in scopes))


# --- FSDP: no find_unused_parameters; each unit's gradients are reduce-scattered by every rank together ---

FSDP_SIZE_MISMATCH = "Received data size doesn't match expected size"


@dataclass(frozen=True)
class FsdpPrediction:
    """What FSDP does with the gradients recorded: ``runs``, ``hangs`` at ``step`` (``rank``: one that left a
    unit without any gradient; ``parameters``: that unit's parameters which other ranks reached) or ``raises``
    (``fully_shard``: ranks that reduce different parameters of one group)."""

    wrapper: str  # "FullyShardedDataParallel" or "fully_shard"
    outcome: str
    step: int | None
    rank: int | None
    parameters: tuple[str, ...]
    advice: str

    def to_json(self) -> dict[str, Any]:
        return {
            "wrapper": self.wrapper,
            "outcome": self.outcome,
            "step": self.step,
            "rank": self.rank,
            "parameters": list(self.parameters),
            "advice": self.advice,
        }


def predict_fsdp(
    passes: Mapping[int, Sequence[frozenset[str] | set[str]]],
    trainable: Sequence[str],
    unit_of: Mapping[str, str],
    wrapper: str,
) -> FsdpPrediction:
    """FSDP's outcome from the usage per step and rank and the FSDP unit of each parameter (``unit_of``: the
    name of the wrapped module, "" for the root).

    Reproduced under real FSDP (2 gloo ranks) in ``tests/pt_side/test_watch_wrappers.py``: a unit that a
    backward pass gives gradients on some ranks and none on another hangs at that step (the ranks with
    gradients wait in the unit's reduce-scatter, the other one in the next forward's all-gather).  A parameter
    that gets no gradient while its unit gets some: ``FullyShardedDataParallel`` reduces the unit's whole flat
    gradient (a zero for it, so momentum and weight decay still move it); ``fully_shard`` leaves its gradient
    ``None`` on every rank alike (no rank reaching it at that step), but ranks that reduce different parameters
    of one group send reduce-scatters of different sizes (gloo aborts the process: "Received data size doesn't
    match expected size").
    """
    order = {name: i for i, name in enumerate(trainable)}
    units: dict[str, set[str]] = {}
    for name in trainable:
        units.setdefault(unit_of.get(name, ""), set()).add(name)
    events: list[tuple[int, int, str, tuple[str, ...]]] = []  # (step, rank, outcome, parameters)
    steps = max((len(ps) for ps in passes.values()), default=0)
    for s in range(steps):
        for members in units.values():
            reached = {r: frozenset(members & set(ps[s])) for r, ps in passes.items() if s < len(ps)}
            some = set().union(*reached.values())
            idle = [r for r, names in reached.items() if not names]
            if some and idle:
                events.append((s, idle[0], "hangs", _sorted(some, order)))
            elif wrapper == "fully_shard" and len(set(reached.values())) > 1:
                common = frozenset.intersection(*reached.values())
                odd = next(r for r, names in reached.items() if names != reached[min(reached)])
                events.append((s, odd, "raises", _sorted(some - common, order)))
    if events:
        step, rank, outcome, names = min(events)
        what = (
            f"rank {rank} leaves an FSDP unit without any gradient at step {step} while other ranks reach "
            f"{names[0]}: the others wait in the unit's reduce-scatter"
            if outcome == "hangs"
            else f"the ranks reduce different parameters of one fully_shard group at step {step} ({names[0]} on "
            f"some only): the reduce-scatter sizes differ ({FSDP_SIZE_MISMATCH!r} under gloo)"
        )
        return FsdpPrediction(
            wrapper,
            outcome,
            step,
            rank,
            names,
            what + "; FSDP has no find_unused_parameters: touch that module's parameters with a zero-weighted "
            "term every step on every rank (loss = loss + 0.0 * sum(p.sum() for p in <module>.parameters()))",
        )
    partial = {n for ps in passes.values() for used in ps for n in set(trainable) - set(used)}
    if wrapper == "FullyShardedDataParallel" and partial:
        advice = (
            "runs: FSDP has no find_unused_parameters and needs none here; a parameter without a gradient gets a "
            "zero gradient from its unit's flat gradient, so momentum and weight decay still move it: freeze "
            "(requires_grad_(False)) what should not train"
        )
    elif partial:
        advice = (
            "runs: FSDP has no find_unused_parameters and needs none here; a parameter no rank reaches at a step "
            "keeps grad None there, on every rank alike (the optimizer skips it)"
        )
    else:
        advice = "runs: every trainable parameter gets a gradient at every step on every rank"
    return FsdpPrediction(wrapper, "runs", None, None, (), advice)
