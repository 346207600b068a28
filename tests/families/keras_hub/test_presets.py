"""KerasHub presets written by KerasHub's own ``save_to_preset`` (tiny models made here): read as a format,
converted to transformers 5 and loaded there, forwards compared on a padded batch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(25)]
IDS = np.array([[2, 7, 9, 11, 3, 0, 0, 0], [2, 5, 6, 8, 12, 14, 20, 3]], dtype="int32")
MASK = (IDS != 0).astype("int32")


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _randomized(model: Any) -> Any:
    """Every weight random (KerasHub starts biases at zero and norms at one, which would hide a misplaced one)."""
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


@pytest.fixture(scope="module")
def bert_classifier(keras_hub, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    task = _randomized(keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=preprocessor))
    path = tmp_path_factory.mktemp("presets") / "bert_classifier"
    task.save_to_preset(str(path))
    return path, task


_GQA = {"num_query_heads": 4, "num_key_value_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}
_MHA = {"num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}
DECODERS: dict[str, tuple[str, dict[str, Any]]] = {  # backbone -> its transformers causal LM, the tiny sizes
    "LlamaBackbone": ("LlamaForCausalLM", _GQA),
    "MistralBackbone": ("MistralForCausalLM", _GQA),
    "QwenBackbone": ("Qwen2ForCausalLM", _GQA),
    # q/k norms (KerasHub's always at epsilon 1e-5), head_dim not hidden / heads
    "Qwen3Backbone": ("Qwen3ForCausalLM", _GQA | {"head_dim": 4, "layer_norm_epsilon": 1e-5}),
    "GPT2Backbone": ("GPT2LMHeadModel", _MHA | {"intermediate_dim": 32}),  # KerasHub's import assumes 4 * hidden
    "OPTBackbone": ("OPTForCausalLM", _MHA),  # two position rows more in transformers
    "Phi3Backbone": ("Phi3ForCausalLM", _GQA),  # q/k/v joined in unequal blocks, gate and up joined
    "MixtralBackbone": ("MixtralForCausalLM", _GQA | {"num_experts": 4, "top_k": 2}),  # a routed expert bank
    "GemmaBackbone": ("GemmaForCausalLM", _GQA | {"intermediate_dim": 32, "head_dim": 4}),
    "GemmaBackbone:gemma2": (  # the same class as Gemma 1: post norms, soft-caps, a window narrower than the batch
        "Gemma2ForCausalLM",
        _GQA
        | {"intermediate_dim": 32, "head_dim": 4, "use_post_ffw_norm": True}
        | {"use_post_attention_norm": True, "final_logit_soft_cap": 3.0, "attention_logit_soft_cap": 5.0}
        | {"use_sliding_window_attention": True, "sliding_window_size": 3},
    ),
    "Gemma3Backbone": (  # q/k norms, six layers: five sliding (rotary base 1e4) and one global (1e6, scaled)
        "Gemma3ForCausalLM",
        _GQA
        | {"num_layers": 6, "intermediate_dim": 32, "head_dim": 4, "use_post_ffw_norm": True}
        | {"use_post_attention_norm": True, "use_query_key_norm": True, "final_logit_soft_cap": 3.0}
        | {"use_sliding_window_attention": True, "sliding_window_size": 3, "global_rope_scaling_factor": 4.0}
        | {"image_size": None, "vision_encoder": None},
    ),
}


# KerasHub 0.32's Mistral importer rounds every weight through float16 (its convert_mistral.py): the two disagree
# there, and bridge's weights are the ones transformers' forward matched (its 1.3e-3 forward gap comes from this).
_ROUNDED_BY_KERAS_HUB = ("MistralBackbone",)
# KerasHub 0.32 cannot import these from transformers 5 (the error it raises): no importer for OPT or Phi-3.
# bridge's conversion is the only one; its forward is the one the test above matched.  (Its Mixtral importer reads
# the one tensor per expert, block_sparse_moe.experts.N.w1, that transformers 5 saves and bridge writes.)
_NOT_IMPORTED_BY_KERAS_HUB = {"OPTBackbone": "no converter", "Phi3Backbone": "no converter"}


def _keras_hub_reads_back(keras_hub: Any, backbone: Any, out: Path) -> None:
    """KerasHub's own transformers importer, run on bridge's output, gives back every original weight bit-exact
    (the weights its importer rounds: exactly its rounding of the originals); where it has no importer, it says so."""
    if type(backbone).__name__ in _NOT_IMPORTED_BY_KERAS_HUB:
        with pytest.raises(Exception, match=_NOT_IMPORTED_BY_KERAS_HUB[type(backbone).__name__]):
            keras_hub.models.Backbone.from_preset(str(out))
        return
    imported = keras_hub.models.Backbone.from_preset(str(out))
    # Keras numbers a sublayer it names itself by the instances this process made (mixtral_sparse_moe_block_2)
    uncounted = [[re.sub(r"_\d+(?=/)", "", w.path) for w in m.weights] for m in (imported, backbone)]
    assert uncounted[0] == uncounted[1]
    rounded = type(backbone).__name__ in _ROUNDED_BY_KERAS_HUB
    for mine, theirs in zip(backbone.weights, imported.weights, strict=True):
        original = _numpy(mine)
        if rounded:
            assert not np.array_equal(_numpy(theirs), original)
            original = original.astype(np.float16).astype(original.dtype)
        assert _numpy(theirs).tobytes() == original.tobytes(), mine.path


def _decoder_preset(keras_hub: Any, backbone_class: str, folder: Path) -> tuple[Path, Any]:
    """A tiny preset of ``DECODERS``' entry (``Class:family`` where families share a backbone class)."""
    sizes = DECODERS[backbone_class][1]
    model = getattr(keras_hub.models, backbone_class.partition(":")[0])
    backbone = _randomized(model(**({"vocabulary_size": 30, "num_layers": 2} | sizes)))
    path = folder / backbone_class.replace(":", "_")
    backbone.save_to_preset(str(path))
    return path, backbone


