"""`bridge unused`, the product: which parameters a training step leaves without a gradient, and why.

One package per floor: the report types in ``bridge.core.unused`` (``report``: the classification, ``restore``:
checkpoint vs model), the framework sides in ``pt_side.unused`` and ``tf_side.unused`` (``trace``: a model run on
its batch, ``watch``: inside the user's own loop, plus ``ddp`` and the TF1 ``meta_graph``), and here the front:
:mod:`~bridge.unused.dispatch` (``find_unused``, ``watch``, ``checkpoint_vs_model``, the CLI's ``run_unused``),
:mod:`~bridge.unused.sides` (each job's framework side, imported when called) and :mod:`~bridge.unused.keras`
(``bridge.keras.UnusedVariables``, the ``model.fit`` callback).  Importing it imports no framework.
"""

from __future__ import annotations

from bridge.unused.dispatch import (
    checkpoint_vs_model,
    find_unused,
    find_unused_in_graph,
    framework_of,
    is_meta_graph,
    run_unused,
    unused_from_spec,
    watch,
)

__all__ = [
    "checkpoint_vs_model",
    "find_unused",
    "find_unused_in_graph",
    "framework_of",
    "is_meta_graph",
    "run_unused",
    "unused_from_spec",
    "watch",
]
