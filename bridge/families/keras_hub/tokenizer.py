"""Tokenizer files both ways: a preset's assets as the files transformers' ``AutoTokenizer`` reads, and a
transformers directory's vocabulary as a preset's assets with the ``tokenizer.json`` ``save_to_preset`` writes.

KerasHub keeps its vocabularies under ``assets/tokenizer/``: WordPiece ``vocabulary.txt`` (transformers' ``vocab.txt``),
byte-level BPE ``vocabulary.json`` + ``merges.txt`` (``vocab.json`` + ``merges.txt``) and SentencePiece
``vocabulary.spm`` (``tokenizer.model``, T5's ``spiece.model``, DeBERTa's ``spm.model``, XLM-R's
``sentencepiece.bpe.model``); the files move unchanged, and a family's module
names its kind.
A transformers directory holding a byte-level BPE only as ``tokenizer.json`` (Llama 3, Qwen) gives the preset its
vocabulary and merges; a family transformers reads from ``tokenizer.json`` alone (no tokenizer class of its own) gets
one written from the preset's vocabulary, splitting words with Llama 3's pattern (``KERAS_BPE_SPLIT``, the one
KerasHub's ``BytePairTokenizer`` means for every family).  KerasHub 0.32 hands that pattern to the tokenizers library
as a literal string, so outside tf.data it splits no words: where a merge spans two words (runs of spaces) its ids
differ from transformers', and the conversion says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bridge.core.jsonio import load_json
from bridge.core.keras_hub_preset import preset_facts, sniff_keras_hub_preset
from bridge.families.keras_hub.families import family_of
from bridge.families.keras_hub.table import TOKENIZER_FILES, TOKENIZER_FILES_KEY, policy, snake

if TYPE_CHECKING:
    from pathlib import Path

    from bridge.families.keras_hub.table import Config, Family, Writing

# KerasHub asset -> the transformers file it is, per tokenizer kind.
ASSETS: dict[str, dict[str, str]] = {
    "wordpiece": {"vocabulary.txt": "vocab.txt"},
    "bpe": {"vocabulary.json": "vocab.json", "merges.txt": "merges.txt"},
    "sentencepiece": {"vocabulary.spm": "tokenizer.model"},
    "spiece": {"vocabulary.spm": "spiece.model"},  # SentencePiece under T5's file name
    "spm": {"vocabulary.spm": "spm.model"},  # under DeBERTa-v2/v3's
    "sentencepiece_bpe": {"vocabulary.spm": "sentencepiece.bpe.model"},  # under XLM-R's (fairseq's ids, both sides)
}
# The Keras tokenizer config each kind's ``get_config`` gives, less the layer's own keys and the family's.
_KERAS_CONFIG: dict[str, Config] = {
    "wordpiece": {
        "vocabulary": None,
        "sequence_length": None,
        "lowercase": False,
        "strip_accents": False,
        "split": True,
        "suffix_indicator": "##",
        "oov_token": "[UNK]",
        "special_tokens": None,
        "special_tokens_in_strings": False,
    },
    "bpe": {"sequence_length": None, "add_prefix_space": False, "unsplittable_tokens": []},
    "sentencepiece": {"proto": None, "sequence_length": None, "add_bos": False, "add_eos": False},
}
for _kind in ("spiece", "spm", "sentencepiece_bpe"):
    _KERAS_CONFIG[_kind] = _KERAS_CONFIG["sentencepiece"]
# The pattern KerasHub's BytePairTokenizer means to split words with (Llama 3's), before mapping bytes GPT-2's way.
KERAS_BPE_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_GPT2_SPLIT = "GPT-2's"  # a ByteLevel pre-tokenizer splitting words itself (use_regex)
# Config keys ``from_files`` adds beside a transformers source: its vocabulary files and tokenizer settings.
VOCABULARY_KEY = "keras_hub_vocabulary"
SETTINGS_KEY = "keras_hub_tokenizer_settings"
SPLIT_KEY = "keras_hub_tokenizer_split"  # how a tokenizer.json's byte-level BPE splits words
SPECIAL_KEY = "keras_hub_special_tokens"  # its added special tokens, which KerasHub must leave unsplit


def tokenizer_files(folder: Path) -> dict[str, bytes]:
    """The tokenizer files to write beside the converted weights (none where the family names no tokenizer or the
    preset holds no vocabulary transformers reads)."""
    if not sniff_keras_hub_preset(folder):
        return {}
    facts = preset_facts(folder)
    family = family_of(str(facts.get("backbone_class", "")), facts.get("backbone_config") or {})
    assets = folder / "assets" / "tokenizer"
    if family is None or not family.vocabulary or not assets.is_dir():
        return {}
    names = ASSETS[family.vocabulary]
    if not all((assets / name).is_file() for name in names):
        return {}
    if not family.tokenizer:  # transformers reads the family's vocabulary from tokenizer.json alone
        return _bpe_tokenizer_json(folder) if family.vocabulary == "bpe" else {}
    files = {target: (assets / name).read_bytes() for name, target in names.items()}
    settings: dict[str, Any] = {"tokenizer_class": family.tokenizer}
    if family.vocabulary == "wordpiece":
        settings |= _wordpiece_settings(folder)
    if family.vocabulary == "bpe":
        settings |= _bpe_special_tokens(folder, json.loads(files["vocab.json"]))
    files["tokenizer_config.json"] = (json.dumps(settings, indent=2) + "\n").encode()
    return files


def _bpe_special_tokens(folder: Path, vocabulary: dict[str, int]) -> dict[str, Any]:
    """The preset's unsplittable tokens as the special tokens transformers adds beside vocab.json (a chat model's
    ``<|im_start|>``), which a vocab.json alone does not mark."""
    tokens = [t for t in _keras_tokenizer_config(folder).get("unsplittable_tokens") or [] if t in vocabulary]
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    added = {str(vocabulary[t]): {"content": t} | flags for t in tokens}
    return {"added_tokens_decoder": added} if added else {}


def _bpe_tokenizer_json(folder: Path) -> dict[str, bytes]:
    """A ``tokenizer.json`` of the preset's vocabulary and merges, splitting words with the pattern its
    BytePairTokenizer means (its unsplittable tokens as added special tokens), read by transformers'
    ``TokenizersBackend``."""
    assets = folder / "assets" / "tokenizer"
    vocabulary = json.loads((assets / "vocabulary.json").read_text(encoding="utf-8"))
    lines = (assets / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [line.split(" ") for line in lines if line.strip() and not line.lstrip().startswith("#version:")]
    keras = _keras_tokenizer_config(folder)
    special = [t for t in keras.get("unsplittable_tokens") or [] if t in vocabulary]
    byte_level = {"type": "ByteLevel", "add_prefix_space": bool(keras.get("add_prefix_space")), "trim_offsets": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocabulary[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False}
            | {"normalized": False, "special": True}
            for t in special
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": KERAS_BPE_SPLIT}, "behavior": "Isolated", "invert": False},
                byte_level | {"use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": byte_level | {"use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocabulary,
            "merges": merges,
        },
    }
    config = {"tokenizer_class": "PreTrainedTokenizerFast"}
    return {
        "tokenizer.json": (json.dumps(tokenizer, ensure_ascii=False) + "\n").encode(),
        "tokenizer_config.json": (json.dumps(config, indent=2) + "\n").encode(),
    }


def _keras_tokenizer_config(folder: Path) -> dict[str, Any]:
    """The preset's own ``tokenizer.json`` (a Keras config): its ``config``, or nothing."""
    if not (folder / "tokenizer.json").is_file():
        return {}
    config = json.loads((folder / "tokenizer.json").read_text()).get("config", {})
    return config if isinstance(config, dict) else {}


