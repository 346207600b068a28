"""A Keras model built by the user's ``file.py:factory`` as a conversion target (PyTorch -> Keras).

The layout is the one Keras itself writes: the built model saves its (initial) weights to a
temporary ``.weights.h5`` and the native reader lists it, so names, shapes and every
object's ``vars`` group come from Keras' own ``saving_lib``, not from a re-implementation.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bridge.core.errors import MissingDependency, UsageError
from bridge.core.plan import TargetSpec, TargetTensor


def keras_spec(spec: str) -> TargetSpec:
    """Names, shapes and Keras 3 groups of the model that ``file.py:factory`` returns."""
    from bridge.core.factory import TARGET_CONTRACT, load_factory
    from tf_side.keras3_weights import read_keras3_weights

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
    except ImportError as e:
        raise MissingDependency("Keras 3 is needed to build the target model", hint="pip install tensorflow") from e
    model = load_factory(spec, TARGET_CONTRACT)()
    if not isinstance(model, keras.Model) or not keras.__version__.startswith("3."):
        raise UsageError(
            "The target factory did not return a Keras 3 model",
            detail=f"{spec} returned {type(model).__module__}.{type(model).__qualname__} (Keras {keras.__version__})",
            hint="Return a built keras.Model (Keras 3) from the factory",
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.weights.h5"
        model.save_weights(path)
        with read_keras3_weights(path) as layout:
            tensors = {r.name: TargetTensor(r.name, r.shape, r.dtype) for r in layout.values() if r.kind == "model"}
            object_names = dict(layout.metadata.get("object_names", {}))
    return TargetSpec(
        "tensorflow",
        f"Keras model from {spec}",
        tensors,
        class_name=type(model).__name__,
        metadata={"layout": "keras3", "object_names": object_names},
    )
