"""What a restore call does with a checkpoint: the `bridge unused --checkpoint` report.

Plain report types and the comparison by key: model leftovers (with a did-you-mean), optimizer state,
counters and bookkeeping, missing variables, shape mismatches, and the realignment of a key prefix
that makes the user's call restore more.  The framework sides (``pt_side.unused.trace``, ``tf_side.unused.trace``)
say which keys the model reads and which call reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.core.naming import closest, object_key_path

RESTORE_KINDS = ("model_leftover", "shape_mismatch", "missing", "optimizer", "counter", "metric", "rng", "bookkeeping")
# A leftover of these kinds changes nothing the model computes: expect_partial() / strict=False may drop it.
HARMLESS_KINDS = ("optimizer", "counter", "metric", "rng", "bookkeeping")
_RECORD_KINDS = {
    "model": "model_leftover",
    "optimizer": "optimizer",
    "counter": "counter",
    "metric": "metric",
    "rng": "rng",
    "metadata": "bookkeeping",
}


@dataclass(frozen=True)
class ModelVariable:
    """A model variable as its framework restores it: the checkpoint key it reads, a display name, its shape and
    (where the restoring call refuses a cast) its dtype, in :mod:`bridge.core.dtypes` names."""

    key: str
    name: str
    shape: tuple[int, ...]
    dtype: str | None = None


# Who restores -> the call that refuses a value of another dtype (restore_v2 checks the dtype; torch's
# load_state_dict and Keras' assign cast).
CAST_REFUSED = {"tensorflow": "tf.train.Checkpoint's restore"}


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
    # model keys (relative to ``submodule``) the aligned file holds in another shape: (key, file shape, model shape).
    # The fixed call leaves them out (load_state_dict raises on a size mismatch even with strict=False).
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "strip_prefix": self.strip_prefix,
            "submodule": self.submodule,
            "code": self.code,
            "restored_after_fix": self.restored,
            "missing_after_fix": list(self.missing),
            "unexpected_after_fix": list(self.unexpected),
            "mismatched_after_fix": [
                {"name": key, "shape": list(shape), "model_shape": list(model)} for key, shape, model in self.mismatched
            ],
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
    the framework sees (``model.`` for ``torch.load(f, weights_only=True)["model"]``).
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

    ``matched``/``items`` describe that call with the file as it is (a value of another shape or a dtype the
    framework will not cast is a mismatch, never counted as restored); ``fix`` (PyTorch) is an alignment that
    would restore more, never counted as restored. Exit 1 when the call loses or lacks a weight.
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
    framework: str,
    variables: list[ModelVariable],
    records: Iterable[Any],
    *,
    checkpoint: str,
    root: str = "",
    setup: RestoreSetup | None = None,
) -> RestoreReport:
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
    misfit = _misfit_keys(setup)
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
            hint = f"not under the key the model reads: {_fix_words(setup)}" + misfit.get(r.name, "")
        name = None if guess is None else guess.name
        items.append(RestoreItem(r.name, "model_leftover", r.shape, hint, r.path, did_you_mean=name))
    for v in missing:
        source = None if v.name in fixed else closest(object_key_path(v.key), v.shape, sources)
        found = None if source is None else strays[source].path or object_key_path(strays[source].name)
        hint = f"keeps its initial value: the checkpoint has no `{object_key_path(v.key)}`"
        hint += f"; did you mean `{found}`?" if found else ""
        if v.name in fixed:
            hint = f"keeps its initial value as is: {_fix_words(setup)}" + misfit.get(v.name, "")
        items.append(RestoreItem(v.name, "missing", v.shape, hint, key=v.key, did_you_mean=found))
    mismatched = 0
    for v in variables:
        r = by_key.get(v.key)
        if r is None:
            continue
        if tuple(r.shape) != tuple(v.shape):
            hint = (
                f"restore fails: the checkpoint holds {list(r.shape)}, the model {list(v.shape)} "
                "(a changed config: hidden size, vocabulary, number of classes?): build the model with the "
                "checkpoint's config, or leave this key out of the call to keep the model's initial value"
            )
        elif framework in CAST_REFUSED and v.dtype is not None and r.dtype != v.dtype:
            hint = (
                f"restore fails: the checkpoint holds {r.dtype}, the model's variable is {v.dtype} and "
                f"{CAST_REFUSED[framework]} does not cast: create the variable as {r.dtype}, or cast the "
                "checkpoint's value first"
            )
        else:
            continue
        mismatched += 1
        items.append(RestoreItem(r.name, "shape_mismatch", r.shape, hint, r.path, v.key, model_shape=v.shape))
    for r in unclaimed:
        if r.kind != "model":
            kind = _RECORD_KINDS[r.kind]
            items.append(RestoreItem(r.name, kind, r.shape, _harmless_hint(framework, kind), r.path))
    notes = list(setup.notes)
    if elsewhere:
        tops = dict.fromkeys(r.name.split(".", 1)[0] for r in elsewhere)
        notes.append(
            f"{len(elsewhere)} other tensors of the file are not passed to this call "
            f"(under {', '.join(f'`{t}`' for t in tops)}): a second state dict (EMA, teacher)?"
        )
    unexpected = [r.name.removeprefix(setup.key_prefix) for r in unclaimed if passed is None or r.name in passed]
    return RestoreReport(
        framework,
        checkpoint,
        root,
        len(variables) - len(missing) - mismatched,
        len(variables),
        items,
        notes,
        setup.call,
        unexpected if framework == "pytorch" else [],
        setup.fix,
        setup.other,
    )


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
            out.add(setup.key_prefix + fix.strip_prefix + v.name[len(into) :])
    return out


def _misfit_keys(setup: RestoreSetup) -> dict[str, str]:
    """Record names and model keys the fix aligns whose shapes still differ -> what the hint adds about them."""
    fix = setup.fix
    if fix is None or not fix.mismatched:
        return {}
    into = fix.submodule + "." if fix.submodule else ""
    words = ", but the value there has another shape than the model's, so the fix leaves it out"
    out = {}
    for key, _, _ in fix.mismatched:
        out[into + key] = words
        out[setup.key_prefix + fix.strip_prefix + key] = words
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
LENIENT = {
    "tensorflow": "status.expect_partial()",
    "pytorch": "load_state_dict(..., strict=False)",
    "keras": "model.load_weights(..., skip_mismatch=True)",
}


def _leftover_hint(framework: str, guess: str | None) -> str:
    drop = LENIENT[framework]
    lead = "a real weight no model variable restores: a renamed or removed layer?"
    if framework == "keras":  # Keras 3's load_weights ignores file entries no object asks for, silently
        lead += " (load_weights ignores it silently)"
    if guess:
        return f"{lead} did you mean `{guess}`? Rename it back (or map the key); if it is gone on purpose, {drop}"
    return f"{lead} if the layer is gone on purpose, {drop} drops it; otherwise the model lost it"


def _harmless_hint(framework: str, kind: str) -> str:
    if kind == "optimizer":
        if framework == "tensorflow":
            return (
                "optimizer state: restore tf.train.Checkpoint(model=..., optimizer=...) to resume training, "
                "or status.expect_partial() to drop it (safe)"
            )
        if framework == "keras":
            return "optimizer state: keras.saving.load_model restores it to resume training; load_weights skips it"
        return "optimizer state: optimizer.load_state_dict(...) to resume training, or ignore it (safe)"
    if kind == "counter":
        return "a step counter (save_counter, iterations, global_step): safe to drop"
    if kind == "metric":
        return "a compiled metric's running total/count (Keras resets it each epoch): safe to drop"
    if kind == "rng":
        return "a Dropout/noise layer's random-number state: safe to drop (only the random draws differ)"
    return "checkpoint bookkeeping (the object graph): nothing to restore"


def realign(
    file_keys: Iterable[str], model_keys: Iterable[str], modules: Iterable[str], sep: str = "."
) -> tuple[str, str, int]:
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
