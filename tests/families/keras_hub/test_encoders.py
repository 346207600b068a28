"""KerasHub encoder families beyond BERT: RoBERTa, XLM-RoBERTa, ELECTRA, ALBERT and DeBERTa-v3, both ways. Tiny
models made by each library's own code with random weights; forwards on a padded batch within 1e-5, KerasHub's own
importer reading bridge's output back, round trips bit-exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli
from tests.families.keras_hub.test_preset_writer import _loaded, _refused_as_preset, _same_tensors, _saved, _to_preset
from tests.families.keras_hub.test_presets import _keras_hub_reads_back, _numpy, _randomized

# RoBERTa pads with id 1 (transformers derives positions from it), starts with 0 and ends with 2.
IDS = np.array([[0, 7, 9, 11, 2, 1, 1, 1], [0, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")
MASK = (IDS != 1).astype("int32")
_SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}
ROBERTAS = ("Roberta", "XLMRoberta")  # the KerasHub prefix and transformers' are the same


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _keras_classifier(keras_hub: Any, prefix: str, folder: Path) -> tuple[Path, Any]:
    backbone = getattr(keras_hub.models, f"{prefix}Backbone")(vocabulary_size=30, **_SIZES)
    task = _randomized(getattr(keras_hub.models, f"{prefix}TextClassifier")(backbone, 3, preprocessor=None))
    task.save_to_preset(str(folder / "preset"))
    return folder / "preset", task


def _pt_inputs(torch: Any) -> dict[str, Any]:
    return {"input_ids": torch.tensor(IDS).long(), "attention_mask": torch.tensor(MASK).long()}


@pytest.mark.parametrize("prefix", ROBERTAS)
@pytest.mark.slow
def test_roberta_preset_to_transformers_same_logits(transformers, torch, keras_hub, prefix, tmp_path):
    """The logits and the backbone's hidden states of the real tokens; the position table gains its two padding
    rows and the token-type table is zeros; KerasHub's own importer reads the backbone back bit-exact."""
    preset, task = _keras_classifier(keras_hub, prefix, tmp_path)
    out = tmp_path / "pt"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    model, info = getattr(transformers, f"{prefix}ForSequenceClassification").from_pretrained(
        out, output_loading_info=True
    )
    assert not any(info.values()), info
    embeddings = model.roberta.embeddings
    assert not embeddings.token_type_embeddings.weight.detach().numpy().any()
    positions = embeddings.position_embeddings.weight.detach().numpy()
    kept = _numpy(task.backbone.embeddings.position_embedding.position_embeddings)
    assert not positions[:2].any() and positions[2:].tobytes() == kept.tobytes()
    inputs = {"token_ids": IDS, "padding_mask": MASK}
    with torch.no_grad():
        got = model.eval()(**_pt_inputs(torch)).logits.numpy()
        hidden = model.roberta(**_pt_inputs(torch))[0].numpy()
    np.testing.assert_allclose(got, _numpy(task(inputs, training=False)), atol=1e-5)
    np.testing.assert_allclose(hidden[MASK == 1], _numpy(task.backbone(inputs))[MASK == 1], atol=1e-5)
    _keras_hub_reads_back(keras_hub, task.backbone, out)
    again = _to_preset(out, tmp_path / "again")
    _same_tensors(preset, again)


def _pt_classifier(transformers: Any, torch: Any, prefix: str, folder: Path) -> tuple[Path, Any]:
    """A transformers classifier, random, with what KerasHub drops as converted RoBERTa checkpoints hold it:
    zero token types and zero padding rows of the position table."""
    config = getattr(transformers, f"{prefix}Config")(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=18,
        type_vocab_size=1,
        layer_norm_eps=1e-5,  # what real RoBERTa checkpoints use (transformers' default is BERT's 1e-12)
        num_labels=3,
    )
    model = getattr(transformers, f"{prefix}ForSequenceClassification")(config)
    path = _saved(model, folder / "hf", torch)
    embeddings = model.roberta.embeddings
    with torch.no_grad():
        embeddings.token_type_embeddings.weight.zero_()
        embeddings.position_embeddings.weight[:2].zero_()
    model.save_pretrained(path)
    return path, model


