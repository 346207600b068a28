"""`bridge unused`: which parameters/variables a model never uses, why, and how to fix it.

Plain report types and the dispatch to the framework sides.  No framework is
imported here: :func:`find_unused` looks at the model's type by module name and
imports ``pt_side.unused`` or ``tf_side.unused`` only then.

Kinds:

* ``never_read``  -- the parameter never entered an op in the forward pass;
* ``no_gradient`` -- it was read, but the loss does not depend on it (grad is None);
* ``frozen``      -- not trainable (``requires_grad=False`` / ``trainable=False``): harmless;
* ``sometimes``   -- reached the loss in some of ``steps`` runs only (layer-drop, data-dependent branches).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.core.errors import UsageError
from bridge.core.naming import closest, object_key_path
from bridge.core.scopes import fold

KINDS = ("never_read", "no_gradient", "frozen", "sometimes")
TRAINABLE_KINDS = ("never_read", "no_gradient", "sometimes")


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
        }


_TITLES = {
    "never_read": "never read in the forward pass",
    "no_gradient": "read, but no gradient reaches them from the loss",
    "frozen": "frozen (not trainable: harmless, DDP and optimizers skip them)",
    "sometimes": "reach the loss in some steps only",
}


def render_text(report: UnusedReport, *, verbose: bool = False) -> str:
    """Human-readable report: one block per kind, one row per folded scope, the fix under it."""
    s = report.summary
    runs = (f"backward closure of {', '.join(report.losses)}" if report.losses
            else f"{report.steps} step{'s' if report.steps != 1 else ''}")  # fmt: skip
    lines = [f"{report.framework}: {s['parameters']} parameters ({s['elements']:,} elements), {runs}"]
    if not report.items:
        lines.append("every parameter is read and reaches the loss")
    current = None
    for kind, label, items in report.groups():
        if kind != current:
            current = kind
            n = len(report.by_kind(kind))
            lines.append("")
            lines.append(f"{kind} ({n} parameter{'s' if n != 1 else ''}): {_TITLES[kind]}")
        numel = sum(i.numel for i in items)
        leaves = sorted({i.name[len(i.scope) + 1 :] if i.name.startswith(i.scope) else i.name for i in items})
        shown = ", ".join(leaves[:6]) + (f", ... {len(leaves) - 6} more" if len(leaves) > 6 else "")
        lines.append(f"  {label}: {len(items)} parameter{'s' if len(items) != 1 else ''}, "
                     f"{numel:,} elements ({shown})")  # fmt: skip
        if verbose:
            lines.extend(f"    {i.name} {list(i.shape)}" for i in items)
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
            lines.append(f"DDP (2 gloo processes, find_unused_parameters=False): "
                         f"{d.get('steps', 2)} steps ran without error")  # fmt: skip
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("")
    counts = s["counts"]
    lines.append(
        "verdict: "
        + ("nothing trainable is unused" if report.ok else f"{s['trainable_unused']} trainable parameters unused")
        + f" (never_read {counts['never_read']}, no_gradient {counts['no_gradient']}, "
        f"sometimes {counts['sometimes']}, frozen {counts['frozen']})"
    )
    return "\n".join(lines)


def find_unused(
    model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, steps: int = 1, *, seed: int | None = 0
) -> UnusedReport:
    """Classify every parameter/variable of ``model`` run on ``batch``.

    ``loss_fn(output, batch)`` gives the scalar to differentiate; without it the
    sum of every floating output is used.  ``steps > 1`` re-runs forward and
    backward that many times (in training mode) to find parameters used in some
    steps only.  PyTorch modules go to :mod:`pt_side.unused`, anything else
    (Keras models, ``tf.Module``) to :mod:`tf_side.unused`.
    """
    if not isinstance(steps, int) or steps < 1:
        raise UsageError("Bad --steps", detail=f"got {steps!r}", hint="Give a positive number of steps")
    if framework_of(model) == "pytorch":
        from pt_side.unused import find_unused_torch

        return find_unused_torch(model, batch, loss_fn, steps=steps, seed=seed)
    from tf_side.unused import find_unused_tf

    return find_unused_tf(model, batch, loss_fn, steps=steps, seed=seed)


def framework_of(model: Any) -> str:
    """``"pytorch"`` for a ``torch.nn.Module`` (by its class hierarchy's module names), else ``"tensorflow"``."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ == "Module":
            return "pytorch"
    mods = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    if mods & {"keras", "tf_keras", "tensorflow"}:
        return "tensorflow"
    raise UsageError(
        "Not a model",
        detail=f"got {type(model).__module__}.{type(model).__qualname__}",
        hint="Return a torch.nn.Module, a Keras model or a tf.Module from the factory",
    )


# What a factory must return, by the command that calls it: the error for a bad spec says the caller's contract.
UNUSED_CONTRACT = "FILE.py:FACTORY is called with no arguments and returns (model, batch) or (model, batch, loss_fn)"
TARGET_CONTRACT = ("--target FILE.py:FACTORY is called with no arguments and returns the target model: the PyTorch "
                   "twin (a torch.nn.Module), or a Keras model for --to tensorflow")  # fmt: skip
KERAS_MODEL_CONTRACT = ("--source-model (or --target) FILE.py:FACTORY is called with no arguments and returns the "
                        "Keras model the weights belong to")  # fmt: skip


def defined_callables(path: Path) -> list[str]:
    """Top-level functions and classes a ``.py`` file defines, read with ``ast`` (nothing runs)."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in tree.body if isinstance(node, kinds) and not node.name.startswith("_")]


def _defines(path: Path, limit: int = 12) -> str:
    names = defined_callables(path)
    if not names:
        return "it defines no public function"
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return "it defines " + ", ".join(f"`{n}`" for n in names[:limit]) + more


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def load_factory(spec: str, contract: str) -> Callable[..., Any]:
    """``path/to/file.py:factory`` -> the callable (the user's own code, run on request).

    ``contract``: what the calling command expects the factory to return, said in every error.
    """
    from bridge.core.errors import CheckpointNotFound

    path_text, sep, attr = spec.rpartition(":")
    if not sep and spec.endswith(".py"):  # a file, but which function?
        path = Path(spec)
        if not path.is_file():
            raise CheckpointNotFound("Factory file not found", path=path, detail="the file does not exist",
                                     hint=f"Give the path of a .py file. {_sentence(contract)}")  # fmt: skip
        detail = f"name the factory: {spec}:NAME; {_defines(path)}"
        raise UsageError("Factory not named", path=path, detail=detail, hint=_sentence(contract))
    if not sep or not path_text or not attr or not attr.isidentifier():
        raise UsageError("Bad factory spec", detail=f"got {spec!r}",
                         hint=f"Write FILE.py:FACTORY, e.g. my_model.py:build. {_sentence(contract)}")  # fmt: skip
    path = Path(path_text)
    if not path.is_file():
        raise CheckpointNotFound("Factory file not found", path=path, detail="the file does not exist",
                                 hint=f"Give the path of a .py file. {_sentence(contract)}")  # fmt: skip
    name = f"_bridge_unused_factory_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError("Cannot import factory file", path=path, hint=f"Give a .py file. {_sentence(contract)}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report it as bad input
        sys.modules.pop(name, None)
        raise UsageError("Factory file failed to import", path=path, detail=f"{type(e).__name__}: {e}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        import difflib

        near = difflib.get_close_matches(attr, defined_callables(path), n=1)
        detail = f"no callable `{attr}`" + (f" (did you mean `{near[0]}`?)" if near else "") + f"; {_defines(path)}"
        raise UsageError("Factory not found", path=path, detail=detail, hint=_sentence(contract))
    return factory  # type: ignore[no-any-return]


def call_factory(spec: str) -> tuple[Any, Any, Callable[..., Any] | None]:
    """Run the factory of ``spec``; check it returned (model, batch[, loss_fn])."""
    factory = load_factory(spec, UNUSED_CONTRACT)
    result = factory()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise UsageError(
            "Bad factory result", detail=f"{spec} returned {type(result).__name__}",
            hint="Return (model, batch) or (model, batch, loss_fn)",
        )  # fmt: skip
    model, batch = result[0], result[1]
    loss_fn = result[2] if len(result) == 3 else None
    if loss_fn is not None and not callable(loss_fn):
        raise UsageError(
            "Bad factory result", detail="the third element is not callable", hint="Return loss_fn(output, batch)"
        )
    return model, batch, loss_fn


def is_meta_graph(target: str) -> bool:
    """``bridge unused`` on a TF1 ``MetaGraphDef`` (``model.ckpt.meta``) rather than ``FILE.py:FACTORY``."""
    return target.endswith(".meta") or (Path(target).is_file() and Path(target).suffix != ".py")


def find_unused_in_graph(path: str | Path, losses: Iterable[str]) -> UnusedReport:
    """Trainable variables of a TF1 ``.meta`` graph that no gradient of ``losses`` reaches.

    Args:
        path: the ``.meta`` file ``tf.compat.v1.train.Saver`` wrote beside the checkpoint.
        losses: loss or output tensor names (``loss:0``).

    Returns:
        An :class:`UnusedReport` (framework ``tf1-graph``), items grouped by variable scope.

    Raises:
        UsageError: no tensor given (the message lists candidates).
        TensorNotFound: a tensor the graph lacks (the message suggests close names).
    """
    from tf_side.meta_graph import find_unused_meta_graph

    return find_unused_meta_graph(path, list(losses))


def run_unused(
    target: str, *, tensors: Iterable[str] = (), checkpoint: str | None = None, steps: int = 1,
    ddp: bool = False, seed: int | None = 0,
) -> UnusedReport | RestoreReport:  # fmt: skip
    """The CLI's entry: a TF1 graph (``.meta``), a factory vs a checkpoint, or a factory run on its batch."""
    tensors = list(tensors)
    if is_meta_graph(target):
        if checkpoint is not None or ddp or steps != 1:
            raise UsageError("Options do not apply to a TF1 graph", path=target,
                             detail="--checkpoint, --ddp and --steps need a FILE.py:FACTORY",
                             hint="Give only --loss/--output with a .meta file")  # fmt: skip
        return find_unused_in_graph(target, tensors)
    if tensors:
        raise UsageError("--loss/--output name tensors of a TF1 graph", detail=f"got {target!r}",
                         hint="Give a .meta file, or return loss_fn from the factory")  # fmt: skip
    if checkpoint is not None:
        if ddp or steps != 1:
            raise UsageError("--ddp and --steps run the model; --checkpoint only compares names and shapes",
                             hint="Drop --ddp/--steps, or run without --checkpoint")  # fmt: skip
        model, batch, _ = call_factory(target)
        return checkpoint_vs_model(model, checkpoint, batch=batch)
    return unused_from_spec(target, steps=steps, ddp=ddp, seed=seed)


def unused_from_spec(spec: str, *, steps: int = 1, ddp: bool = False, seed: int | None = 0) -> UnusedReport:
    """The CLI's entry: build the model from ``FILE.py:FACTORY``, classify, optionally confirm with DDP."""
    model, batch, loss_fn = call_factory(spec)
    report = find_unused(model, batch, loss_fn, steps=steps, seed=seed)
    if ddp:
        if report.framework != "pytorch":
            report.notes.append("--ddp applies to PyTorch models only; skipped")
        else:
            from pt_side.ddp_check import run_ddp_check

            report.ddp = run_ddp_check(spec)
            names = ddp_indices_to_names(model, str(report.ddp.get("message") or ""))
            if names:
                report.ddp["unused_names"] = names
    return report


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
    return [
        UnusedItem(r.name, r.scope, r.kind, hints[(r.kind, r.scope)], r.numel, r.shape, r.steps_used) for r in rows
    ]


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
    return "not trainable: harmless (DDP and optimizers skip it); nothing to do unless you meant to train it"


def _graph_hint(kind: str, scope: str) -> str:
    """Fixes in TF1 terms: variable scopes, ``trainable=False``, the optimizer's ``var_list``."""
    keep_out = (f"keep it out of training (trainable=False in its get_variable calls, or "
                f"optimizer.minimize(loss, var_list=...) without `{scope}`)")  # fmt: skip
    if kind == "never_read":
        return (f"`{scope}` is created but no op reads it: stop creating it (remove its variable_scope / "
                f"get_variable calls), or {keep_out}; if it should train, route its output into the loss")
    return (f"`{scope}` is read, but nothing it feeds reaches the loss: route its output into the loss, "
            f"or {keep_out} so the optimizer stops computing None gradients for it")


# --- checkpoint vs model: what a restore would leave behind, and what it would not fill ------------------------

RESTORE_KINDS = ("model_leftover", "shape_mismatch", "missing", "optimizer", "counter", "bookkeeping")
# A leftover of these kinds changes nothing the model computes: expect_partial() / strict=False may drop it.
HARMLESS_KINDS = ("optimizer", "counter", "bookkeeping")
_RECORD_KINDS = {"model": "model_leftover", "optimizer": "optimizer", "counter": "counter", "metadata": "bookkeeping"}


@dataclass(frozen=True)
class ModelVariable:
    """A model variable as its framework restores it: the checkpoint key it reads, a display name, its shape."""

    key: str
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class RestoreItem:
    """One checkpoint value the model never restores, or one model variable the checkpoint does not fill."""

    name: str  # the checkpoint key (leftovers, mismatches) or the model variable's name (missing)
    kind: str
    shape: tuple[int, ...]
    hint: str
    path: str | None = None  # a readable path for a checkpoint key (TF2 object graphs)
    key: str | None = None  # missing: the key the model looks for
    did_you_mean: str | None = None
    model_shape: tuple[int, ...] | None = None  # shape_mismatch: the model's shape

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "shape": list(self.shape), "hint": self.hint}
        for attr in ("path", "key", "did_you_mean"):
            if getattr(self, attr) is not None:
                out[attr] = getattr(self, attr)
        if self.model_shape is not None:
            out["model_shape"] = list(self.model_shape)
        return out


@dataclass(frozen=True)
class RestoreFix:
    """An alignment of the file's keys that makes the user's call restore more, as code to run.

    ``missing`` and ``unexpected`` are what the fixed call itself reports (``load_state_dict``'s
    ``missing_keys`` / ``unexpected_keys``, relative to ``submodule``); ``untouched`` are the model's
    keys outside ``submodule``, which that call leaves at their initial values.
    """

    code: str
    restored: int
    strip_prefix: str = ""
    submodule: str = ""
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    untouched: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()  # the file's keys without ``strip_prefix``, which the fixed call is not given

    def to_json(self) -> dict[str, Any]:
        return {
            "strip_prefix": self.strip_prefix,
            "submodule": self.submodule,
            "code": self.code,
            "restored_after_fix": self.restored,
            "missing_after_fix": list(self.missing),
            "unexpected_after_fix": list(self.unexpected),
            "untouched": list(self.untouched),
            "left_out": list(self.left_out),
        }


@dataclass(frozen=True)
class OtherCall:
    """A call the user might try instead (``model.load_weights(path)``), and what it would restore."""

    call: str
    restored: int
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"call": self.call, "restored": self.restored, "why": self.why}


