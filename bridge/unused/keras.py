"""``bridge.keras.UnusedVariables``: a Keras callback for ``model.fit`` that says which trainable variables got no
gradient in the first batches, and why (the `bridge unused` classification, by layer path, with the fix).

The class subclasses ``keras.callbacks.Callback`` (Keras 3), so it is made on first access (module
``__getattr__``): ``import bridge`` and ``import bridge.keras`` import no framework.

    model.fit(x, y, callbacks=[bridge.keras.UnusedVariables(batches=3)])

After ``batches`` batches (or when training ends before) the report is printed (stderr; ``quiet=True`` does not)
and kept on ``callback.report``.  The callback wraps the optimizer's ``apply``/``apply_gradients`` while the train
step is traced again, and takes the gradients the step hands it (see tf_side/unused/watch.py).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["UnusedVariables"]  # noqa: F822 - made on first access by __getattr__


def _make_callback_class() -> type:
    keras = importlib.import_module("keras")  # the top-level Keras 3 package, never this module
    from bridge.unused.render import render_unused
    from tf_side.unused.watch import FitWatch

    class UnusedVariables(keras.callbacks.Callback):  # type: ignore[misc,name-defined,unused-ignore]
        """Report, after the first ``batches`` batches of ``model.fit``, the trainable variables that got no
        gradient (``never_read`` / ``no_gradient`` / ``sometimes``, and ``frozen``), folded by layer, with the fix.
        """

        def __init__(self, batches: int = 1, *, quiet: bool = False, file: Any = None) -> None:
            super().__init__()
            self._watch = FitWatch(batches, None if quiet else render_unused, file)

        @property
        def report(self) -> Any:
            return self._watch.report

        def on_train_begin(self, logs: Any = None) -> None:
            self._watch.begin(self.model)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._watch.batch_end()

        def on_train_end(self, logs: Any = None) -> None:
            self._watch.finish()

    UnusedVariables.__module__ = "bridge.keras"  # its public home
    return UnusedVariables


def __getattr__(name: str) -> Any:
    if name == "UnusedVariables":
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