def _wordpiece_settings(folder: Path) -> dict[str, Any]:
    """Lower-casing and the unknown token, as the preset's own ``tokenizer.json`` (a Keras config) sets them."""
    config = _keras_tokenizer_config(folder)
    out: dict[str, Any] = {}
    if isinstance(config.get("lowercase"), bool):
        out["do_lower_case"] = config["lowercase"]
    if isinstance(config.get("strip_accents"), bool):
        out["strip_accents"] = config["strip_accents"]
    if isinstance(config.get("oov_token"), str):
        out["unk_token"] = config["oov_token"]
    return out


def vocabulary_facts(folder: Path) -> tuple[Config, list[str]]:
    """A transformers directory's vocabulary files (each kind's whose files are all there) and the settings of its
    ``tokenizer_config.json``, for the preset's tokenizer assets."""
    found = {
        kind: {asset: str(folder / name) for asset, name in names.items()}
        for kind, names in ASSETS.items()
        if all((folder / name).is_file() for name in names.values())
    }
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    extracted = None
    if "bpe" not in found and "tokenizer.json" in present:
        extracted = _bpe_from_tokenizer_json(folder / "tokenizer.json")
        if extracted is not None:
            found["bpe"] = extracted[0]
    if not found:
        return ({TOKENIZER_FILES_KEY: present} if present else {}), []
    facts: Config = {VOCABULARY_KEY: found, TOKENIZER_FILES_KEY: present}
    if extracted is not None:
        facts[SPLIT_KEY], facts[SPECIAL_KEY] = extracted[1:]
    tokenizer = folder / "tokenizer_config.json"
    if tokenizer.is_file() and tokenizer.stat().st_size < 1 << 24:
        value = load_json(tokenizer.read_bytes(), path=tokenizer, what="tokenizer config", hint="Save it again")
        if isinstance(value, dict):
            facts[SETTINGS_KEY] = {k: v for k, v in value.items() if isinstance(v, bool)}
    return facts, []


