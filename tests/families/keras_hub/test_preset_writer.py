"""transformers 5 -> KerasHub presets: tiny models saved by transformers' own ``save_pretrained`` (random init),
written as presets by bridge, loaded by KerasHub's ``from_preset`` and run on a padded batch; round trips both
ways bit-exact."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli
from tests.families.keras_hub.test_presets import _MHA, IDS, MASK, VOCAB, _decoder_preset, _numpy, _randomized

_GQA = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
DECODERS: dict[str, tuple[str, str, dict[str, Any]]] = {  # transformers class -> (config, KerasHub task, sizes)
    "LlamaForCausalLM": ("LlamaConfig", "LlamaCausalLM", _GQA | {"intermediate_size": 16}),
    "MistralForCausalLM": ("MistralConfig", "MistralCausalLM", _GQA | {"intermediate_size": 16}),
    "Qwen2ForCausalLM": ("Qwen2Config", "QwenCausalLM", _GQA | {"intermediate_size": 16}),
    "Qwen3ForCausalLM": (  # KerasHub's q/k norms: epsilon 1e-5 always
        "Qwen3Config",
        "Qwen3CausalLM",
        _GQA | {"intermediate_size": 16, "head_dim": 4, "rms_norm_eps": 1e-5},
    ),
    "GPT2LMHeadModel": ("GPT2Config", "GPT2CausalLM", {"n_embd": 8, "n_layer": 2, "n_head": 2, "n_positions": 16}),
    "OPTForCausalLM": (
        "OPTConfig",
        "OPTCausalLM",
        {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "ffn_dim": 16}
        | {"max_position_embeddings": 16, "word_embed_proj_dim": 8},
    ),
    "Phi3ForCausalLM": ("Phi3Config", "Phi3CausalLM", _GQA | {"intermediate_size": 16, "pad_token_id": 0}),
    "MixtralForCausalLM": (  # a routed bank of experts, one tensor per expert on disk
        "MixtralConfig",
        "MixtralCausalLM",
        _GQA | {"intermediate_size": 16, "num_local_experts": 4, "num_experts_per_tok": 2},
    ),
    "GemmaForCausalLM": ("GemmaConfig", "GemmaCausalLM", _GQA | {"intermediate_size": 16, "head_dim": 4}),
    "Gemma2ForCausalLM": (  # soft-caps, a window narrower than the batch in layer 0
        "Gemma2Config",
        "GemmaCausalLM",
        _GQA
        | {"intermediate_size": 16, "head_dim": 4, "query_pre_attn_scalar": 4, "sliding_window": 3}
        | {"final_logit_softcapping": 3.0, "attn_logit_softcapping": 5.0},
    ),
    "Gemma3ForCausalLM": (  # q/k norms; five sliding layers, then a global one with its own scaled rotary base
        "Gemma3TextConfig",
        "Gemma3CausalLM",
        _GQA
        | {"num_hidden_layers": 6, "intermediate_size": 16, "head_dim": 4, "query_pre_attn_scalar": 4}
        | {"sliding_window": 3, "final_logit_softcapping": 3.0}
        | {"rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6}}},
    ),
}


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _saved(model: Any, folder: Path, torch: Any) -> Path:
    """``model`` with every weight random (zero biases and unit norms would hide a misplaced one), saved."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    model.eval().save_pretrained(folder)
    return folder


_ENCODERS: dict[str, dict[str, Any]] = {  # transformers model prefix -> its tiny sizes
    "Bert": {
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "hidden_act": "gelu_new",  # KerasHub BERT's gelu is the tanh form
    },
    "DistilBert": {"dim": 8, "n_layers": 2, "n_heads": 2, "hidden_dim": 16},
}


def _encoder(transformers: Any, torch: Any, prefix: str, folder: Path) -> tuple[Path, Any]:
    config = getattr(transformers, f"{prefix}Config")(
        vocab_size=30, max_position_embeddings=16, num_labels=3, **_ENCODERS[prefix]
    )
    model = getattr(transformers, f"{prefix}ForSequenceClassification")(config)
    path = _saved(model, folder / f"hf_{prefix}", torch)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return path, model


