"""`model.fit` under `tf.distribute.MirroredStrategy` on 2 logical CPU devices, with `bridge.keras.UnusedVariables`
(tests/tf_side/test_watch_replicas.py).  Run in its own process: the logical devices must be set before any op.

``python mirrored_fit.py SCENARIO OUT.json``, SCENARIO one of ``skip`` (replica 1's call leaves tower ``b`` out),
``skip_touched`` (it touches ``b`` with a zero-weighted term), ``data_dependent`` (``b`` in a ``tf.cond`` branch no
batch takes): writes the callback's report, whether fit ran, and what it raised.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: TID253 - a user training script

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

import bridge  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tf_models  # noqa: E402

SCENARIOS = {
    "skip": {"skip_on_replica": 1},
    "skip_touched": {"skip_on_replica": 1, "touch_skipped": True},
    "data_dependent": {"data_dependent": True},
}


def main(scenario: str, out: Path) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model, _ = tf_models.keras_replica_towers(**SCENARIOS[scenario])
        model.compile(optimizer="sgd", loss="mse")
    callback = bridge.keras.UnusedVariables(batches=2)
    x, y = np.ones((16, 4), "float32"), np.zeros((16, 2), "float32")
    raised = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "Gradients do not exist" on replica 1
        try:
            model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
        except Exception as e:
            raised = f"{type(e).__name__}: {e}"
    report = callback.report.to_json() if callback.report is not None else None
    result = {"replicas": strategy.num_replicas_in_sync, "ran": raised is None, "raised": raised, "report": report}
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