@dataclass
class RestoreSetup:
    """What a framework side found: the model's variables keyed as ``call`` reads them, and that call.

    ``passed``: the checkpoint records ``call`` hands to the framework (PyTorch: the state dict indexed
    out of the file), ``None`` for all; ``key_prefix``: what those records' names carry before the keys
    the framework sees (``model.`` for ``torch.load(f)["model"]``).
    """

    variables: list[ModelVariable]
    root: str
    call: str
    passed: set[str] | None = None
    key_prefix: str = ""
    fix: RestoreFix | None = None
    other: OtherCall | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    """The answer of :func:`checkpoint_vs_model`: what ``call``, run as written, restores.

    ``matched``/``items`` describe that call with the file as it is; ``fix`` (PyTorch) is an alignment
    that would restore more, never counted as restored. Exit 1 when the call loses or lacks a weight.
    """

    framework: str  # who restores: "pytorch", "tensorflow" (tf.train.Checkpoint) or "keras" (a Keras 3 file)
    checkpoint: str
    root: str  # where the model's weights sit in the checkpoint ("" = the checkpoint's root)
    matched: int
    total: int  # model variables
    items: list[RestoreItem]
    notes: list[str] = field(default_factory=list)
    call: str = ""  # the code that restores as found
    unexpected: list[str] = field(default_factory=list)  # keys the call is given but no variable reads
    fix: RestoreFix | None = None
    other: OtherCall | None = None

    def by_kind(self, kind: str) -> list[RestoreItem]:
        return [i for i in self.items if i.kind == kind]

    @property
    def missing(self) -> list[str]:
        """The keys of the model variables the call leaves initial (``load_state_dict``'s ``missing_keys``)."""
        return [i.name for i in self.by_kind("missing")]

    @property
    def expect_partial_safe(self) -> bool:
        """Every leftover is optimizer state, a counter or bookkeeping (and every present value fits)."""
        return not self.by_kind("model_leftover") and not self.by_kind("shape_mismatch")

    @property
    def ok(self) -> bool:
        return self.expect_partial_safe and not self.by_kind("missing")

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "model_variables": self.total,
            "restored": self.matched,
            "unexpected": len(self.unexpected),
            "counts": {kind: len(self.by_kind(kind)) for kind in RESTORE_KINDS},
            "expect_partial_safe": self.expect_partial_safe,
            "ok": self.ok,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "checkpoint": self.checkpoint,
            "root": self.root,
            "call": self.call,
            "leftovers": [i.to_json() for i in self.items if i.kind not in ("missing", "shape_mismatch")],
            "missing": [i.to_json() for i in self.by_kind("missing")],
            "mismatched": [i.to_json() for i in self.by_kind("shape_mismatch")],
            "unexpected": list(self.unexpected),
            "fix": None if self.fix is None else self.fix.to_json(),
            "other_call": None if self.other is None else self.other.to_json(),
            "summary": self.summary,
            "notes": list(self.notes),
        }


