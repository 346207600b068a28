"""The Keras 2 h5 writer (tf_side.keras2_h5_writer) against tf-keras' own ``save_weights`` and ``load_weights``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.core.outputs import OutTensor
from tests.tf_side import _keras_writers as writers
from tests.tf_side._keras_writers import Written
from tf_side.keras2_h5_writer import KERAS_VERSION, write_keras2_h5


@pytest.fixture(scope="module")
def hf(tf, tmp_path_factory: pytest.TempPathFactory) -> Written:
    pytest.importorskip("tf_keras")
    return writers.hf_tf_layout(tmp_path_factory.mktemp("hf_export"))


def _rewrite(source: Path, out: Path, change: float = 0.0) -> Path:
    """Read ``source`` with bridge's reader and write it back, each value plus ``change``."""
    with bridge.load(source) as ckpt:
        tensors = [
            OutTensor(r.name, r.shape, r.dtype, lambda r=r: r.numpy() + np.float32(change)) for r in ckpt.values()
        ]
        return write_keras2_h5(out, tensors)[0]


def test_same_bytes_as_tf_keras_save_weights(hf: Written, tmp_path: Path) -> None:
    assert hf.facts["keras_version"] == KERAS_VERSION, "the byte comparison needs the tf-keras the layout mirrors"
    path = _rewrite(hf.files["h5"], tmp_path / "tf_model.h5")
    assert path.read_bytes() == hf.files["h5"].read_bytes()


def test_tf_keras_load_weights_reads_it(hf: Written, tmp_path: Path) -> None:
    """tf-keras' own loader (by topology: layer_names, weight_names order) takes the written values."""
    model = hf.facts["model"]
    path = _rewrite(hf.files["h5"], tmp_path / "shifted.h5", change=0.5)
    try:
        model.load_weights(str(path))
        for variable in model.weights:
            expected = hf.expected[f"bert/{variable.name}"] + np.float32(0.5)
            np.testing.assert_array_equal(variable.numpy(), expected, strict=True)
    finally:
        model.load_weights(str(hf.files["h5"]))


def test_bfloat16_is_refused_before_writing(tmp_path: Path) -> None:
    import ml_dtypes

    from bridge.core.errors import UnsupportedFeature

    value = np.zeros((2,), ml_dtypes.bfloat16)
    with pytest.raises(UnsupportedFeature, match="cannot hold bfloat16"):
        write_keras2_h5(tmp_path / "x.h5", [OutTensor("dense/dense/bias:0", (2,), "bfloat16", lambda: value)])
    assert not (tmp_path / "x.h5").exists()