def _decoder(transformers: Any, torch: Any, class_name: str, folder: Path) -> tuple[Path, Any]:
    config = getattr(transformers, DECODERS[class_name][0])(vocab_size=30, **DECODERS[class_name][2])
    model = getattr(transformers, class_name)(config)
    path = _saved(model, folder / class_name, torch)
    if class_name == "OPTForCausalLM":  # its position table's two offset rows, which no preset keeps: zeros
        with torch.no_grad():
            model.model.decoder.embed_positions.weight[:2].zero_()
        model.save_pretrained(path)
    return path, model


def _to_preset(src: Path, out: Path) -> Path:
    run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(out))
    return out


def _refused_as_preset(src: Path, out: Path) -> str:
    """The message of a conversion to a KerasHub preset that exits 2 (what the backbone cannot express)."""
    return run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(out), code=2)


def _loaded(load: Any, path: Path) -> Any:
    """``load(path)`` with no warning (Keras warns of a variable it found no value for, or one left over)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load(str(path))
    assert not [str(w.message) for w in caught if "variable" in str(w.message).lower()]
    return model


def _same_tensors(a: Path, b: Path) -> None:
    """Every model tensor of ``a`` in ``b``, bit for bit, and nothing else."""
    with bridge.load(a) as x, bridge.load(b) as y:
        xs = {r.name: r for r in x.values() if r.kind == "model"}
        ys = {r.name: r for r in y.values() if r.kind == "model"}
        assert sorted(xs) == sorted(ys)
        for name, r in xs.items():
            assert r.dtype == ys[name].dtype and r.numpy().tobytes() == ys[name].numpy().tobytes(), name


@pytest.mark.parametrize("prefix", sorted(_ENCODERS))
@pytest.mark.slow
def test_classifier_to_preset_same_logits(transformers, torch, keras_hub, prefix, tmp_path):
    """BERT and DistilBERT text classifiers: the logits, and the backbone's hidden states of the real tokens."""
    src, model = _encoder(transformers, torch, prefix, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    assert (preset / "assets/tokenizer/vocabulary.txt").read_text().split() == VOCAB
    task = _loaded(getattr(keras_hub.models, f"{prefix}TextClassifier").from_preset, preset)
    backbone = _loaded(keras_hub.models.Backbone.from_preset, preset)
    assert type(backbone).__name__ == f"{prefix}Backbone"
    assert getattr(keras_hub.models, f"{prefix}Tokenizer").from_preset(str(preset)).vocabulary_size() == len(VOCAB)
    inputs = {"token_ids": IDS, "padding_mask": MASK} | (
        {"segment_ids": np.zeros_like(IDS)} if prefix == "Bert" else {}
    )
    pt_inputs = {"input_ids": torch.tensor(IDS).long(), "attention_mask": torch.tensor(MASK).long()}
    with torch.no_grad():
        pt = model(**pt_inputs)
        hidden = model.base_model(**pt_inputs)[0]
    np.testing.assert_allclose(_numpy(task(inputs, training=False)), pt.logits.numpy(), atol=1e-5)
    output = backbone(inputs)
    keras_hidden = _numpy(output["sequence_output"] if isinstance(output, dict) else output)
    np.testing.assert_allclose(keras_hidden[MASK == 1], hidden.numpy()[MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


@pytest.mark.parametrize("class_name", sorted(DECODERS))
@pytest.mark.slow
def test_decoder_to_preset_same_logits(transformers, torch, keras_hub, class_name, tmp_path):
    """Llama, Mistral (untied output head), Qwen 2 (q/k/v biases), GPT-2 (one c_attn) and Gemma causal LMs:
    logits of the real tokens."""
    src, model = _decoder(transformers, torch, class_name, tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    task_class = DECODERS[class_name][1]
    assert json.loads((preset / "task.json").read_text())["registered_name"] == f"keras_hub>{task_class}"
    assert not (preset / "task.weights.h5").exists()  # a CausalLM has no weights beside its backbone's
    task = _loaded(getattr(keras_hub.models, task_class).from_preset, preset)
    _loaded(keras_hub.models.Backbone.from_preset, preset)
    ids = np.where(MASK == 1, IDS, 0)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    got = _numpy(task({"token_ids": ids, "padding_mask": MASK}))
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


def test_mixtral_written_as_transformers_saves_it(transformers, torch, keras_hub, tmp_path):
    """A Mixtral preset reaches transformers under exactly the names transformers 5's save_pretrained writes (one
    tensor per expert, which vLLM and KerasHub's own importer read), not the banks it joins in memory."""
    path, _ = _decoder_preset(keras_hub, "MixtralBackbone", tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    transformers.MixtralForCausalLM.from_pretrained(tmp_path / "pt").save_pretrained(tmp_path / "resaved")
    with bridge.load(tmp_path / "pt/model.safetensors") as ours, bridge.load(tmp_path / "resaved") as theirs:
        names = sorted(r.name for r in ours.values())
        assert names == sorted(r.name for r in theirs.values())
    assert "model.layers.1.block_sparse_moe.experts.3.w2.weight" in names
    _same_tensors(tmp_path / "pt/model.safetensors", tmp_path / "resaved/model.safetensors")


def _unnamed(serialized: dict) -> dict:
    """A serialized Keras object without its layer ``name``: Keras counts the instances a process made
    (``llama_backbone_4``), which no transformers file keeps; the written preset names it ``llama_backbone``."""
    config = {k: v for k, v in serialized["config"].items() if k != "name"}
    if isinstance(config.get("backbone"), dict):
        config["backbone"] = _unnamed(config["backbone"])
    return serialized | {"config": config}


@pytest.mark.parametrize(
    "backbone_class",
    [
        "GPT2Backbone",
        "GemmaBackbone",
        "GemmaBackbone:gemma2",
        "Gemma3Backbone",
        "LlamaBackbone",
        "MixtralBackbone",
        "OPTBackbone",
        "Phi3Backbone",
        "Qwen3Backbone",
        "QwenBackbone",
    ],
)
def test_preset_round_trip_bit_exact(keras_hub, backbone_class, tmp_path):
    """A save_to_preset preset -> transformers -> preset: every variable back, bit for bit, and the same config."""
    path, _ = _decoder_preset(keras_hub, backbone_class, tmp_path)
    run_cli("convert", str(path), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(path, again)
    original, written = (json.loads((p / "config.json").read_text()) for p in (path, again))
    assert _unnamed(written) == _unnamed(original)
    meta = json.loads((again / "metadata.json").read_text())
    assert meta["parameter_count"] == json.loads((path / "metadata.json").read_text())["parameter_count"]


@pytest.mark.slow
def test_classifier_preset_round_trip_bit_exact(keras_hub, tmp_path):
    """A DistilBERT text classifier saved by KerasHub -> transformers -> preset: backbone and head bit for bit,
    the same backbone and task configs (less the preprocessor, which bridge does not write), the tokenizer's
    config and vocabulary unchanged."""
    models = keras_hub.models
    backbone = models.DistilBertBackbone(vocabulary_size=30, num_layers=2, **_MHA)
    preprocessor = models.DistilBertTextClassifierPreprocessor(models.DistilBertTokenizer(vocabulary=VOCAB), 8)
    task = _randomized(models.DistilBertTextClassifier(backbone, num_classes=3, preprocessor=preprocessor))
    task.save_to_preset(str(tmp_path / "preset"))
    run_cli("convert", str(tmp_path / "preset"), "--to", "pytorch", "-o", str(tmp_path / "pt"))
    again = _to_preset(tmp_path / "pt", tmp_path / "again")
    _same_tensors(tmp_path / "preset", again)
    original, written = (json.loads((p / "task.json").read_text()) for p in (tmp_path / "preset", again))
    assert _unnamed(written)["config"] == _unnamed(original)["config"] | {"preprocessor": None}
    for name in ("config.json", "tokenizer.json"):
        read_again, read_original = (json.loads((p / name).read_text()) for p in (again, tmp_path / "preset"))
        assert _unnamed(read_again) == _unnamed(read_original), name
    vocabulary = "assets/tokenizer/vocabulary.txt"
    assert (again / vocabulary).read_bytes() == (tmp_path / "preset" / vocabulary).read_bytes()


def test_written_preset_inspects_and_verifies(transformers, torch, tmp_path):
    src, _ = _decoder(transformers, torch, "LlamaForCausalLM", tmp_path)
    preset = _to_preset(src, tmp_path / "preset")
    out = run_cli("inspect", str(preset))
    for fact in ("format: keras-hub-preset", "backbone_class: LlamaBackbone", "task_class: LlamaCausalLM"):
        assert fact in out
    out = run_cli("verify", str(src), str(preset), "--no-forward")
    assert "values: 21/21 tensors bit-exact" in out and "verdict: PASS" in out


def test_unwritable_config_exits_2(transformers, torch, tmp_path):
    src, _ = _decoder(transformers, torch, "LlamaForCausalLM", tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "attention_bias": True}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert "attention_bias" in out


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("query_pre_attn_scalar", 8),
        ("rms_norm_eps", 1e-5),
        ("layer_types", ["full_attention", "sliding_attention"] * 3),
    ],
)
def test_unwritable_gemma3_exits_2(transformers, torch, key, value, tmp_path):
    """What KerasHub's Gemma 3 computes otherwise (its queries scaled by head_dim, its q/k norms at 1e-6, five
    sliding layers to one global) is refused by name."""
    src, _ = _decoder(transformers, torch, "Gemma3ForCausalLM", tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, key: value}))
    out = _refused_as_preset(src, tmp_path / "o")
    assert key in out


_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


# KerasHub 0.32's SentencePieceTokenizer reads a vocabulary.spm path with open(...).read() and leaves it open.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("class_name", ["GPT2LMHeadModel", "LlamaForCausalLM"])
@pytest.mark.slow
def test_tokenizer_files_reach_preset_same_ids(transformers, torch, keras_hub, class_name, tmp_path):
    """Byte-level BPE (vocab.json + merges.txt) and SentencePiece (tokenizer.model) beside a transformers model:
    the preset's tokenizer (assets and tokenizer.json) encodes a sentence to AutoTokenizer's ids."""
    src, _ = _decoder(transformers, torch, class_name, tmp_path)
    if class_name == "GPT2LMHeadModel":
        pieces = ["<|endoftext|>", "a", "b", "c", "\u0120", "\u0120a", "ab", "\u0120ab", "bc"]
        (src / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(pieces)}))
        (src / "merges.txt").write_text("#version: 0.2\n\u0120 a\na b\n\u0120a b\nb c\n", encoding="utf-8")
        tokenizer_class, sentence, assets = "GPT2Tokenizer", "ab a abc cab", ["merges.txt", "vocabulary.json"]
    else:
        (src / "tokenizer.model").write_bytes((_FIXTURES / "sentencepiece" / "tiny.model").read_bytes())
        tokenizer_class, sentence, assets = "LlamaTokenizer", "a tree and a rose", ["vocabulary.spm"]
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))
    preset = _to_preset(src, tmp_path / "preset")
    assert sorted(p.name for p in (preset / "assets/tokenizer").iterdir()) == assets
    keras_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    assert type(keras_tokenizer).__name__ == tokenizer_class
    expected = transformers.AutoTokenizer.from_pretrained(src).encode(sentence, add_special_tokens=False)
    assert len(expected) > 2
    assert _numpy(keras_tokenizer(sentence)).tolist() == expected