def compare_restore(
    framework: str, variables: list[ModelVariable], records: Iterable[Any], *, checkpoint: str, root: str = "",
    setup: RestoreSetup | None = None,
) -> RestoreReport:  # fmt: skip
    """Match model variables to checkpoint records by key; classify what is left on either side.

    Args:
        framework: ``pytorch``, ``tensorflow`` or ``keras`` (who restores: chooses the wording of the fixes).
        variables: the model's variables, each with the key its framework restores it from.
        records: the checkpoint's :class:`~bridge.core.model.TensorRecord` values (``kind`` already tagged).
        checkpoint: the checkpoint path, for the report.
        root: where the model sits in the checkpoint, for the report.
        setup: the call, the records it is given, and a fix (from the framework side).
    """
    setup = setup or RestoreSetup(variables, root, "")
    passed = setup.passed
    by_key = {r.name: r for r in records}
    wanted = {v.key: v for v in variables}
    missing = [v for v in variables if v.key not in by_key]
    unclaimed = [r for r in by_key.values() if r.name not in wanted]
    # A weight the call is never given is not lost by it (another state dict in the same file: a note).
    elsewhere = [r for r in unclaimed if r.kind == "model" and passed is not None and r.name not in passed]
    orphans = [r for r in unclaimed if r.kind == "model" and (passed is None or r.name in passed)]
    fixed = _fixed_keys(setup)
    # did-you-mean: compared by key path (one vocabulary on both sides), shown by the names people know;
    # what the fix restores is explained by the fix, so only the rest is paired
    unfixed = [v for v in missing if v.name not in fixed]
    strays = [r for r in orphans if r.name not in fixed]
    homes = [(object_key_path(v.key), v.shape) for v in unfixed]
    sources = [(object_key_path(r.name), r.shape) for r in strays]
    items: list[RestoreItem] = []
    for r in orphans:
        home = None if r.name in fixed else closest(object_key_path(r.name), r.shape, homes)
        guess = None if home is None else unfixed[home]
        hint = _leftover_hint(framework, None if guess is None else _home_label(guess))
        if r.name in fixed:
            hint = f"not under the key the model reads: {_fix_words(setup)}"
        name = None if guess is None else guess.name
        items.append(RestoreItem(r.name, "model_leftover", r.shape, hint, r.path, did_you_mean=name))
    for v in missing:
        source = None if v.name in fixed else closest(object_key_path(v.key), v.shape, sources)
        found = None if source is None else strays[source].path or object_key_path(strays[source].name)
        hint = f"keeps its initial value: the checkpoint has no `{object_key_path(v.key)}`"
        hint += f"; did you mean `{found}`?" if found else ""
        if v.name in fixed:
            hint = f"keeps its initial value as is: {_fix_words(setup)}"
        items.append(RestoreItem(v.name, "missing", v.shape, hint, key=v.key, did_you_mean=found))
    for v in variables:
        r = by_key.get(v.key)
        if r is not None and tuple(r.shape) != tuple(v.shape):
            hint = (f"restore fails: the checkpoint holds {list(r.shape)}, the model {list(v.shape)} "
                    "(a changed config: hidden size, vocabulary, number of classes?)")  # fmt: skip
            items.append(RestoreItem(r.name, "shape_mismatch", r.shape, hint, r.path, v.key, model_shape=v.shape))
    for r in unclaimed:
        if r.kind != "model":
            kind = _RECORD_KINDS[r.kind]
            items.append(RestoreItem(r.name, kind, r.shape, _harmless_hint(framework, kind), r.path))
    notes = list(setup.notes)
    if elsewhere:
        tops = dict.fromkeys(r.name.split(".", 1)[0] for r in elsewhere)
        notes.append(f"{len(elsewhere)} other tensors of the file are not passed to this call "
                     f"(under {', '.join(f'`{t}`' for t in tops)}): a second state dict (EMA, teacher)?")  # fmt: skip
    unexpected = [r.name.removeprefix(setup.key_prefix) for r in unclaimed if passed is None or r.name in passed]
    return RestoreReport(framework, checkpoint, root, len(variables) - len(missing), len(variables), items,
                         notes, setup.call, unexpected if framework == "pytorch" else [], setup.fix,
                         setup.other)  # fmt: skip


