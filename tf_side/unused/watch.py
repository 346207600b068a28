"""`bridge.watch(keras_model)` and `bridge.keras.UnusedVariables`: the `bridge unused` classification, recorded
from the gradients the user's own loop (or ``model.fit``) computes.

One observation per gradient computation handed over: which trainable variables got a gradient (not ``None``:
exactly those Keras' "Gradients do not exist for variables" warning leaves out), and which were read:

* inside a ``tf.function`` (``model.fit``'s train step, a ``@tf.function`` custom step) the observation is made
  while the step is traced, and "read" is what `bridge unused` uses too: the variable's handle is captured by
  the traced function.  A traced step runs the same graph every batch, so one trace is one observation;
* eagerly, "read" is the tape's ``watched_variables()`` (pass ``tape=``), and every call is one observation.

Under a strategy with several replicas in sync (``tf.distribute.MirroredStrategy``) each replica's function is
traced apart, so each observation carries its replica id (static in that trace) and every variable's usage is
given per replica, as the PyTorch side gives it per rank.  A gradient is ``None`` per variable per trace, so
replicas differ only where the traced Python depends on the replica id; a data-dependent ``tf.cond`` gives the
branch not taken a zero gradient, never ``None``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from bridge.core.errors import UsageError
from bridge.core.unused.report import ParameterUsage, UnusedReport, classify_usage
from tf_side.unused.trace import _tf, _tf_variable, build_report, frozen_variables, variable_name


class _Recorder:
    """Gradient observations for one model's trainable variables."""

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "trainable_variables"):
            raise UsageError(
                "Not a TensorFlow model", detail=type(model).__name__, hint="Pass a Keras model or a tf.Module"
            )
        self.model = model
        self.observations: list[set[int]] = []  # ids of the variables a gradient reached, per observation
        self.replicas: list[int | None] = []  # the replica each observation was made on (None: no replicas)
        self.strategy = ""
        self.read: set[int] = set()
        self.read_known = True

    def observe(self, grads: Iterable[Any], variables: Iterable[Any], tape: Any = None) -> None:
        tf = _tf()
        pairs = list(zip(list(grads), list(variables), strict=True))
        self.observations.append({id(_tf_variable(v)) for g, v in pairs if g is not None})
        self.replicas.append(self._replica_id(tf))
        if tf.inside_function():
            captured = {id(external) for external, _ in tf.compat.v1.get_default_graph().captures}
            self.read |= {id(_tf_variable(v)) for _, v in pairs if id(_tf_variable(v).handle) in captured}
        elif tape is not None:
            self.read |= {id(_tf_variable(v)) for v in tape.watched_variables()}
        else:
            self.read_known = False

    def _replica_id(self, tf: Any) -> int | None:
        """The replica this observation is made on, where several replicas run in sync (static per trace)."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync < 2:
            return None
        self.strategy = type(tf.distribute.get_strategy()).__name__
        replica = tf.get_static_value(context.replica_id_in_sync_group)
        return None if replica is None else int(replica)

    def _usages(self, trainable: list[Any]) -> tuple[list[ParameterUsage], int | None]:
        """Each trainable variable's steps with a gradient, per replica where replicas were recorded."""
        replicated = any(r is not None for r in self.replicas)
        passes: dict[int, list[set[int]]] = {}
        for replica, seen in zip(self.replicas, self.observations, strict=True):
            passes.setdefault(replica or 0, []).append(seen)
        counts = {r: len(ps) for r, ps in sorted(passes.items())} or {0: 0}
        model_name = getattr(self.model, "name", None)
        usages = []
        for v in trainable:
            key = id(_tf_variable(v))
            by_rank = {r: tuple(s for s, seen in enumerate(passes.get(r, [])) if key in seen) for r in counts}
            steps = tuple(sorted({s for ss in by_rank.values() for s in ss}))
            usage = classify_usage(by_rank, counts)
            usages.append(ParameterUsage(variable_name(v, model_name), usage, steps, by_rank if replicated else None))
        return usages, len(counts) if replicated else None

    def report(self, notes: list[str]) -> UnusedReport:
        trainable = list(self.model.trainable_variables)
        steps = len(self.observations)
        grad_steps = [sum(id(_tf_variable(v)) in seen for seen in self.observations) for v in trainable]
        usages, ranks = self._usages(trainable)
        if ranks is not None:
            notes.append(
                f"{ranks} replicas of {self.strategy} recorded apart (steps counted from 0 on each): each replica's "
                "step is traced apart, and a gradient is None per variable per trace, so replicas differ only "
                "where the traced code depends on the replica id (a data-dependent tf.cond gives the branch not "
                "taken a zero gradient)"
            )
            if any(u.usage == "rank_dependent" for u in usages):
                notes.append(
                    "replicas computed gradients for different variables: the strategy's gradient all-reduce "
                    "raises while the step is traced (MirroredStrategy: AssertionError: Values to regroup had "
                    "different lengths)"
                )
        if steps == 0:
            notes.append("no gradients were handed over: nothing is known about them")
        if not self.read_known:
            notes.append(
                "eager gradients without tape=: a variable with no gradient is counted as read (no_gradient); "
                "pass tape=tape to tell never_read apart"
            )

        def is_read(v: Any) -> bool:
            return not self.read_known or id(_tf_variable(v)) in self.read

        report = build_report(
            self.model,
            trainable,
            frozen_variables(self.model),
            grad_steps,
            max(steps, 1),
            is_read,
            notes,
            usages,
            ranks,
        )
        report.steps = steps
        return report


