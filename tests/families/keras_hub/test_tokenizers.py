"""Tokenizers both ways between presets and transformers directories: tiny vocabularies built here by the
``tokenizers`` and ``sentencepiece`` libraries, converted with the weights, and the same token ids from KerasHub's
tokenizer and transformers' ``AutoTokenizer`` on a few strings (or, where the two split words otherwise, the
strings on which they differ pinned)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.families.keras_hub.tokenizer import KERAS_BPE_SPLIT
from tests.conftest import run_cli
from tests.families.keras_hub.test_llama3_smollm import _llama
from tests.families.keras_hub.test_preset_writer import _decoder, _to_preset
from tests.families.keras_hub.test_presets import _numpy

# KerasHub 0.32's SentencePieceTokenizer reads a vocabulary.spm path with open(...).read() and leaves it open.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


_CORPUS = [
    "hello world, the year 2026 and 2025 and 12345 again",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "two  spaces   three and a tab\there",
    "It's the model's tokenizer we're testing",
] * 20
_STRINGS = [
    "hello world",
    "the year 2026",
    "12345 and 2025",
    "caf\u00e9 na\u00efve",
    "two  spaces   three",
    "It's THE model's",
]
# KerasHub 0.32's BytePairTokenizer hands its split pattern to the tokenizers library as a literal string, so
# outside tf.data it splits no words: a merge across a word boundary (two spaces here) gives other ids.
_UNSPLIT_DIFFER = ["two  spaces   three"]
_LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen 2's tokenizer.json splits digits one by one (Llama 3's keeps up to three together).
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level_bpe(split: str, special: list[str]) -> Any:
    """A byte-level BPE trained on ``_CORPUS`` by the tokenizers library, splitting words with ``split``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=340,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    return tokenizer


def _write_tokenizer_json(transformers: Any, tokenizer: Any, folder: Path, tokenizer_class: str) -> None:
    """``tokenizer.json`` alone (no vocab.json, merges.txt or tokenizer.model), as Llama 3 and Qwen ship."""
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))


def _differ(strings: list[str], got: list[list[int]], expected: list[list[int]]) -> list[str]:
    """The strings KerasHub's tokenizer encodes otherwise than transformers'."""
    return [s for s, a, b in zip(strings, got, expected, strict=True) if a != b]


def _ids(tokenizer: Any, strings: list[str]) -> list[list[int]]:
    if hasattr(tokenizer, "encode"):
        return [tokenizer.encode(s, add_special_tokens=False) for s in strings]
    return [_numpy(tokenizer(s)).tolist() for s in strings]


@pytest.mark.slow
def test_llama3_tokenizer_json_alone_both_ways(transformers, torch, keras_hub, tmp_path):
    """Llama 3's tokenizer.json (Llama 3's split, the one KerasHub's BytePairTokenizer means): its vocabulary,
    merges and special tokens reach a Llama3Tokenizer giving the same ids but where KerasHub splits no words (the
    note says so); back, a tokenizer.json AutoTokenizer reads, giving the source's ids."""
    src = tmp_path / "hf"
    _llama(transformers, torch, src)
    _write_tokenizer_json(
        transformers, _byte_level_bpe(KERAS_BPE_SPLIT, _LLAMA3_SPECIAL), src, "PreTrainedTokenizerFast"
    )
    assert not (src / "vocab.json").exists()
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "preset"))
    assert "splits no words outside tf.data" in out and "Llama 3's pattern" in out
    preset = tmp_path / "preset"
    assert sorted(p.name for p in (preset / "assets/tokenizer").iterdir()) == ["merges.txt", "vocabulary.json"]
    keras_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    assert type(keras_tokenizer).__name__ == "Llama3Tokenizer"
    strings = [*_STRINGS, "<|begin_of_text|>hello<|eot_id|>"]
    expected = _ids(transformers.AutoTokenizer.from_pretrained(src), strings)
    got = _ids(keras_tokenizer, strings)
    assert _differ(strings, got, expected) == _UNSPLIT_DIFFER
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    assert (back / "tokenizer.json").is_file() and not (back / "vocab.json").exists()
    assert _ids(transformers.AutoTokenizer.from_pretrained(back), strings) == expected


@pytest.mark.parametrize("class_name", ["Qwen2ForCausalLM", "Qwen3ForCausalLM"])
@pytest.mark.slow
def test_qwen_tokenizer_json_alone_both_ways(transformers, torch, keras_hub, class_name, tmp_path):
    """Qwen 2 and 3's tokenizer.json (Qwen's split: digits one by one): the note names it, the ids are the same
    but where KerasHub splits no words; back, the vocab.json + merges.txt Qwen2Tokenizer reads give the source's
    ids."""
    src, _ = _decoder(transformers, torch, class_name, tmp_path)
    _write_tokenizer_json(transformers, _byte_level_bpe(_QWEN_SPLIT, _QWEN_SPECIAL), src, "Qwen2Tokenizer")
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "preset"))
    assert "splits no words outside tf.data" in out and r"\p{N}|" in out
    preset = tmp_path / "preset"
    keras_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    strings = [*_STRINGS, "<|im_start|>hello<|im_end|>world<|endoftext|>"]
    expected = _ids(transformers.AutoTokenizer.from_pretrained(src), strings)
    got = _ids(keras_tokenizer, strings)
    assert _differ(strings, got, expected) == _UNSPLIT_DIFFER
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    assert (back / "vocab.json").is_file() and (back / "merges.txt").is_file()
    assert _ids(transformers.AutoTokenizer.from_pretrained(back), strings) == expected


_GEMMA_SYMBOLS = ["<start_of_turn>", "<end_of_turn>", "<img>", "<start_of_image>", "<end_of_image>"]