def _fixed_keys(setup: RestoreSetup) -> set[str]:
    """Record names (leftovers) and model keys (missing) that the fix restores."""
    fix = setup.fix
    if fix is None:
        return set()
    into = fix.submodule + "." if fix.submodule else ""
    homes = {v.name for v in setup.variables if v.name.startswith(into)}
    homes -= {into + k for k in fix.missing}
    out = set(homes)
    for v in setup.variables:
        if v.name in homes:
            out.add(setup.key_prefix + fix.strip_prefix + v.name[len(into):])
    return out


def _fix_words(setup: RestoreSetup) -> str:
    fix = setup.fix or RestoreFix("", 0)
    if fix.strip_prefix and fix.submodule:
        return f"the file's keys carry `{fix.strip_prefix}` and hold `model.{fix.submodule}` only (see the fix)"
    if fix.strip_prefix:
        return f"the file's keys carry an extra `{fix.strip_prefix}` prefix (see the fix)"
    return f"the file holds the keys of `model.{fix.submodule}` only, without its prefix (see the fix)"


def _home_label(v: ModelVariable) -> str:
    path = object_key_path(v.key)
    return v.name if path == v.name else f"{path} ({v.name})"


# The call that restores leniently, by the framework that restores (``keras``: a Keras 3 weights file).
_LENIENT = {
    "tensorflow": "status.expect_partial()",
    "pytorch": "load_state_dict(..., strict=False)",
    "keras": "model.load_weights(..., skip_mismatch=True)",
}


