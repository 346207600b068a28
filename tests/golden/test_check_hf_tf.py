"""`bridge check`/`convert` on transformers' TF layout: real ``tf_model.h5`` files written by transformers 4.57.6."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bridge

from .conftest import REPO

TF_BERT = "tests/fixtures/hf-tf-bert/tf_model.h5"
TF_PRETRAINING = "tests/fixtures/hf-tf-bert-pretraining/tf_model.h5"
PT_TWIN = REPO / "tests/fixtures/hf-tf-bert-pt/model.safetensors"


def test_tf_model_h5_to_bert_model(golden):
    out = golden("check_hf_tf_bert_BertModel.txt", ["check", TF_BERT, "--to", "pytorch", "--target", "BertModel"], 0)
    assert "rules: hf-tf" in out and "verdict: OK" in out
    assert "removed prefix `bert.`" in out


def test_tf_model_h5_names_every_parameter_source(golden):
    out = golden("check_hf_tf_bert_BertModel.json",
                 ["check", TF_BERT, "--to", "pytorch", "--target", "BertModel", "--json"], 0)  # fmt: skip
    plan = json.loads(out)
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    with bridge.load(PT_TWIN) as twin:
        assert set(sources) == {r.name for r in twin.values()}
    assert sources["encoder.layer.1.attention.self.query.weight"] == (
        "bert/tf_bert_model/bert/encoder/layer_._1/attention/self/query/kernel:0", "transpose"
    )
    assert sources["embeddings.word_embeddings.weight"] == (
        "bert/tf_bert_model/bert/embeddings/word_embeddings/weight:0", "identity"
    )
    assert plan["unused"] == [] and plan["missing"] == []


def test_pretraining_h5_default_target_and_embedding_copies(golden):
    out = golden("check_hf_tf_bert_pretraining_default.txt", ["check", TF_PRETRAINING, "--to", "pytorch"], 0)
    assert "target: transformers BertForPreTraining" in out
    assert "cls.predictions.decoder.weight = bert.embeddings.word_embeddings.weight" in out
    plan = bridge.check(REPO / TF_PRETRAINING, to="pytorch")
    copies = [u for u in plan.unused if "copy of the embeddings layer" in u.reason]
    assert len(copies) == 5 and all(u.expected for u in copies)
    # transformers' TF next-sentence head is a Dense: [in, out], transposed (google-research's is not).
    nsp = {m.target: m for m in plan.matched}["cls.seq_relationship.weight"]
    assert (nsp.transform, nsp.source_shape) == ("transpose", (16, 2))


@pytest.mark.parametrize("target", ["BertForMaskedLM", "BertModel"])
def test_pretraining_h5_into_smaller_classes(target):
    plan = bridge.check(REPO / TF_PRETRAINING, to="pytorch", target=target)
    assert plan.ok, plan.notes
    assert all(u.expected for u in plan.unused)


def test_convert_is_bit_exact_against_transformers_4_conversion(tmp_path):
    """Values equal, byte for byte, what transformers 4.57.6's own TF -> PyTorch loader produced."""
    out = tmp_path / "pt"
    result = bridge.convert(REPO / TF_BERT, to="pytorch", out=out, target="BertModel")
    assert result.plan.ok
    with bridge.load(out) as got, bridge.load(PT_TWIN) as twin:
        assert {r.name for r in got.values()} == {r.name for r in twin.values()}
        for r in twin.values():
            a, b = got[r.name].numpy(), r.numpy()
            assert a.dtype == b.dtype and a.shape == b.shape, r.name
            assert a.tobytes() == b.tobytes(), r.name
    report = bridge.verify(REPO / TF_BERT, out, forward=False)
    assert report.ok and report.values_equal == report.values_compared == 39
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_act"] == "gelu" and config["architectures"] == ["BertModel"]


def test_check_of_tf_model_h5_imports_neither_torch_nor_tensorflow():
    code = (
        "import sys, bridge\n"
        f"plan = bridge.check({str(REPO / TF_PRETRAINING)!r}, to='pytorch', target='BertForMaskedLM')\n"
        "assert plan.ok\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf_keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_save_pretrained_folder_with_tf_weights_only_is_its_tf_model_h5(tmp_path):
    import shutil

    fixtures = REPO / "tests" / "fixtures"
    with bridge.load(fixtures / "hf-tf-bert") as ckpt:
        assert ckpt.format == "keras-h5" and ckpt.path.endswith("tf_model.h5")
    both = tmp_path / "both"
    shutil.copytree(fixtures / "hf-tf-bert", both)
    shutil.copy(fixtures / "hf-tf-bert-pt" / "model.safetensors", both / "model.safetensors")
    with bridge.load(both) as ckpt:  # PyTorch weights beside it: the folder is a PyTorch checkpoint
        assert ckpt.format == "safetensors"
    with bridge.load(both, format="keras-h5") as ckpt:  # unless the TF weights are asked for
        assert ckpt.path.endswith("tf_model.h5")
