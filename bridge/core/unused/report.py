"""The `bridge unused` report: which parameters/variables a model never uses, why, and how to fix it.

Plain report types and the pure logic that attaches one fix per folded scope; the framework sides
(``pt_side.unused.trace``, ``tf_side.unused.trace``, ``tf_side.unused.meta_graph``) fill them in.

Kinds:

* ``never_read``  -- the parameter never entered an op in the forward pass;
* ``no_gradient`` -- it was read, but the loss does not depend on it (grad is None);
* ``frozen``      -- not trainable (``requires_grad=False`` / ``trainable=False``): harmless;
* ``sometimes``   -- reached the loss in some of ``steps`` runs only (layer-drop, data-dependent branches);
* ``rank_dependent`` -- at some step it reached the loss on some ranks and not on others (each rank's own data).

Beside the items, a side that records each step (PyTorch) gives every parameter's ``usage``
(:class:`ParameterUsage`): ``always``, ``never``, ``sometimes`` or ``rank_dependent``, with the steps (and ranks)
on which a gradient reached it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge.core.scopes import fold

if TYPE_CHECKING:
    from bridge.core.unused.predict import FsdpPrediction, Prediction, Recommendation

KINDS = ("never_read", "no_gradient", "frozen", "sometimes", "rank_dependent")
TRAINABLE_KINDS = ("never_read", "no_gradient", "sometimes", "rank_dependent")
USAGES = ("always", "never", "sometimes", "rank_dependent")


@dataclass(frozen=True)
class ParameterUsage:
    """On which steps (and, where recorded, ranks) a gradient reached one parameter.

    ``steps``: the step indices on any rank; ``by_rank``: each rank's own step indices (``None`` for one
    process).  A step is one backward pass, counted from 0 on each rank.
    """

    name: str
    usage: str
    steps: tuple[int, ...]
    by_rank: Mapping[int, tuple[int, ...]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "usage": self.usage, "steps": list(self.steps)}
        if self.by_rank is not None:
            out["ranks"] = [r for r, steps in sorted(self.by_rank.items()) if steps]
            out["steps_by_rank"] = {str(r): list(steps) for r, steps in sorted(self.by_rank.items())}
        return out


def classify_usage(by_rank: Mapping[int, Sequence[int]], passes: Mapping[int, int]) -> str:
    """``always`` / ``never`` / ``sometimes`` / ``rank_dependent`` from each rank's steps with a gradient.

    ``passes``: each rank's number of steps.  ``rank_dependent`` when at some step index some ranks that ran it
    reached the parameter and others did not (what makes DDP's ranks disagree); ``sometimes`` when the ranks
    agree at every step but some steps miss it.
    """
    reached = {r: set(by_rank.get(r, ())) for r in passes}
    if not any(reached.values()):
        return "never"
    if all(len(reached[r]) == n for r, n in passes.items()):
        return "always"
    for step in range(max(passes.values(), default=0)):
        ran = [r for r, n in passes.items() if step < n]
        if len({step in reached[r] for r in ran}) > 1:
            return "rank_dependent"
    return "sometimes"


@dataclass(frozen=True)
class UnusedItem:
    """One parameter (PyTorch) or variable (TensorFlow) that is not fully used."""

    name: str
    scope: str
    kind: str
    hint: str
    numel: int = 0
    shape: tuple[int, ...] = ()
    steps_used: int | None = None  # for ``sometimes``: in how many steps it reached the loss

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope,
            "kind": self.kind,
            "hint": self.hint,
            "numel": self.numel,
            "shape": list(self.shape),
        }
        if self.steps_used is not None:
            out["steps_used"] = self.steps_used
        return out


@dataclass
class UnusedReport:
    """The answer of :func:`find_unused`: items, counts, and (with ``--ddp``) what DDP itself said."""

    framework: str  # "pytorch" or "tensorflow"
    items: list[UnusedItem]
    total_params: int = 0
    total_numel: int = 0
    steps: int = 1
    ddp: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)  # a static graph: the tensors gradients flow from
    parameters: list[ParameterUsage] | None = None  # every parameter's usage, where the side records each step
    ranks: int | None = None  # ranks recorded apart (``steps`` is then the steps of all of them together)
    checkpointing: str | None = None  # "reentrant" / "non_reentrant": the model's torch.utils.checkpoint calls
    predictions: list[Prediction] | None = None  # each DDP configuration's outcome (bridge.core.unused.predict)
    recommended: Recommendation | None = None
    fsdp: FsdpPrediction | None = None  # under FSDP, in place of the DDP predictions
    cost: dict[str, Any] | None = None  # seconds per step with find_unused_parameters False / True, and the ratio

    def usage_of(self) -> dict[str, ParameterUsage]:
        return {p.name: p for p in self.parameters or ()}

    def by_kind(self, kind: str) -> list[UnusedItem]:
        return [item for item in self.items if item.kind == kind]

    @property
    def trainable_unused(self) -> list[UnusedItem]:
        return [item for item in self.items if item.kind in TRAINABLE_KINDS]

    @property
    def ok(self) -> bool:
        return not self.trainable_unused

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def summary(self) -> dict[str, Any]:
        counts = {kind: len(self.by_kind(kind)) for kind in KINDS}
        numel = {kind: sum(i.numel for i in self.by_kind(kind)) for kind in KINDS}
        return {
            "framework": self.framework,
            "steps": self.steps,
            "parameters": self.total_params,
            "elements": self.total_numel,
            "counts": counts,
            "elements_by_kind": numel,
            "trainable_unused": len(self.trainable_unused),
            "ok": self.ok,
            "ranks": self.ranks,
            "usage": None
            if self.parameters is None
            else {u: sum(p.usage == u for p in self.parameters) for u in USAGES},
        }

    def groups(self) -> list[tuple[str, str, list[UnusedItem]]]:
        """(kind, folded scope label, items) in a stable order: kinds in KINDS order, scopes first-seen."""
        out: list[tuple[str, str, list[UnusedItem]]] = []
        for kind in KINDS:
            items = self.by_kind(kind)
            if not items:
                continue
            by_scope: dict[str, list[UnusedItem]] = {}
            for item in items:
                by_scope.setdefault(item.scope, []).append(item)
            for label, scopes in fold(by_scope).items():
                out.append((kind, label, [i for s in scopes for i in by_scope[s]]))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "unused": [item.to_json() for item in self.items],
            "groups": [
                {
                    "kind": kind,
                    "scope": label,
                    "parameters": len(items),
                    "numel": sum(i.numel for i in items),
                    "hint": items[0].hint,
                    "names": [i.name for i in items],
                }
                for kind, label, items in self.groups()
            ],
            "summary": self.summary,
            "ddp": self.ddp,
            "notes": list(self.notes),
            "losses": list(self.losses),
            "parameters": None if self.parameters is None else [p.to_json() for p in self.parameters],
            "checkpointing": self.checkpointing,
            "predictions": None if self.predictions is None else [p.to_json() for p in self.predictions],
            "recommended": None if self.recommended is None else self.recommended.to_json(),
            "cost": self.cost,
            "fsdp": None if self.fsdp is None else self.fsdp.to_json(),
        }


def ddp_indices_to_names(model: Any, message: str) -> list[str]:
    """DDP's "Parameter indices which did not receive grad for rank 0: 37 38" -> parameter names.

    DDP counts the parameters that require grad, in ``named_parameters()`` order.
    """
    import re

    m = re.search(r"did not receive grad for rank \d+: ([\d ]+)", message)
    if m is None or not hasattr(model, "named_parameters"):
        return []
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    return [trainable[int(i)] for i in m.group(1).split() if int(i) < len(trainable)]


def scope_of_name(name: str) -> str:
    """``encoder.layer.0.attention.self.query.weight`` -> ``encoder.layer.0.attention.self.query``."""
    for sep in (".", "/"):
        if sep in name:
            return name.rsplit(sep, 1)[0]
    return "(root)"


def module_expression(scope: str, root: str = "model") -> str:
    """The Python that reaches a module: ``bert`` -> ``model.bert``; a path with a ModuleList index or a keyword
    -> ``model.get_submodule("layers.0")``; ``(root)`` or ``""`` -> ``model``."""
    import keyword

    if scope in ("", "(root)"):
        return root
    parts = scope.split(".")
    if all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return root + "".join(f".{p}" for p in parts)
    return f"{root}.get_submodule({scope!r})"


def folded_scopes(items: Iterable[UnusedItem]) -> list[str]:
    return list(fold(dict.fromkeys(i.scope for i in items)))


@dataclass(frozen=True)
class Row:
    """What a framework side found about one parameter, before hints are attached."""

    name: str
    scope: str
    kind: str
    numel: int
    shape: tuple[int, ...] = ()
    steps_used: int | None = None


def make_items(framework: str, rows: list[Row], steps: int) -> list[UnusedItem]:
    """Attach one hint per (kind, folded scope) so that a group reads as one fix."""
    hints: dict[tuple[str, str], str] = {}
    for kind in KINDS:
        scopes = dict.fromkeys(r.scope for r in rows if r.kind == kind)
        for label, members in fold(scopes).items():
            text = hint_for(framework, kind, label, steps)
            for scope in members:
                hints[(kind, scope)] = text
    return [UnusedItem(r.name, r.scope, r.kind, hints[(r.kind, r.scope)], r.numel, r.shape, r.steps_used) for r in rows]


def _is_pooler(scope: str) -> bool:
    return any("pooler" in part.lower() for part in scope.replace("/", ".").split("."))


def hint_for(framework: str, kind: str, scope: str, steps: int) -> str:
    """The fix that fits the cause, for the (folded) ``scope``."""
    if framework == "tf1-graph":
        return _graph_hint(kind, scope)
    torch_side = framework == "pytorch"
    ref = f"model.{scope}" if torch_side and scope != "(root)" else f"`{scope}`"
    freeze = f"{ref}.requires_grad_(False)" if torch_side else f"set trainable=False on {ref}"
    pooler = (
        "the pooler's output is not used by the loss: construct the model without it "
        "(transformers: add_pooling_layer=False, e.g. BertModel(config, add_pooling_layer=False)), "
        if _is_pooler(scope)
        else ""
    )
    if kind == "never_read":
        lead = pooler or f"{ref} never enters an op on this code path: construct the model without it, "
        delete = f"delete it (del {ref})" if torch_side else "delete it"
        return f"{lead}{delete}, or freeze it ({freeze}); if it should be used, route its output into the loss"
    if kind == "no_gradient":
        lead = pooler or f"output of {ref} computed but discarded: "
        return (
            f"{lead}feed it into the loss, or detach/remove the branch "
            f"(or freeze it: {freeze}) so that DDP and optimizers stop waiting for its gradients"
        )
    if kind == "sometimes":
        if torch_side:
            return (
                f"{ref} reaches the loss in some of the {steps} steps only (layer-drop or a data-dependent branch): "
                "wrap with DistributedDataParallel(..., find_unused_parameters=True) (costs one extra traversal "
                "of the autograd graph per step), or static_graph=True when the used set is the same every step"
            )
        return (
            f"{ref} reaches the loss in some of the {steps} steps only (a data-dependent branch): the Keras "
            "'Gradients do not exist' warning is expected on those steps; filter None gradients before "
            "apply_gradients if it is intended"
        )
    if kind == "rank_dependent":
        return (
            f"{ref} reaches the loss on some ranks only at the same step (each rank's data takes another branch): "
            "DistributedDataParallel(..., find_unused_parameters=False) raises or hangs there; use "
            "find_unused_parameters=True, or add a zero-weighted term that touches it every step "
            f"(loss = loss + 0 * sum(p.sum() for p in {ref}.parameters()))"
            if torch_side
            else f"{ref} gets a gradient on some replicas only (the traced step depends on the replica id): the "
            "strategy's gradient all-reduce needs the same variables from every replica; take the replica-dependent "
            f"branch out, or add a zero-weighted term that touches {ref}'s weights on every replica "
            "(loss + 0.0 * tf.add_n([tf.reduce_sum(w) for w in its trainable_weights]))"
        )
    return "not trainable: harmless (DDP and optimizers skip it); nothing to do unless you meant to train it"


def _graph_hint(kind: str, scope: str) -> str:
    """Fixes in TF1 terms: variable scopes, ``trainable=False``, the optimizer's ``var_list``."""
    keep_out = (
        f"keep it out of training (trainable=False in its get_variable calls, or "
        f"optimizer.minimize(loss, var_list=...) without `{scope}`)"
    )
    if kind == "never_read":
        return (
            f"`{scope}` is created but no op reads it: stop creating it (remove its variable_scope / "
            f"get_variable calls), or {keep_out}; if it should train, route its output into the loss"
        )
    return (
        f"`{scope}` is read, but nothing it feeds reaches the loss: route its output into the loss, "
        f"or {keep_out} so the optimizer stops computing None gradients for it"
    )