def _leftover_hint(framework: str, guess: str | None) -> str:
    drop = _LENIENT[framework]
    lead = "a real weight no model variable restores: a renamed or removed layer?"
    if framework == "keras":  # Keras 3's load_weights ignores file entries no object asks for, silently
        lead += " (load_weights ignores it silently)"
    if guess:
        return f"{lead} did you mean `{guess}`? Rename it back (or map the key); if it is gone on purpose, {drop}"
    return f"{lead} if the layer is gone on purpose, {drop} drops it; otherwise the model lost it"


def _harmless_hint(framework: str, kind: str) -> str:
    if kind == "optimizer":
        if framework == "tensorflow":
            return ("optimizer state: restore tf.train.Checkpoint(model=..., optimizer=...) to resume training, "
                    "or status.expect_partial() to drop it (safe)")  # fmt: skip
        if framework == "keras":
            return "optimizer state: keras.saving.load_model restores it to resume training; load_weights skips it"
        return "optimizer state: optimizer.load_state_dict(...) to resume training, or ignore it (safe)"
    if kind == "counter":
        return "a step counter (save_counter, iterations, global_step): safe to drop"
    return "checkpoint bookkeeping (the object graph): nothing to restore"


def _count(n: int, total: int) -> str:
    return "nothing" if n == 0 and total else ("everything" if n == total else f"{n} of {total}")


