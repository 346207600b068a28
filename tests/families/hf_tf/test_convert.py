"""`bridge convert --to tensorflow --target hf-tf`: transformers' own ``tf_model.h5``, checked against the files
transformers 4.57.6 wrote (``tests/fixtures/hf-tf-bert*``), and `bridge verify` of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import bridge
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
TF_BERT = FIXTURES / "hf-tf-bert"  # TFBertModel.save_pretrained
TF_PRETRAINING = FIXTURES / "hf-tf-bert-pretraining"  # TFBertForPreTraining.save_pretrained
PT_TWIN = FIXTURES / "hf-tf-bert-pt"  # hf-tf-bert converted to BertModel by transformers 4.57.6 itself
HEADS = FIXTURES / "hf-tf-heads"  # each TF task-head class, and 4.57.6's PyTorch conversion of it


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")  # verify's reference forward; after torch (conftest order)
    return pytest.importorskip("transformers")


def _to_hf_tf(source: Path, out: Path, *extra: str) -> Path:
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "hf-tf", "-o", str(out), "-q", *extra)
    return out


def _structure(path: Path) -> dict[str, object]:
    """Everything of a Keras 2 h5 but the values: root attrs, each group's weight_names, each dataset's type."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        out["/"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}

        def visit(name: str, obj: h5py.HLObject) -> None:
            attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            out[name] = (attrs, obj.shape, obj.dtype.str) if isinstance(obj, h5py.Dataset) else attrs

        f.visititems(visit)
    return out


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


def _values(path: Path) -> dict[str, np.ndarray]:
    with bridge.load(path) as ckpt:
        return {r.name: r.numpy().copy() for r in ckpt.values() if r.kind == "model"}


def test_pytorch_twin_becomes_transformers_own_tf_model_h5(tmp_path):
    """The PyTorch twin of hf-tf-bert gives back the very file TFBertModel.save_pretrained wrote, byte for byte."""
    out = _to_hf_tf(PT_TWIN, tmp_path / "tf")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "tf_model.h5"]
    assert _structure(out / "tf_model.h5") == _structure(TF_BERT / "tf_model.h5")
    assert (out / "tf_model.h5").read_bytes() == (TF_BERT / "tf_model.h5").read_bytes()
    assert (out / "config.json").read_bytes() == (TF_BERT / "config.json").read_bytes()


def test_written_h5_has_keras_2_structure(tmp_path):
    out = _to_hf_tf(PT_TWIN, tmp_path / "tf")
    with h5py.File(out / "tf_model.h5", "r") as f:
        assert dict(f.attrs) | {"layer_names": list(f.attrs["layer_names"])} == {
            "layer_names": ["bert"],
            "backend": "tensorflow",
            "keras_version": "2.21.0",
        }
        names = list(f["bert"].attrs["weight_names"])
        assert names[:3] == [
            "tf_bert_model/bert/embeddings/word_embeddings/weight:0",
            "tf_bert_model/bert/embeddings/token_type_embeddings/embeddings:0",
            "tf_bert_model/bert/embeddings/position_embeddings/embeddings:0",
        ]
        assert f["bert"][names[5]].shape == (16, 16) and f["bert"][names[5]].dtype == np.float32
        assert f["top_level_model_weights"].attrs["weight_names"].shape == (0,)
    # Read back natively: the names, shapes and values are the source's after the transform.
    with bridge.load(out) as ckpt:
        assert ckpt.format == "keras-h5" and ckpt.metadata["layout"] == "hf-tf"
        kernel = ckpt["bert/tf_bert_model/bert/encoder/layer_._1/intermediate/dense/kernel:0"].numpy()
    source = _values(PT_TWIN)
    np.testing.assert_array_equal(kernel, source["encoder.layer.1.intermediate.dense.weight"].T, strict=True)