@pytest.mark.slow
def test_bfloat16_model_writes_bfloat16_preset(transformers, torch, keras_hub, tmp_path):
    """A bf16 transformers model stays bf16: Keras' own storage (an opaque 2-byte type, ``dtype`` attribute), a
    bfloat16 policy, KerasHub loading the values exactly, and back to transformers bit-exact."""
    import h5py

    _, model = _decoder(transformers, torch, "LlamaForCausalLM", tmp_path)
    src = tmp_path / "bf16"
    model.to(torch.bfloat16).save_pretrained(src)
    preset = _to_preset(src, tmp_path / "preset")
    assert json.loads((preset / "config.json").read_text())["config"]["dtype"]["config"]["name"] == "bfloat16"
    with h5py.File(preset / "model.weights.h5") as f:
        stored = f["layers/reversible_embedding/vars/0"]
        assert stored.dtype == np.dtype("V2") and stored.attrs["dtype"] == "bfloat16"
    backbone = _loaded(lambda p: keras_hub.models.Backbone.from_preset(p, dtype="bfloat16"), preset)
    embeddings = _numpy(backbone.token_embedding.embeddings).astype("float32")
    assert embeddings.tobytes() == model.model.embed_tokens.weight.detach().float().numpy().tobytes()
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    _same_tensors(src / "model.safetensors", back / "model.safetensors")


