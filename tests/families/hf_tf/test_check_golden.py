"""`bridge check`/`convert` on transformers' TF layout: real ``tf_model.h5`` files written by transformers 4.57.6."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bridge
from tests.golden.conftest import REPO

TF_BERT = "tests/fixtures/hf-tf-bert/tf_model.h5"
TF_PRETRAINING = "tests/fixtures/hf-tf-bert-pretraining/tf_model.h5"
PT_TWIN = REPO / "tests/fixtures/hf-tf-bert-pt/model.safetensors"


def test_tf_model_h5_to_bert_model(golden):
    out = golden("check_hf_tf_bert_BertModel.txt", ["check", TF_BERT, "--to", "pytorch", "--target", "BertModel"], 0)
    assert "rules: hf-tf" in out and "verdict: OK" in out
    assert "removed prefix `bert.`" in out


def test_tf_model_h5_names_every_parameter_source(golden):
    out = golden(
        "check_hf_tf_bert_BertModel.json", ["check", TF_BERT, "--to", "pytorch", "--target", "BertModel", "--json"], 0
    )
    plan = json.loads(out)
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    with bridge.load(PT_TWIN) as twin:
        assert set(sources) == {r.name for r in twin.values()}
    assert sources["encoder.layer.1.attention.self.query.weight"] == (
        "bert/tf_bert_model/bert/encoder/layer_._1/attention/self/query/kernel:0",
        "transpose",
    )
    assert sources["embeddings.word_embeddings.weight"] == (
        "bert/tf_bert_model/bert/embeddings/word_embeddings/weight:0",
        "identity",
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


# --- PyTorch -> hf-tf: the TF layout, the pack choice --------------------------------------------------------------

PT_BERT_TWIN = "tests/fixtures/hf-tf-bert-pt"


def _heads(tf_class: str) -> tuple[str, ...]:
    from bridge.families.google_bert import pack as bert

    pooler, tasks = bert.CLASSES[tf_class.removeprefix("TF")]
    return ("pooler",) * pooler + tasks


_HEAD_CLASSES = sorted(p.name for p in (REPO / "tests/fixtures/hf-tf-heads").iterdir())


@pytest.mark.parametrize(
    ("folder", "tf_class"),
    [
        ("hf-tf-bert", "TFBertModel"),
        ("hf-tf-bert-pretraining", "TFBertForPreTraining"),
        *((f"hf-tf-heads/{name}/tf", name) for name in _HEAD_CLASSES),
    ],
)
def test_tf_layout_is_what_transformers_wrote(folder, tf_class):
    """Names, shapes and order (Keras' layer and weight order) equal transformers 4.57.6's own files."""
    from bridge.families.hf_tf import pack as hf_tf

    config = json.loads((REPO / "tests/fixtures" / folder / "config.json").read_text())
    heads = _heads(tf_class)
    assert hf_tf.tf_class(heads, config) == tf_class
    with bridge.load(REPO / "tests/fixtures" / folder / "tf_model.h5") as ckpt:
        written = [(r.name, r.shape) for r in ckpt.values()]
    assert list(hf_tf.tf_layout(config, heads).items()) == written


@pytest.mark.parametrize(
    "class_name",
    [
        "BertModel",
        "BertForPreTraining",
        "BertForMaskedLM",
        "BertForNextSentencePrediction",
        "BertForSequenceClassification",
        "BertForTokenClassification",
        "BertForQuestionAnswering",
    ],
)
def test_tf_layout_maps_onto_the_pytorch_class(class_name):
    """The hf-tf layout of each class, through the pack's own rules, is the PyTorch class (torch-free table)."""
    from bridge.families.google_bert import pack as bert
    from bridge.families.hf_tf import pack as hf_tf

    # As transformers' config.json has it: id2label, no num_labels.
    config = {
        "hidden_size": 8,
        "intermediate_size": 12,
        "vocab_size": 20,
        "num_hidden_layers": 2,
        "max_position_embeddings": 10,
        "type_vocab_size": 2,
        "id2label": {"0": "A", "1": "B", "2": "C"},
    }
    pooler, tasks = bert.CLASSES[class_name]
    heads = (["pooler"] if pooler else []) + list(tasks)
    assert hf_tf.tf_class(heads) == "TF" + class_name
    layout = hf_tf.tf_layout(config, heads)
    mapped, copies = {}, {}
    for name, shape in layout.items():
        hit = hf_tf.PACK.map_name(name)
        if hit is None:
            copies[name] = hf_tf.PACK.copy_owner(name, layout)
            continue
        mapped[hit[0]] = hit[1].shape(shape)
    pt = {n: s for n, (s, tied) in hf_tf.PACK.pt.targets[class_name](config).items() if tied is None}
    if class_name == "BertModel":
        pt = {"bert." + n: s for n, s in pt.items()}
    assert mapped == pt
    # The masked-LM group's copies of the embeddings, each tied to the embeddings layer's own.
    assert all(owner is not None and owner.startswith("bert/") for owner in copies.values())
    assert len(copies) == (5 if "mlm" in tasks else 0)


def test_pytorch_to_hf_tf_plan(golden):
    out = golden(
        "check_hf_tf_bert_pt_to_hf_tf.txt", ["check", PT_BERT_TWIN, "--to", "tensorflow", "--target", "hf-tf"], 0
    )
    assert "rules: hf-tf" in out and "target: hf-tf TF layout (TFBertModel)" in out and "verdict: OK" in out


def test_pack_for_a_pytorch_source_is_chosen_by_its_tf_side():
    twin = REPO / PT_BERT_TWIN
    assert bridge.check(twin, to="tensorflow").pack == "google-bert"  # the default layout
    assert bridge.check(twin, to="tensorflow", target="hf-tf").pack == "hf-tf"
    plan = bridge.check(twin, to="tensorflow", target=str(REPO / TF_BERT))  # a reference tf_model.h5
    assert plan.pack == "hf-tf" and plan.ok and len(plan.matched) == 39
    pretraining = bridge.check(twin, to="tensorflow", target=str(REPO / TF_PRETRAINING))
    scope = "tf_bert_for_pre_training/bert/embeddings"
    assert {t.name: t.tied_to for t in pretraining.tied} == {
        f"mlm___cls/{scope}/{leaf}": f"bert/{scope}/{leaf}"
        for leaf in (
            "word_embeddings/weight:0",
            "token_type_embeddings/embeddings:0",
            "position_embeddings/embeddings:0",
            "LayerNorm/gamma:0",
            "LayerNorm/beta:0",
        )
    }
    with pytest.raises(bridge.core.errors.UsageError, match="Unknown TensorFlow layout 'keras'"):
        bridge.check(twin, to="tensorflow", target="keras")