def _indent(code: str) -> list[str]:
    return ["    " + line for line in code.splitlines()]


def _listed(names: list[str], verbose: bool) -> str:
    shown = names if verbose else names[:4] + ([f"... {len(names) - 4} more"] if len(names) > 4 else [])
    return ", ".join(shown)


def render_restore_text(report: RestoreReport, *, verbose: bool = False) -> str:
    """Human-readable restore report: what the user's call restores as written, what it loses and lacks,
    what may be dropped safely, and (PyTorch) the aligned call that would restore more."""
    s = report.summary
    lines = [f"{report.framework}: {s['restored']} of {s['model_variables']} model variables restored from "
             f"{report.checkpoint}" + (f" (weights at `{report.root}`)" if report.root else "")]  # fmt: skip
    if report.call:
        lines += ["  by this call, as written:", *_indent(report.call)]
    if report.framework == "pytorch":
        lines.append(f"  load_state_dict reports {len(report.missing)} missing_keys, "
                     f"{len(report.unexpected)} unexpected_keys")  # fmt: skip
    titles = {
        "model_leftover": "model leftovers: checkpoint weights the model never restores",
        "shape_mismatch": "shape mismatches: restore fails",
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
                lines += [f"  {_listed(names, False)}", f"    fix: {hint}"]
            continue
        for i in items:
            lines += [f"  {i.path or i.name} {list(i.shape)}", f"    fix: {i.hint}"]
    harmless = [i for i in report.items if i.kind in HARMLESS_KINDS]
    if harmless:
        lines += ["", f"safe to drop ({len(harmless)}): optimizer state, counters, bookkeeping"]
        for kind in HARMLESS_KINDS:
            items = report.by_kind(kind)
            if items:
                lines += [f"  {kind} ({len(items)}): {_listed([i.path or i.name for i in items], verbose)}",
                          f"    {items[0].hint}"]  # fmt: skip
    if fix is not None:
        lines += ["", f"fix: this call restores {fix.restored} of {report.total}:", *_indent(fix.code)]
        if fix.left_out:
            lines.append(f"  it leaves out {len(fix.left_out)} keys without `{fix.strip_prefix}`: "
                         f"{_listed(list(fix.left_out), verbose)}")  # fmt: skip
        if fix.unexpected:
            lines.append(f"  it still drops {len(fix.unexpected)} unexpected keys: "
                         f"{_listed(list(fix.unexpected), verbose)}")  # fmt: skip
        if fix.missing:
            lines.append(f"  it still misses {len(fix.missing)}: {_listed(list(fix.missing), verbose)}")
        if fix.untouched:
            lines.append(f"  outside `model.{fix.submodule}`, {len(fix.untouched)} keep their initial values: "
                         f"{_listed(list(fix.untouched), verbose)}")  # fmt: skip
    if report.other is not None:
        o = report.other
        lines += ["", f"`{o.call}` restores {_count(o.restored, report.total)} here: {o.why}"]
    lines += [f"note: {n}" for n in report.notes]
    partial = "safe (only optimizer state, counters, bookkeeping left over)" if report.expect_partial_safe else (
        "NOT safe: it would silently drop model weights")  # fmt: skip
    drop = _LENIENT[report.framework]
    if report.ok:
        verdict = "the model restores completely"
    else:
        c = s["counts"]
        verdict = (f"restores {_count(report.matched, report.total)} as is ({c['model_leftover']} model leftovers, "
                   f"{c['missing']} missing, {c['shape_mismatch']} mismatched)")  # fmt: skip
        if fix is not None:
            verdict += f"; the fix above restores {fix.restored} of {report.total}"
    lines += ["", f"{drop}: {partial}", f"verdict: {verdict}"]
    return "\n".join(lines)


def checkpoint_vs_model(model: Any, checkpoint: str | Path, *, batch: Any = None) -> RestoreReport:
    """What the user's own restore call does with ``checkpoint`` as it is, and the fix when it falls short.

    Args:
        model: a ``torch.nn.Module`` (the report is ``model.load_state_dict(sd, strict=False)``'s result,
            ``sd`` the file's state dict as saved) or a Keras model / ``tf.Module`` (matched the way
            ``tf.train.Checkpoint.read`` walks the object graph, from where the model sits).
        checkpoint: any checkpoint ``bridge.load`` reads (for TF models: TF2 object-based, or a Keras 3
            ``.weights.h5`` / ``.keras`` for a Keras 3 model).
        batch: called on an unbuilt Keras model first, to create its variables.

    Returns:
        A :class:`RestoreReport`: the call, model leftovers (with a did-you-mean), optimizer state /
        counters / bookkeeping (``expect_partial_safe`` when these are all that is left), missing
        variables, mismatches, and a ``fix`` (code) when an aligned call restores more.

    Example:
        >>> report = bridge.checkpoint_vs_model(model, "ckpt/ckpt-1")   # doctest: +SKIP
        >>> report.expect_partial_safe, [i.name for i in report.by_kind("missing")]   # doctest: +SKIP
    """
    from bridge.api import load

    framework = framework_of(model)
    with load(checkpoint) as ckpt:
        if (ckpt.framework == "pytorch") != (framework == "pytorch"):
            raise UsageError(
                "Checkpoint and model are from different frameworks", path=checkpoint,
                detail=f"a {ckpt.framework} checkpoint ({ckpt.format}) for a {framework} model",
                hint="Convert it first (bridge convert), then compare the result",
            )  # fmt: skip
        if framework == "pytorch":
            from pt_side.unused import restore_setup as torch_setup

            setup = torch_setup(model, ckpt)
        else:
            from tf_side.unused import restore_setup as tf_setup

            setup = tf_setup(model, ckpt, batch)
            if ckpt.metadata.get("layout") == "keras3":
                framework = "keras"  # restored by Keras' load_weights, not tf.train.Checkpoint
        return compare_restore(framework, setup.variables, ckpt.values(), checkpoint=str(checkpoint),
                               root=setup.root, setup=setup)  # fmt: skip


def realign(file_keys: Iterable[str], model_keys: Iterable[str], modules: Iterable[str],
            sep: str = ".") -> tuple[str, str, int]:  # fmt: skip
    """The (prefix to strip from ``file_keys``, module of ``modules`` to load into, keys restored) that
    restores most, by exact key: a DDP file's ``module.``, a head model's ``bert.`` loaded into the base
    model, base-model keys loaded into ``model.bert``.  ``("", "", n)``: the keys as they are do best.

    Candidates: prefixes of one or two components on either side; ties keep the simpler alignment.
    """
    present, wanted = set(file_keys), list(model_keys)

    def prefixes(names: Iterable[str]) -> list[str]:
        out: dict[str, None] = {}
        for name in names:
            parts = name.split(sep)
            for depth in (1, 2):
                if len(parts) > depth:
                    out[sep.join(parts[:depth]) + sep] = None
        return list(out)

    strips = [""] + prefixes(present)
    intos = [""] + [m + sep for m in dict.fromkeys(modules) if m and m.count(sep) < 2]
    best = ("", "", sum(k in present for k in wanted))
    for into in intos:
        inner = [k[len(into) :] for k in wanted if k.startswith(into)]
        if len(inner) <= best[2]:
            continue
        for strip in strips:
            n = sum(strip + k in present for k in inner)
            if n > best[2]:
                best = (strip, into.removesuffix(sep), n)
    return best