@pytest.mark.parametrize("prefix", ROBERTAS)
@pytest.mark.slow
def test_roberta_transformers_to_preset_same_logits(transformers, torch, keras_hub, prefix, tmp_path):
    src, model = _pt_classifier(transformers, torch, prefix, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    assert json.loads((preset / "config.json").read_text())["config"]["max_sequence_length"] == 16
    task = _loaded(getattr(keras_hub.models, f"{prefix}TextClassifier").from_preset, preset)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == f"{prefix}Backbone"
    inputs = {"token_ids": IDS, "padding_mask": MASK}
    with torch.no_grad():
        logits = model(**_pt_inputs(torch)).logits.numpy()
        hidden = model.roberta(**_pt_inputs(torch))[0].numpy()
    np.testing.assert_allclose(_numpy(task(inputs, training=False)), logits, atol=1e-5)
    np.testing.assert_allclose(_numpy(backbone(inputs))[MASK == 1], hidden[MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


def test_roberta_token_types_kerashub_lacks_are_refused_unless_zero(transformers, torch, tmp_path):
    """Token types KerasHub would drop while the model adds them: a gap, no preset written."""
    src, model = _pt_classifier(transformers, torch, "Roberta", tmp_path)
    with torch.no_grad():
        model.roberta.embeddings.token_type_embeddings.weight.fill_(0.5)
    model.save_pretrained(src)
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "o"), code=1)
    assert "token_type_embeddings" in out and "token types" in out
    assert not (tmp_path / "o").exists()


_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "c", "\u0120", "\u0120a", "ab", "\u0120ab", "bc", "<mask>"]
_MERGES = ["\u0120 a", "a b", "\u0120a b", "b c"]


@pytest.mark.slow
def test_roberta_backbone_and_bpe_tokenizer_both_ways(transformers, torch, keras_hub, tmp_path):
    """A RobertaBackbone alone: RobertaModel's pooler, which the backbone does not compute, is zeros on the way in
    and dropped (expected) on the way out; the byte-level BPE tokenizer gives the same ids both ways."""
    models = keras_hub.models
    backbone = _randomized(models.RobertaBackbone(vocabulary_size=30, **_SIZES))
    backbone.save_to_preset(str(tmp_path / "preset"))
    tokenizer = models.RobertaTokenizer(vocabulary={p: i for i, p in enumerate(_PIECES)}, merges=_MERGES)
    tokenizer.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.RobertaModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    assert not model.pooler.dense.weight.detach().numpy().any()
    with torch.no_grad():
        hidden = model.eval()(**_pt_inputs(torch))[0].numpy()
    expected = _numpy(backbone({"token_ids": IDS, "padding_mask": MASK}))
    np.testing.assert_allclose(hidden[MASK == 1], expected[MASK == 1], atol=1e-5)
    sentence = "ab a abc cab"
    ids = _numpy(tokenizer(sentence)).tolist()
    assert transformers.AutoTokenizer.from_pretrained(out).encode(sentence, add_special_tokens=False) == ids
    src = _saved(model, tmp_path / "hf", torch)  # a random pooler now: dropped as expected on the way out
    with torch.no_grad():
        model.embeddings.token_type_embeddings.weight.zero_()
    model.save_pretrained(src)
    assert "expected: pooler" in run_cli("check", str(src), "--to", "tensorflow", "--target", "keras-hub")
    for name in ("vocab.json", "merges.txt"):
        (src / name).write_bytes((out / name).read_bytes())
    preset = _to_preset(src, tmp_path / "again")
    assert _numpy(keras_hub.tokenizers.Tokenizer.from_preset(str(preset))(sentence)).tolist() == ids
    again = _loaded(keras_hub.models.Backbone.from_preset, preset)
    with torch.no_grad():
        hidden = model(**_pt_inputs(torch))[0].numpy()
    got = _numpy(again({"token_ids": IDS, "padding_mask": MASK}))
    np.testing.assert_allclose(got[MASK == 1], hidden[MASK == 1], atol=1e-5)


