"""Every transformers TF task-head class, both ways, against what transformers 4.57.6 itself wrote and converted:
``tests/fixtures/hf-tf-heads/<TFClass>/tf`` (``TF<Class>.save_pretrained``) and ``.../pt`` (4.57's own TF 2.0 ->
PyTorch loader, then ``save_pretrained``); see ``tests/fixtures/SOURCE.txt``.

The oracles are the frameworks: transformers 5's ``from_pretrained`` reads bridge's PyTorch output, safetensors'
own reader the 4.57 state dict, h5py both ``tf_model.h5`` files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli

HEADS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-heads"
TF_CLASSES = sorted(p.name for p in HEADS_DIR.iterdir())


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _h5_weights(path: Path) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """(Keras' weight name list per layer, every dataset by path) as h5py reads them.  Layers without
    weights (a classifier's ``dropout_40``, numbered by a process-wide counter) are left out: bridge does
    not write them, and Keras' and transformers' h5 loaders skip them."""
    names: dict[str, list[str]] = {}
    values: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for layer in f.attrs["layer_names"]:
            weights = [str(n) for n in f[layer].attrs["weight_names"]]
            if weights:
                names[str(layer)] = weights

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                values[name] = obj[()]

        f.visititems(visit)
    return names, values


def test_every_task_head_class_has_a_fixture():
    assert TF_CLASSES == sorted(
        [
            "TFBertForMaskedLM",
            "TFBertForSequenceClassification",
            "TFBertForTokenClassification",
            "TFBertForQuestionAnswering",
            "TFBertForMultipleChoice",
            "TFBertForNextSentencePrediction",
            "TFBertLMHeadModel",
        ]
    )


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_default_target_is_the_class_transformers_saved(tf_class):
    """Without --target the plan fills the class the file was saved from (its model scope names it)."""
    plan = json.loads(_run("check", str(HEADS_DIR / tf_class / "tf"), "--to", "pytorch", "--json"))
    assert plan["target"]["class"] == tf_class.removeprefix("TF")
    assert plan["ok"] and plan["missing"] == [] and plan["mismatched"] == []
    assert all(u["expected"] for u in plan["unused"])  # only the masked-LM head's copies of the embeddings


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_tf_file_to_transformers_5_equals_transformers_4_conversion(transformers, tmp_path, tf_class):
    """tf_model.h5 -> the transformers 5 class: loaded cleanly, every tensor bit-exact to 4.57's own conversion."""
    from safetensors.numpy import load_file

    class_name = tf_class.removeprefix("TF")
    out = tmp_path / "pt"
    _run("convert", str(HEADS_DIR / tf_class / "tf"), "--to", "pytorch", "--target", class_name, "-o", str(out), "-q")
    model, info = getattr(transformers, class_name).from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    state = model.state_dict()
    expected = load_file(HEADS_DIR / tf_class / "pt" / "model.safetensors")
    assert set(expected) <= set(state)
    for name, value in expected.items():
        np.testing.assert_array_equal(state[name].numpy(), value, strict=True, err_msg=name)
    # What 4.57 saved once (tied weights) is shared storage in the loaded model.
    stored = {state[name].data_ptr() for name in expected}
    assert all(state[name].data_ptr() in stored for name in set(state) - set(expected))


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_pytorch_weights_to_hf_tf_equal_transformers_4_file(tmp_path, tf_class):
    """4.57's PyTorch state dict -> --target hf-tf: the names (layer_names, weight_names, dataset paths) and
    every value of the tf_model.h5 that TF<Class>.save_pretrained wrote."""
    _run(
        "convert",
        str(HEADS_DIR / tf_class / "pt"),
        "--to",
        "tensorflow",
        "--target",
        "hf-tf",
        "-o",
        str(tmp_path / "tf"),
        "-q",
    )
    names, values = _h5_weights(tmp_path / "tf" / "tf_model.h5")
    expected_names, expected_values = _h5_weights(HEADS_DIR / tf_class / "tf" / "tf_model.h5")
    assert list(names.items()) == list(expected_names.items())  # layer order too
    assert list(values) == list(expected_values)
    for name, value in expected_values.items():
        np.testing.assert_array_equal(values[name], value, strict=True, err_msg=name)
    with h5py.File(HEADS_DIR / tf_class / "tf" / "tf_model.h5", "r") as f:
        weightless = len(f.attrs["layer_names"]) != len(expected_names)
    if not weightless:  # nothing left out: the very bytes transformers wrote
        assert (tmp_path / "tf" / "tf_model.h5").read_bytes() == (
            HEADS_DIR / tf_class / "tf" / "tf_model.h5"
        ).read_bytes()
    # config.json as TF<Class>.save_pretrained wrote it (architectures without the TF prefix, no dtype).
    assert (tmp_path / "tf" / "config.json").read_bytes() == (HEADS_DIR / tf_class / "tf" / "config.json").read_bytes()
    report = bridge.verify(HEADS_DIR / tf_class / "pt", tmp_path / "tf", forward=False)
    assert report.ok and report.values_equal == report.values_compared > 0