@pytest.fixture(scope="module")
def llama(keras_hub, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return _decoder_preset(keras_hub, "LlamaBackbone", tmp_path_factory.mktemp("presets"))


def test_inspect_names_classes_and_assets(bert_classifier):
    out = run_cli("inspect", str(bert_classifier[0]))
    for fact in (
        "format: keras-hub-preset",
        "backbone_class: BertBackbone",
        "task_class: BertTextClassifier",
        "dtype_policy: float32",
        "parameter_count: 1672",
        "tokenizer_assets: assets/tokenizer/vocabulary.txt",
        "task/layers/dense",
    ):
        assert fact in out


def test_damaged_config_exits_2(bert_classifier, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(bert_classifier[0], damaged)
    (damaged / "task.json").write_text('{"registered_name": "keras_hub>BertTextClassifier", ')
    out = run_cli("inspect", str(damaged), code=2)
    assert "task.json" in out
    (damaged / "task.json").unlink()
    (damaged / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    out = run_cli("inspect", str(damaged), code=2)
    assert "model.weights.h5" in out


@pytest.mark.slow
def test_bert_classifier_to_transformers_same_logits(transformers, torch, bert_classifier, tmp_path):
    path, task = bert_classifier
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["num_labels"] == 3
    model, info = transformers.BertForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    model.eval()
    inputs = {"token_ids": IDS, "segment_ids": np.zeros_like(IDS), "padding_mask": MASK}
    expected = _numpy(task(inputs, training=False))  # the model alone, its preprocessor left out
    with torch.no_grad():
        got = model(input_ids=torch.tensor(IDS).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The backbone alone (BertModel): the hidden states of the real tokens.
    base = transformers.BertModel.from_pretrained(out).eval()
    hidden = _numpy(task.backbone(inputs)["sequence_output"])
    with torch.no_grad():
        pt_hidden = base(input_ids=torch.tensor(IDS).long(), attention_mask=torch.tensor(MASK).long())[0].numpy()
    np.testing.assert_allclose(pt_hidden[MASK == 1], hidden[MASK == 1], atol=1e-5)


@pytest.mark.parametrize("backbone_class", sorted(DECODERS))
@pytest.mark.slow
def test_decoder_to_transformers_same_logits(transformers, torch, keras_hub, backbone_class, tmp_path):
    """Llama, Mistral (untied output head), Qwen 2 (tied, q/k/v biases), GPT-2 (Conv1D, q/k/v joined in one
    ``c_attn``): logits of the real tokens."""
    path, backbone = _decoder_preset(keras_hub, backbone_class, tmp_path)
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    assert (out / "generation_config.json").is_file()
    target = DECODERS[backbone_class][0]
    assert json.loads((out / "config.json").read_text())["architectures"] == [target]
    model, info = getattr(transformers, target).from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    model.eval()
    ids = np.where(MASK == 1, IDS, 0)
    hidden = _numpy(backbone({"token_ids": ids, "padding_mask": MASK}))
    expected = _numpy(backbone.token_embedding(hidden, reverse=True))
    with torch.no_grad():
        got = model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    _keras_hub_reads_back(keras_hub, backbone, out)


@pytest.mark.parametrize(
    ("key", "value"),
    [("layer_norm_epsilon", 1e-5), ("use_post_ffw_norm", False), ("use_bidirectional_attention", True)],
)
def test_gemma3_computing_otherwise_exits_2(keras_hub, key, value, tmp_path):
    """A Gemma 3 preset transformers would compute otherwise (query/key norms at another epsilon, a norm missing,
    bidirectional attention) is refused by name."""
    path, _ = _decoder_preset(keras_hub, "Gemma3Backbone", tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["config"][key] = value
    (path / "config.json").write_text(json.dumps(config))
    out = run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"), code=2)
    assert "Gemma3ForCausalLM" in out and key in out


def test_preset_values_reach_transformers_names_bit_exact(llama, tmp_path):
    """Every stored value lands once, moved only by its named transform (no framework needed to read back)."""
    path, _ = llama
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    with bridge.load(path) as src, bridge.load(out / "model.safetensors") as dst:
        q = src["layers/llama_transformer_decoder_1/_self_attention_layer/_query_dense/vars/0"].numpy()
        got = dst["model.layers.1.self_attn.q_proj.weight"].numpy()
        assert got.tobytes() == q.reshape(q.shape[0], -1).T.copy().tobytes()
        assert (
            dst["lm_head.weight"].numpy().tobytes()
            == src["layers/reversible_embedding/vars/1"].numpy().T.copy().tobytes()
        )


CLASSIFIERS: dict[str, str] = {  # KerasHub model prefix -> transformers model prefix, for <prefix>TextClassifier
    "DistilBert": "DistilBert",
}


@pytest.mark.parametrize("prefix", sorted(CLASSIFIERS))
@pytest.mark.slow
def test_classifier_to_transformers_same_logits(transformers, torch, keras_hub, prefix, tmp_path):
    """An encoder's text classifier: the logits, the backbone's hidden states of the real tokens, and KerasHub's
    own importer reading the backbone back."""
    models = keras_hub.models
    backbone = getattr(models, f"{prefix}Backbone")(vocabulary_size=30, num_layers=2, **_MHA)
    tokenizer = getattr(models, f"{prefix}Tokenizer")(vocabulary=VOCAB)
    preprocessor = getattr(models, f"{prefix}TextClassifierPreprocessor")(tokenizer, sequence_length=8)
    task = _randomized(getattr(models, f"{prefix}TextClassifier")(backbone, num_classes=3, preprocessor=preprocessor))
    task.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "pt"
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(out))
    pt = CLASSIFIERS[prefix]
    model, info = getattr(transformers, f"{pt}ForSequenceClassification").from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    inputs = {"token_ids": IDS, "padding_mask": MASK}
    pt_inputs = {"input_ids": torch.tensor(IDS).long(), "attention_mask": torch.tensor(MASK).long()}
    with torch.no_grad():
        got = model.eval()(**pt_inputs).logits.numpy()
        hidden = getattr(transformers, f"{pt}Model").from_pretrained(out).eval()(**pt_inputs)[0].numpy()
    np.testing.assert_allclose(got, _numpy(task(inputs, training=False)), atol=1e-5)
    expected = _numpy(task.backbone(inputs))
    np.testing.assert_allclose(hidden[MASK == 1], expected[MASK == 1], atol=1e-5)
    _keras_hub_reads_back(keras_hub, task.backbone, out)
    _same_ids(transformers, task.preprocessor.tokenizer, out, "w1 w12 w7 zz, w3")


def _same_ids(transformers: Any, tokenizer: Any, out: Path, sentence: str) -> None:
    """transformers' AutoTokenizer on the converted folder encodes ``sentence`` to the KerasHub tokenizer's ids."""
    auto = transformers.AutoTokenizer.from_pretrained(out)
    expected = _numpy(tokenizer(sentence)).tolist()
    assert len(expected) > 2
    assert auto.encode(sentence, add_special_tokens=False) == expected


_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize("backbone_class", ["GPT2Backbone", "LlamaBackbone"])
@pytest.mark.slow
def test_tokenizer_assets_reach_transformers_same_ids(transformers, keras_hub, backbone_class, tmp_path):
    """Byte-level BPE (GPT-2's vocabulary.json + merges.txt) and SentencePiece (Llama's vocabulary.spm) beside the
    converted weights: AutoTokenizer there gives the KerasHub tokenizer's ids."""
    models = keras_hub.models
    if backbone_class == "GPT2Backbone":
        pieces = ["<|endoftext|>", "a", "b", "c", "\u0120", "\u0120a", "ab", "\u0120ab", "bc"]
        vocabulary = {p: i for i, p in enumerate(pieces)}
        tokenizer = models.GPT2Tokenizer(vocabulary=vocabulary, merges=["\u0120 a", "a b", "\u0120a b", "b c"])
        sentence = "ab a abc cab"
    else:
        tokenizer = models.LlamaTokenizer(proto=(_FIXTURES / "sentencepiece" / "tiny.model").read_bytes())
        sentence = "a tree and a rose"
    path, _ = _decoder_preset(keras_hub, backbone_class, tmp_path)
    tokenizer.save_to_preset(str(path))
    out = tmp_path / "pt"
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(out))
    _same_ids(transformers, tokenizer, out, sentence)
