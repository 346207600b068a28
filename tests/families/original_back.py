"""What the way-back tests share: original TF1 checkpoint -> PyTorch (bridge) -> original (bridge), compared by
TensorFlow's own checkpoint reader: every model tensor back, same name, shape, dtype and bytes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bridge.commands.convert import convert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# optimizer slots and counters are not model tensors (AdamWeightDecay's adam_m/v, Adafactor's _slot_*, the step)
_NOT_MODEL = re.compile(r"(/adam_[mv]$|_slot_v[rc]?$|^global_step$)")


def round_trip(tf: Any, tmp_path: Path, original: Path, class_name: str, layout: str, weights: str) -> Path:
    """Convert ``original`` (a checkpoint prefix) to ``class_name`` and back to ``layout``; assert that every model
    tensor the written checkpoint holds is the original's, bit for bit, and that it holds them all.  Returns the
    written folder."""
    source = original.parent
    convert(source, to="pytorch", target=class_name, out=tmp_path / "pt")
    back = convert(tmp_path / "pt", to="tensorflow", target=layout, out=tmp_path / "tf")
    assert back.ok, back
    assert_written_back(tf, original, tmp_path / "tf" / weights)
    return tmp_path / "tf"


def assert_written_back(tf: Any, original: Path, written_prefix: Path) -> set[str]:
    """Every tensor of the checkpoint at ``written_prefix`` is the original's model tensor of that name, bit for
    bit (name, shape, dtype, bytes); returns the names written."""
    before = tf.train.load_checkpoint(str(original))
    after = tf.train.load_checkpoint(str(written_prefix))
    model = {n: s for n, s in before.get_variable_to_shape_map().items() if not _NOT_MODEL.search(n)}
    written = after.get_variable_to_shape_map()
    assert set(written) <= set(model), "names the original lacks"
    assert written == {n: model[n] for n in written}, "shapes differ"
    for name in written:
        a, b = before.get_tensor(name), after.get_tensor(name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    return set(written)


def model_names(tf: Any, original: Path) -> set[str]:
    reader = tf.train.load_checkpoint(str(original))
    return {n for n in reader.get_variable_to_shape_map() if not _NOT_MODEL.search(n)}