def test_round_trip_hf_tf_pytorch_hf_tf_gives_back_the_file(tmp_path):
    """TFBertForPreTraining's file -> PyTorch -> hf-tf: the same bytes, masked-LM embedding copies included."""
    run_cli("convert", str(TF_PRETRAINING), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    text = run_cli(
        "convert", str(tmp_path / "pt"), "--to", "tensorflow", "--target", "hf-tf", "-o", str(tmp_path / "tf")
    )
    assert "51 tensors" in text and "5 tied tensors" in text
    assert _structure(tmp_path / "tf" / "tf_model.h5") == _structure(TF_PRETRAINING / "tf_model.h5")
    assert (tmp_path / "tf" / "tf_model.h5").read_bytes() == (TF_PRETRAINING / "tf_model.h5").read_bytes()
    assert (tmp_path / "tf" / "config.json").read_bytes() == (TF_PRETRAINING / "config.json").read_bytes()


def test_round_trip_pytorch_hf_tf_pytorch_is_bit_exact(transformers, tmp_path):
    """A transformers 5 BertForPreTraining -> hf-tf -> PyTorch: every tensor bit-exact, loaded cleanly."""
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    transformers.BertForPreTraining(config).save_pretrained(tmp_path / "src")
    _to_hf_tf(tmp_path / "src", tmp_path / "tf")
    assert json.loads((tmp_path / "tf" / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    run_cli("convert", str(tmp_path / "tf"), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    before, after = _values(tmp_path / "src"), _values(tmp_path / "pt")
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], strict=True)
    _, info = transformers.BertForPreTraining.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert all(not v for v in info.values())


def test_verify_compares_every_tensor_and_the_forward_pass(transformers, tmp_path):
    """Values bit for bit (the masked-LM copies against their owners too) and the exact-gelu forward within 1e-5."""
    run_cli("convert", str(TF_PRETRAINING), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    out = _to_hf_tf(tmp_path / "pt", tmp_path / "tf")
    report = json.loads(run_cli("verify", str(tmp_path / "pt"), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"] == 51
    assert {o["name"] for o in report["outputs"]} == {"sequence_output", "pooled_output", "mlm_logits", "nsp_logits"}
    assert max(o["max_abs"] for o in report["outputs"]) <= 1e-5
    # The other way too: transformers' TF file against the PyTorch model converted from it.
    report = json.loads(run_cli("verify", str(TF_PRETRAINING), str(tmp_path / "pt"), "--json"))
    assert report["ok"] and len(report["outputs"]) == 4


def test_verify_fails_on_a_changed_copy(tmp_path):
    """A masked-LM embedding copy that differs from the embeddings layer is a failure, not a pass."""
    run_cli("convert", str(TF_PRETRAINING), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    out = _to_hf_tf(tmp_path / "pt", tmp_path / "tf")
    copy = "mlm___cls/tf_bert_for_pre_training/bert/embeddings/LayerNorm/beta:0"
    with h5py.File(out / "tf_model.h5", "r+") as f:
        f[copy][0] += 1.0
    report = bridge.verify(tmp_path / "pt", out, forward=False)
    assert not report.ok and report.value_failures == [
        f"{copy}: differs from `bert/tf_bert_for_pre_training/bert/embeddings/LayerNorm/beta:0`, which it copies"
    ]


@pytest.mark.parametrize(("layout", "weights"), [("google-bert", "bert_model.ckpt"), ("hf-tf", "tf_model.h5")])
def test_multiple_choice_both_layouts_and_back(transformers, tmp_path, layout, weights):
    """One score per choice: a classifier of one unit, whatever id2label says (3 labels here); the forward
    check runs the base.  The source is transformers 4.57.6's own conversion of TFBertForMultipleChoice."""
    source = HEADS / "TFBertForMultipleChoice"
    assert len(json.loads((source / "pt" / "config.json").read_text())["id2label"]) == 3
    run_cli("convert", str(source / "pt"), "--to", "tensorflow", "--target", layout, "-o", str(tmp_path / "tf"))
    with bridge.load(tmp_path / "tf" / weights) as ckpt:
        units = {r.shape for r in ckpt.values() if "classifier" in r.name or r.name.startswith("output_")}
    assert units in ({(8, 1), (1,)}, {(1, 8), (1,)})
    if layout == "hf-tf":  # the datasets and values transformers 4.57.6 wrote, read by h5py
        written, expected = _datasets(tmp_path / "tf" / weights), _datasets(source / "tf" / weights)
        assert written.keys() == expected.keys()
        assert all(np.array_equal(written[n], expected[n]) for n in expected)
    report = json.loads(run_cli("verify", str(source / "pt"), str(tmp_path / "tf"), "--json"))
    assert report["ok"] and {o["name"] for o in report["outputs"]} == {"sequence_output", "pooled_output"}
    run_cli(
        "convert",
        str(tmp_path / "tf"),
        "--to",
        "pytorch",
        "--target",
        "BertForMultipleChoice",
        "-o",
        str(tmp_path / "back"),
    )
    _, info = transformers.BertForMultipleChoice.from_pretrained(tmp_path / "back", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_float16_is_written_and_bfloat16_refused(tmp_path):
    out = _to_hf_tf(PT_TWIN, tmp_path / "f16", "--dtype", "float16")
    with h5py.File(out / "tf_model.h5", "r") as f:
        assert f["bert/tf_bert_model/bert/pooler/dense/kernel:0"].dtype == np.float16
    text = run_cli(
        "convert",
        str(PT_TWIN),
        "--to",
        "tensorflow",
        "--target",
        "hf-tf",
        "-o",
        str(tmp_path / "bf16"),
        "--dtype",
        "bfloat16",
        code=2,
    )
    assert "Keras 2 h5 files cannot hold bfloat16" in text and "--dtype float32" in text
    assert not (tmp_path / "bf16").exists()


def test_format_must_fit_the_layout(tmp_path):
    text = run_cli(
        "convert",
        str(PT_TWIN),
        "--to",
        "tensorflow",
        "--target",
        "hf-tf",
        "-o",
        str(tmp_path / "x"),
        "--format",
        "google-bert",
        code=2,
    )
    assert "The hf-tf layout is written as tf_model.h5" in text
    run_cli(
        "convert",
        str(PT_TWIN),
        "--to",
        "tensorflow",
        "--target",
        "hf-tf",
        "-o",
        str(tmp_path / "y"),
        "-q",
        "--format",
        "hf-tf",
    )


def test_conversion_imports_neither_torch_nor_tensorflow(tmp_path):
    code = (
        "import sys, bridge\n"
        f"bridge.convert({str(PT_TWIN)!r}, to='tensorflow', target='hf-tf', out={str(tmp_path / 'out')!r})\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf_keras', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