def _sentencepiece(layout: dict[str, Any], symbols: list[str], kind: str = "bpe") -> bytes:
    """A tiny SentencePiece model of ``kind`` (Gemma's byte-fallback BPE, the encoders' unigram with unknown
    pieces) trained on ``_CORPUS``, its special pieces where ``layout`` puts them (pad/unk/bos/eos ids and pieces)."""
    spm = pytest.importorskip("sentencepiece")
    import io

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS),
        model_writer=model,
        vocab_size=400,
        model_type=kind,
        byte_fallback=kind == "bpe",
        hard_vocab_limit=False,
        character_coverage=1.0,
        user_defined_symbols=symbols,
        minloglevel=2,
        **layout,
    )
    return model.getvalue()


_GEMMA_LAYOUT = {"pad_id": 0, "eos_id": 1, "bos_id": 2, "unk_id": 3}
_GEMMA_LAYOUT |= {"pad_piece": "<pad>", "eos_piece": "<eos>", "bos_piece": "<bos>", "unk_piece": "<unk>"}
# Gemma's model keeps spaces as they are and adds none in front (transformers' GemmaTokenizer assumes so)
_GEMMA_LAYOUT |= {"add_dummy_prefix": False, "remove_extra_whitespaces": False, "normalization_rule_name": "identity"}


@pytest.mark.parametrize("class_name", ["GemmaForCausalLM", "Gemma3ForCausalLM"])
@pytest.mark.slow
def test_gemma_sentencepiece_both_ways(transformers, torch, keras_hub, class_name, tmp_path):
    """Gemma 1 and 3's tokenizer.model: the preset's vocabulary.spm gives GemmaTokenizer's ids (accents by byte
    fallback, runs of spaces, special pieces), and back, AutoTokenizer reads the same file."""
    src, _ = _decoder(transformers, torch, class_name, tmp_path)
    (src / "tokenizer.model").write_bytes(_sentencepiece(_GEMMA_LAYOUT, _GEMMA_SYMBOLS))
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
    run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "preset"))
    preset = tmp_path / "preset"
    assert [p.name for p in (preset / "assets/tokenizer").iterdir()] == ["vocabulary.spm"]
    keras_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    strings = [*_STRINGS, "\u00e5ngstr\u00f6m \u4e2d", "<start_of_turn>hello<end_of_turn>"]
    expected = _ids(transformers.AutoTokenizer.from_pretrained(src), strings)
    assert _ids(keras_tokenizer, strings) == expected
    back = tmp_path / "back"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(back))
    assert (back / "tokenizer.model").read_bytes() == (src / "tokenizer.model").read_bytes()
    assert _ids(transformers.AutoTokenizer.from_pretrained(back), strings) == expected


_ENCODER_SIZES = {"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}
# (KerasHub prefix, backbone arguments beyond the sizes, SentencePiece layout, its extra pieces, transformers' file)
_SENTENCEPIECE_ENCODERS = {
    "XLMRoberta": ({}, {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1}, [], "sentencepiece.bpe.model"),
    "DebertaV3": (
        {"bucket_size": 4},
        {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3}
        | {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"},
        ["[MASK]"],
        "spm.model",
    ),
}


@pytest.mark.parametrize("prefix", sorted(_SENTENCEPIECE_ENCODERS))
@pytest.mark.slow
def test_sentencepiece_encoders_both_ways(transformers, keras_hub, prefix, tmp_path):
    """XLM-R (fairseq's id offset, on both sides) and DeBERTa-v3: the preset's vocabulary.spm becomes the file
    transformers' tokenizer reads, giving the KerasHub tokenizer's ids, and comes back to a preset unchanged."""
    extra, layout, symbols, name = _SENTENCEPIECE_ENCODERS[prefix]
    models = keras_hub.models
    preset = tmp_path / "preset"
    getattr(models, f"{prefix}Backbone")(vocabulary_size=30, **_ENCODER_SIZES, **extra).save_to_preset(str(preset))
    proto = _sentencepiece(layout, symbols, "unigram")
    tokenizer = getattr(models, f"{prefix}Tokenizer")(proto=proto)
    tokenizer.save_to_preset(str(preset))
    out = tmp_path / "pt"
    run_cli("convert", str(preset), "--to", "pytorch", "-o", str(out))
    assert (out / name).read_bytes() == proto
    strings = [*_STRINGS, "\u00e5ngstr\u00f6m \u4e2d"]
    expected = _ids(tokenizer, strings)
    assert _ids(transformers.AutoTokenizer.from_pretrained(out), strings) == expected
    back = _to_preset(out, tmp_path / "back")
    assert _ids(keras_hub.tokenizers.Tokenizer.from_preset(str(back)), strings) == expected


@pytest.mark.slow
def test_vocabulary_of_another_kind_noted_and_not_written(transformers, torch, keras_hub, tmp_path):
    """A Gemma beside a byte-level BPE tokenizer.json (no tokenizer.model): GemmaTokenizer has no such vocabulary,
    so the conversion says so and the preset holds no tokenizer."""
    src, _ = _decoder(transformers, torch, "GemmaForCausalLM", tmp_path)
    _write_tokenizer_json(transformers, _byte_level_bpe(KERAS_BPE_SPLIT, []), src, "PreTrainedTokenizerFast")
    out = run_cli("convert", str(src), "--to", "tensorflow", "--target", "keras-hub", "-o", str(tmp_path / "preset"))
    assert "tokenizer: no vocabulary KerasHub's GemmaTokenizer reads (tokenizer.model) among tokenizer.json" in out
    assert not (tmp_path / "preset/assets").exists() and not (tmp_path / "preset/tokenizer.json").exists()
