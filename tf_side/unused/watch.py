"""`bridge.watch(keras_model)` and `bridge.keras.UnusedVariables`: the `bridge unused` classification, recorded
from the gradients the user's own loop (or ``model.fit``) computes.

One observation per gradient computation handed over: which trainable variables got a gradient (not ``None``:
exactly those Keras' "Gradients do not exist for variables" warning leaves out), and which were read:

* inside a ``tf.function`` (``model.fit``'s train step, a ``@tf.function`` custom step) the observation is made
  while the step is traced, and "read" is what `bridge unused` uses too: the variable's handle is captured by
  the traced function.  A traced step runs the same graph every batch, so one trace is one observation;
* eagerly, "read" is the tape's ``watched_variables()`` (pass ``tape=``), and every call is one observation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from bridge.core.errors import UsageError
from bridge.core.unused.report import UnusedReport
from tf_side.unused.trace import _tf, _tf_variable, build_report, frozen_variables


class _Recorder:
    """Gradient observations for one model's trainable variables."""

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "trainable_variables"):
            raise UsageError(
                "Not a TensorFlow model", detail=type(model).__name__, hint="Pass a Keras model or a tf.Module"
            )
        self.model = model
        self.observations: list[set[int]] = []  # ids of the variables a gradient reached, per observation
        self.read: set[int] = set()
        self.read_known = True

    def observe(self, grads: Iterable[Any], variables: Iterable[Any], tape: Any = None) -> None:
        tf = _tf()
        pairs = list(zip(list(grads), list(variables), strict=True))
        self.observations.append({id(_tf_variable(v)) for g, v in pairs if g is not None})
        if tf.inside_function():
            captured = {id(external) for external, _ in tf.compat.v1.get_default_graph().captures}
            self.read |= {id(_tf_variable(v)) for _, v in pairs if id(_tf_variable(v).handle) in captured}
        elif tape is not None:
            self.read |= {id(_tf_variable(v)) for v in tape.watched_variables()}
        else:
            self.read_known = False

    def report(self, notes: list[str]) -> UnusedReport:
        trainable = list(self.model.trainable_variables)
        steps = len(self.observations)
        grad_steps = [sum(id(_tf_variable(v)) in seen for seen in self.observations) for v in trainable]
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
            self.model, trainable, frozen_variables(self.model), grad_steps, max(steps, 1), is_read, notes
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
        notes = [
            f"after {self.seen} batch{'es' if self.seen != 1 else ''} of model.fit; a step is one trace of the "
            "train step (a traced step's missing gradients are the same every batch)"
        ]
        self.report = self._recorder.report(notes)
        _show(self.report, self.render, self.file)
