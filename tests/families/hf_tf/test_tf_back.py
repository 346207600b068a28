"""The way back of the generic hf-tf road (``bridge/families/hf_tf/tf_back.py``): ``tf_model.h5`` written by
transformers 4.57.6 (``tests/fixtures/hf-tf-families/<TFClass>/tf``) -> PyTorch (bridge) -> ``tf_model.h5`` (bridge)
gives every dataset of the 4.57 file back: the same names (Keras' ``_N`` scope suffix aside: 4.57's loader drops
the first two path components' suffix when it matches names), shapes and bytes, and the ``layer_names`` and
``weight_names`` its loader reads.  A family not written back is refused by name (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.families.hf_tf.test_families import FAMILIES_DIR, TF_CLASSES

pytestmark = pytest.mark.slow


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(_unsuffixed(n), o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def _unsuffixed(name: str) -> str:
    return re.sub(r"^([^/]+/[^/]+?)_\d+/", r"\1/", name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _attrs(path: Path) -> tuple[set[str], dict[str, set[str]]]:
    with h5py.File(path) as f:
        layers = {_text(n) for n in f.attrs["layer_names"]}
        weights = {g: {_unsuffixed(f"{g}/{_text(w)}") for w in f[g].attrs["weight_names"]} for g in layers}
    return layers, weights


def _family(tf_class: str):  # noqa: ANN202 - a Family
    from bridge.families.hf_tf.generic_pack import FAMILIES

    return next(f for f in FAMILIES if tf_class.removeprefix("TF") in f.classes)


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_tf_model_h5_comes_back_bit_for_bit(tf_class: str, tmp_path: Path) -> None:
    from bridge.families.hf_tf.data import WRITTEN_BACK, back

    pt, back_dir = tmp_path / "pt", tmp_path / "tf"
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(pt))
    family = _family(tf_class)
    if family.model_type not in WRITTEN_BACK or tf_class.removeprefix("TF") in back.NOT_WRITTEN:
        out = run_cli("convert", str(pt), "--to", "tensorflow", "--target", "hf-tf", "-o", str(back_dir), code=2)
        assert family.model_type in out or tf_class.removeprefix("TF") in out
        return
    run_cli("convert", str(pt), "--to", "tensorflow", "--target", "hf-tf", "-o", str(back_dir))
    want, got = _datasets(FAMILIES_DIR / tf_class / "tf" / "tf_model.h5"), _datasets(back_dir / "tf_model.h5")
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert got[name].tobytes() == value.tobytes(), name
    want_layers, want_weights = _attrs(FAMILIES_DIR / tf_class / "tf" / "tf_model.h5")
    got_layers, got_weights = _attrs(back_dir / "tf_model.h5")
    assert got_layers == {g for g in want_layers if want_weights[g]}  # weightless layers (dropout) load as nothing
    assert got_weights == {g: w for g, w in want_weights.items() if w}