def _show(report: UnusedReport, render: Callable[[UnusedReport], str] | None, file: TextIO | None) -> None:
    if render is not None:
        print(render(report), file=file or sys.stderr)


class TFWatch:
    """``with bridge.watch(model) as w:`` around a custom ``tf.GradientTape`` loop; hand each step's gradients
    over with ``grads = w.gradients(tape.gradient(loss, variables), variables, tape=tape)`` (returned as given)."""

    def __init__(
        self, model: Any, *, render: Callable[[UnusedReport], str] | None = None, file: TextIO | None = None
    ) -> None:
        self.recorder = _Recorder(model)
        self.render = render
        self.file = file
        self.report: UnusedReport | None = None

    def gradients(self, grads: Iterable[Any], variables: Iterable[Any] | None = None, tape: Any = None) -> list[Any]:
        grads = list(grads)
        if variables is None:
            variables = self.recorder.model.trainable_variables
        self.recorder.observe(grads, variables, tape)
        return grads

    def __enter__(self) -> TFWatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.report = self.recorder.report([])
        _show(self.report, self.render, self.file)


class FitWatch:
    """What ``bridge.keras.UnusedVariables`` does, apart from being a Keras callback (bridge/unused/keras.py makes the
    class): patch the optimizer's ``apply`` / ``apply_gradients`` so that the train step, retraced, hands its
    gradients over; report after ``batches`` batches (or at the end of training when there are fewer)."""

    def __init__(self, batches: int, render: Callable[[UnusedReport], str] | None, file: TextIO | None = None) -> None:
        if not isinstance(batches, int) or batches < 1:
            raise UsageError("Bad batches", detail=f"got {batches!r}", hint="Give a positive number of batches")
        self.batches = batches
        self.render = render
        self.file = file
        self.seen = 0
        self.report: UnusedReport | None = None
        self._recorder: _Recorder | None = None
        self._patched: tuple[Any, str] | None = None
        self._traced: tuple[Any, Any] | None = None  # (model, its train function) while guarded
        self._failure: str | None = None

    def begin(self, model: Any) -> None:
        if self.report is not None:
            return
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise UsageError("The model is not compiled", hint="Call model.compile(optimizer=..., loss=...) first")
        recorder = self._recorder = _Recorder(model)
        # Keras 3's apply_gradients calls apply; tf-keras optimizers have apply_gradients only.
        name = "apply" if hasattr(optimizer, "apply") and hasattr(optimizer, "build") else "apply_gradients"
        original = getattr(optimizer, name)

        def patched_apply(grads: Any, trainable_variables: Any = None) -> Any:
            grads = list(grads)
            variables = trainable_variables if trainable_variables is not None else model.trainable_variables
            recorder.observe(grads, variables)
            return original(grads, trainable_variables)

        def patched_apply_gradients(grads_and_vars: Any, *args: Any, **kwargs: Any) -> Any:
            pairs = list(grads_and_vars)
            recorder.observe([g for g, _ in pairs], [v for _, v in pairs])
            return original(pairs, *args, **kwargs)

        patched = patched_apply if name == "apply" else patched_apply_gradients
        object.__setattr__(optimizer, name, patched)
        self._patched = (optimizer, name)
        # A train function traced before (an earlier fit) would never call the patch: trace it again.
        if hasattr(model, "make_train_function"):
            model.make_train_function(force=True)
        traced = getattr(model, "train_function", None)
        if callable(traced):
            # fit raises past the callbacks when the step fails (replicas' gradients that differ): report first
            def guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return traced(*args, **kwargs)
                except Exception as e:
                    first = (str(e).splitlines() or [""])[0]
                    self._failure = f"{type(e).__name__}: {first.split('(<', 1)[0][:200]}"
                    self.finish()
                    raise

            model.train_function = guarded
            self._traced = (model, traced)

    def batch_end(self) -> None:
        self.seen += 1
        if self.seen == self.batches:
            self.finish()

    def finish(self) -> None:
        if self.report is not None or self._recorder is None:
            return
        if self._patched is not None:
            optimizer, name = self._patched
            try:
                object.__delattr__(optimizer, name)
            except AttributeError:
                pass
            self._patched = None
        if self._traced is not None:
            model, traced = self._traced
            model.train_function = traced
            self._traced = None
        notes = [
            f"after {self.seen} batch{'es' if self.seen != 1 else ''} of model.fit; a step is one trace of the "
            "train step (a traced step's missing gradients are the same every batch)"
        ]
        if self._failure is not None:
            notes.append(f"the train step raised (model.fit stops): {self._failure}")
        self.report = self._recorder.report(notes)
        _show(self.report, self.render, self.file)