@pytest.mark.slow
def test_sharded_preset_loads_and_round_trips(transformers, torch, keras_hub, tmp_path):
    """Past ``--max-shard-size`` a preset is sharded as KerasHub shards it (``model.weights.json`` naming each vars
    group's ``model_<k>.weights.h5``, no variable split): KerasHub loads it with the source's logits, bridge reads
    it back bit-exact; a preset KerasHub itself sharded converts to the same tensors as its unsharded twin."""
    src, model = _decoder(transformers, torch, "LlamaForCausalLM", tmp_path)
    preset = tmp_path / "preset"
    run_cli(
        "convert",
        str(src),
        "--to",
        "tensorflow",
        "--target",
        "keras-hub",
        "--max-shard-size",
        "1500",
        "-o",
        str(preset),
    )
    assert not (preset / "model.weights.h5").exists()
    index = json.loads((preset / "model.weights.json").read_text())
    shards = sorted(p.name for p in preset.glob("model_*.weights.h5"))
    assert shards == [f"model_{i:05}.weights.h5" for i in range(len(shards))] and len(shards) > 2
    assert index["metadata"]["total_size"] == sum(p.numel() * 4 for p in model.parameters())
    assert {n for v in index["weight_map"].values() for n in ([v] if isinstance(v, str) else v)} == set(shards)
    task = _loaded(keras_hub.models.LlamaCausalLM.from_preset, preset)
    ids = np.where(MASK == 1, IDS, 0)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(MASK).long()).logits.numpy()
    got = _numpy(task({"token_ids": ids, "padding_mask": MASK}))
    np.testing.assert_allclose(got[MASK == 1], expected[MASK == 1], atol=1e-5)
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(tmp_path / "back"))
    _same_tensors(src / "model.safetensors", tmp_path / "back" / "model.safetensors")
    # KerasHub's own sharding (its max_shard_size in GB of 1024**3 bytes), read back by bridge
    kh = tmp_path / "kh"
    task.backbone.save_to_preset(str(kh), max_shard_size=1500 / 1024**3)
    assert (kh / "model.weights.json").is_file() and not (kh / "model.weights.h5").exists()
    _same_tensors(kh, preset)


def test_tensor_over_the_shard_size_exits_2(transformers, torch, tmp_path):
    src, _ = _decoder(transformers, torch, "LlamaForCausalLM", tmp_path)
    out = run_cli(
        "convert",
        str(src),
        "--to",
        "tensorflow",
        "--target",
        "keras-hub",
        "--max-shard-size",
        "600",
        "-o",
        str(tmp_path / "o"),
        code=2,
    )
    assert "layers/reversible_embedding/vars/0" in out and "--max-shard-size" in out
    assert not (tmp_path / "o").exists()