# ELECTRA's embeddings projected to the hidden size (ELECTRA-small's shape) or not (base, large).
ELECTRA_EMBEDDINGS = (4, 8)
_BERT_IDS = np.array([[2, 7, 9, 11, 3, 0, 0, 0], [2, 5, 6, 8, 12, 14, 20, 3]], dtype="int32")
_BERT_MASK = (_BERT_IDS != 0).astype("int32")


def _electra_inputs(torch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    keras = {"token_ids": _BERT_IDS, "segment_ids": np.zeros_like(_BERT_IDS), "padding_mask": _BERT_MASK}
    return keras, {"input_ids": torch.tensor(_BERT_IDS).long(), "attention_mask": torch.tensor(_BERT_MASK).long()}


@pytest.mark.parametrize("embedding_dim", ELECTRA_EMBEDDINGS)
@pytest.mark.slow
def test_electra_preset_to_transformers_same_hidden_states(transformers, torch, keras_hub, embedding_dim, tmp_path):
    """KerasHub has no ELECTRA importer: bridge's ElectraModel gives the backbone's hidden states; the pooled
    output's Dense, which ElectraModel has not, is dropped as expected; back to a preset bit-exact."""
    backbone = _randomized(keras_hub.models.ElectraBackbone(vocab_size=30, embedding_dim=embedding_dim, **_SIZES))
    backbone.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    text = run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    assert "transformers' ElectraModel has no tensor for" in run_cli(
        "check", str(tmp_path / "preset"), "--to", "pytorch"
    )
    assert "wrote" in text
    model, info = transformers.ElectraModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    keras_inputs, pt_inputs = _electra_inputs(torch)
    with torch.no_grad():
        hidden = model.eval()(**pt_inputs)[0].numpy()
    expected = _numpy(backbone(keras_inputs)["sequence_output"])
    np.testing.assert_allclose(hidden[_BERT_MASK == 1], expected[_BERT_MASK == 1], atol=1e-5)
    again = _to_preset(out, tmp_path / "again")
    pooler = f"layers/dense{'_1' if embedding_dim != 8 else ''}/vars/"
    with bridge.load(tmp_path / "preset") as x, bridge.load(again) as y:
        names = sorted(r.name for r in x.values() if r.kind == "model")
        assert names == sorted(r.name for r in y.values() if r.kind == "model")
        for name in names:  # the pooled Dense comes back as zeros, every other variable bit-exact
            want = np.zeros_like(x[name].numpy()) if name.startswith(pooler) else x[name].numpy()
            assert y[name].numpy().tobytes() == want.tobytes(), name


@pytest.mark.parametrize("embedding_dim", ELECTRA_EMBEDDINGS)
@pytest.mark.slow
def test_electra_transformers_to_preset_same_hidden_states(transformers, torch, keras_hub, embedding_dim, tmp_path):
    """KerasHub cannot import ELECTRA; bridge's preset loads in KerasHub with the discriminator's hidden states,
    its pooled Dense zeros; back to transformers bit-exact."""
    config = transformers.ElectraConfig(
        vocab_size=30,
        embedding_size=embedding_dim,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        hidden_act="gelu_new",
    )
    src = _saved(transformers.ElectraModel(config), tmp_path / "hf", torch)
    model = transformers.ElectraModel.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == "ElectraBackbone"
    assert not _numpy(backbone.pooled_dense.kernel).any()
    keras_inputs, pt_inputs = _electra_inputs(torch)
    with torch.no_grad():
        hidden = model(**pt_inputs)[0].numpy()
    got = _numpy(backbone(keras_inputs)["sequence_output"])
    np.testing.assert_allclose(got[_BERT_MASK == 1], hidden[_BERT_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


_ALBERT = {"num_layers": 4, "num_heads": 2, "hidden_dim": 8, "embedding_dim": 4, "intermediate_dim": 16}


@pytest.mark.slow
def test_albert_preset_to_transformers_same_logits(transformers, torch, keras_hub, tmp_path):
    """Four computed layers over two stored groups, embeddings narrower than the hidden size: the classifier's
    logits and the hidden states of the real tokens; KerasHub's own importer reads the backbone back bit-exact;
    back to a preset bit-exact."""
    models = keras_hub.models
    backbone = models.AlbertBackbone(vocabulary_size=30, num_groups=2, max_sequence_length=16, **_ALBERT)
    task = _randomized(models.AlbertTextClassifier(backbone, 3, preprocessor=None))
    task.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.AlbertForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    keras_inputs, pt_inputs = _electra_inputs(torch)
    with torch.no_grad():
        logits = model.eval()(**pt_inputs).logits.numpy()
        hidden = model.albert(**pt_inputs)[0].numpy()
    np.testing.assert_allclose(logits, _numpy(task(keras_inputs, training=False)), atol=1e-5)
    expected = _numpy(task.backbone(keras_inputs)["sequence_output"])
    np.testing.assert_allclose(hidden[_BERT_MASK == 1], expected[_BERT_MASK == 1], atol=1e-5)
    _keras_hub_reads_back(keras_hub, task.backbone, out)
    _same_tensors(tmp_path / "preset", _to_preset(out, tmp_path / "again"))


@pytest.mark.slow
def test_albert_transformers_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    config = transformers.AlbertConfig(
        vocab_size=30,
        embedding_size=4,
        hidden_size=8,
        num_hidden_layers=4,
        num_hidden_groups=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=3,
    )
    src = _saved(transformers.AlbertForSequenceClassification(config), tmp_path / "hf", torch)
    model = transformers.AlbertForSequenceClassification.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.AlbertTextClassifier.from_preset, preset)
    assert task.backbone.num_layers == 4 and task.backbone.num_groups == 2
    keras_inputs, pt_inputs = _electra_inputs(torch)
    with torch.no_grad():
        logits = model(**pt_inputs).logits.numpy()
        hidden = model.albert(**pt_inputs)[0].numpy()
    np.testing.assert_allclose(_numpy(task(keras_inputs, training=False)), logits, atol=1e-5)
    got = _numpy(task.backbone(keras_inputs)["sequence_output"])
    np.testing.assert_allclose(got[_BERT_MASK == 1], hidden[_BERT_MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


# DeBERTa-v3 starts with [CLS] 1 and pads with 0; 4 buckets make every distance of 2 or more a log bucket.
_DEBERTA = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}
_DEBERTA_IDS = np.array([[1, 7, 9, 11, 2, 0, 0, 0], [1, 5, 6, 8, 12, 14, 20, 2]], dtype="int32")


def _deberta_inputs(torch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    mask = (_DEBERTA_IDS != 0).astype("int32")
    keras = {"token_ids": _DEBERTA_IDS, "padding_mask": mask}
    return keras, {"input_ids": torch.tensor(_DEBERTA_IDS).long(), "attention_mask": torch.tensor(mask).long()}


@pytest.mark.slow
def test_deberta_v3_preset_to_transformers_same_logits(transformers, torch, keras_hub, tmp_path):
    """KerasHub has no DeBERTa importer: bridge's DebertaV2ForSequenceClassification gives the classifier's logits
    and the backbone's hidden states (relative attention both ways, log buckets); back to a preset bit-exact."""
    models = keras_hub.models
    backbone = models.DebertaV3Backbone(vocabulary_size=30, bucket_size=4, **_DEBERTA)
    task = _randomized(models.DebertaV3TextClassifier(backbone, 3, preprocessor=None))
    task.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    model, info = transformers.DebertaV2ForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    keras_inputs, pt_inputs = _deberta_inputs(torch)
    mask = keras_inputs["padding_mask"]
    with torch.no_grad():
        logits = model.eval()(**pt_inputs).logits.numpy()
        hidden = model.deberta(**pt_inputs)[0].numpy()
    np.testing.assert_allclose(logits, _numpy(task(keras_inputs, training=False)), atol=1e-5)
    np.testing.assert_allclose(hidden[mask == 1], _numpy(task.backbone(keras_inputs))[mask == 1], atol=1e-5)
    _same_tensors(tmp_path / "preset", _to_preset(out, tmp_path / "again"))


@pytest.mark.slow
def test_deberta_v3_transformers_to_preset_same_logits(transformers, torch, keras_hub, tmp_path):
    config = transformers.DebertaV2Config(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=4,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        layer_norm_eps=1e-7,
        num_labels=3,
    )
    src = _saved(transformers.DebertaV2ForSequenceClassification(config), tmp_path / "hf", torch)
    model = transformers.DebertaV2ForSequenceClassification.from_pretrained(src).eval()
    preset = _to_preset(src, tmp_path / "preset")
    task = _loaded(keras_hub.models.DebertaV3TextClassifier.from_preset, preset)
    keras_inputs, pt_inputs = _deberta_inputs(torch)
    mask = keras_inputs["padding_mask"]
    with torch.no_grad():
        logits = model(**pt_inputs).logits.numpy()
        hidden = model.deberta(**pt_inputs)[0].numpy()
    np.testing.assert_allclose(_numpy(task(keras_inputs, training=False)), logits, atol=1e-5)
    np.testing.assert_allclose(_numpy(task.backbone(keras_inputs))[mask == 1], hidden[mask == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


def test_deberta_v2_shape_is_refused_by_name(transformers, torch, tmp_path):
    """DeBERTa-v2 (a convolution beside the first layer) is not what KerasHub's DeBERTa-v3 computes: exit 2."""
    config = transformers.DebertaV2Config(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        relative_attention=True,
        position_buckets=4,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        conv_kernel_size=3,
    )
    src = _saved(transformers.DebertaV2Model(config), tmp_path / "hf", torch)
    out = _refused_as_preset(src, tmp_path / "o")
    assert "conv_kernel_size" in out and not (tmp_path / "o").exists()


_VERIFIED: dict[str, dict[str, Any]] = {  # KerasHub prefix -> its tiny backbone's sizes
    "Roberta": {"vocabulary_size": 30, **_SIZES},
    "XLMRoberta": {"vocabulary_size": 30, **_SIZES},
    "Albert": {"vocabulary_size": 30, "num_groups": 2, "max_sequence_length": 16, **_ALBERT},
    "DebertaV3": {"vocabulary_size": 30, "bucket_size": 4, **_DEBERTA},
    "Electra": {"vocab_size": 30, "embedding_dim": 4, **_SIZES},
}


@pytest.mark.parametrize("prefix", sorted(_VERIFIED))
@pytest.mark.slow
def test_verify_runs_both_forwards(transformers, torch, keras_hub, prefix, tmp_path):
    """``bridge verify PRESET HF_DIR`` runs KerasHub's forward and transformers' on its seeded padded batch (the
    padding id RoBERTa's positions count from included) and passes."""
    backbone = getattr(keras_hub.models, f"{prefix}Backbone")(**_VERIFIED[prefix])
    classifier = getattr(keras_hub.models, f"{prefix}TextClassifier", None)
    model = _randomized(classifier(backbone, 3, preprocessor=None) if classifier else backbone)
    model.save_to_preset(str(tmp_path / "preset"))
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    out = run_cli("verify", str(tmp_path / "preset"), str(tmp_path / "pt"))
    assert "verdict: PASS" in out and "forward hidden_states" in out, out