def _bpe_from_tokenizer_json(path: Path) -> tuple[dict[str, Any], str, list[str]] | None:
    """A byte-level BPE ``tokenizer.json``'s vocabulary (its added tokens included) and merges, as the preset's
    assets' text, how it splits words (its Split regex, or GPT-2's) and its special tokens; None for any other
    model."""
    if path.stat().st_size >= 1 << 28:
        return None
    value = load_json(path.read_bytes(), path=path, what="tokenizer", hint="Save it again with transformers")
    model = value.get("model") if isinstance(value, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" or model.get("byte_fallback"):
        return None
    pre = value.get("pre_tokenizer") or {}
    steps = (pre.get("pretokenizers") or [pre]) if isinstance(pre, dict) else []
    if not any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps):
        return None  # a SentencePiece-style BPE (metaspace): not KerasHub's byte-level tokenizer
    splits = [
        s["pattern"].get("Regex") for s in steps if s.get("type") == "Split" and isinstance(s.get("pattern"), dict)
    ]
    split = str(splits[0]) if splits else _GPT2_SPLIT
    vocabulary = dict(model.get("vocab") or {})
    for token in value.get("added_tokens") or []:
        vocabulary.setdefault(token["content"], token["id"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    special = [t["content"] for t in value.get("added_tokens") or [] if t.get("special")]
    assets = {
        "vocabulary.json": {"text": json.dumps(vocabulary, ensure_ascii=False)},
        "merges.txt": {"text": "".join(f"{m}\n" for m in ["#version: 0.2", *merges])},
    }
    return assets, split, special


def tokenizer_notes(family: Family, writing: Writing, config: Config) -> list[str]:
    """A source's tokenizer files the preset's tokenizer cannot take, or where it splits words otherwise than the
    source's ``tokenizer.json``."""
    found = config.get(VOCABULARY_KEY) or {}
    present = config.get(TOKENIZER_FILES_KEY) or []
    if writing.tokenizer and present and family.vocabulary not in found:
        files = ", ".join(ASSETS[family.vocabulary].values())
        return [
            f"tokenizer: no vocabulary KerasHub's {writing.tokenizer} reads ({files}) among {', '.join(present)}: "
            "the preset has no tokenizer"
        ]
    split = config.get(SPLIT_KEY)
    if not writing.tokenizer or family.vocabulary != "bpe" or split is None:
        return []
    pattern = "Llama 3's pattern" if split == KERAS_BPE_SPLIT else split if split == _GPT2_SPLIT else repr(split)
    return [
        f"tokenizer: KerasHub 0.32's {writing.tokenizer} splits no words outside tf.data (its pattern reaches the "
        f"tokenizers library as a literal string), tokenizer.json splits them with {pattern}: token ids differ "
        "where a merge spans two words (runs of spaces)"
    ]


def preset_tokenizer(family: Family, writing: Writing, config: Config) -> dict[str, Any]:
    """The preset's tokenizer assets (asset name -> source file) and ``tokenizer.json``, where the transformers
    source holds the family's kind of vocabulary; nothing otherwise."""
    found = config.get(VOCABULARY_KEY)
    if not writing.tokenizer or not isinstance(found, dict) or family.vocabulary not in found:
        return {}
    settings = config.get(SETTINGS_KEY) or {}
    keras: Config = dict(_KERAS_CONFIG[family.vocabulary]) | writing.tokenizer_config
    # a key the family's tokenizer sets None is one its config lacks (CLIP's sets its unsplittable tokens itself)
    keras = {k: v for k, v in keras.items() if k not in writing.tokenizer_config or v is not None}
    if family.vocabulary == "wordpiece":
        keras["lowercase"] = bool(settings.get("do_lower_case", False))
    if family.vocabulary == "bpe":
        keras["add_prefix_space"] = bool(settings.get("add_prefix_space", False))
        own = keras.get("unsplittable_tokens")
        if config.get(SPECIAL_KEY) and isinstance(own, list):  # the family's and the source's special tokens
            keras["unsplittable_tokens"] = own + [t for t in config[SPECIAL_KEY] if t not in own]
    name = snake(writing.tokenizer)
    return {
        "assets": found[family.vocabulary],
        "tokenizer.json": {
            "module": f"{writing.module}.{name}",
            "class_name": writing.tokenizer,
            "config": {
                "name": name,
                "trainable": True,
                "dtype": policy("int32"),
                "config_file": "tokenizer.json",
                **keras,
            },
            "registered_name": f"keras_hub>{writing.tokenizer}",
        },
    }
