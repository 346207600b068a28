"""Tokenizer files both ways: a preset's assets as the files transformers' ``AutoTokenizer`` reads, and a
transformers directory's vocabulary as a preset's assets with the ``tokenizer.json`` ``save_to_preset`` writes.

KerasHub keeps its vocabularies under ``assets/tokenizer/``: WordPiece ``vocabulary.txt`` (transformers' ``vocab.txt``),
byte-level BPE ``vocabulary.json`` + ``merges.txt`` (``vocab.json`` + ``merges.txt``) and SentencePiece
``vocabulary.spm`` (``tokenizer.model``, T5's ``spiece.model``); the files move unchanged, and a family's module
names its kind.
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
_KERAS_CONFIG["spiece"] = _KERAS_CONFIG["sentencepiece"]
# Config keys ``from_files`` adds beside a transformers source: its vocabulary files and tokenizer settings.
VOCABULARY_KEY = "keras_hub_vocabulary"
SETTINGS_KEY = "keras_hub_tokenizer_settings"


def tokenizer_files(folder: Path) -> dict[str, bytes]:
    """The tokenizer files to write beside the converted weights (none where the family names no tokenizer or the
    preset holds no vocabulary transformers reads)."""
    if not sniff_keras_hub_preset(folder):
        return {}
    facts = preset_facts(folder)
    family = family_of(str(facts.get("backbone_class", "")), facts.get("backbone_config") or {})
    assets = folder / "assets" / "tokenizer"
    if family is None or not family.tokenizer or not assets.is_dir():
        return {}
    names = ASSETS[family.vocabulary]
    if not all((assets / name).is_file() for name in names):
        return {}
    files = {target: (assets / name).read_bytes() for name, target in names.items()}
    settings: dict[str, Any] = {"tokenizer_class": family.tokenizer}
    if family.vocabulary == "wordpiece":
        settings |= _wordpiece_settings(folder)
    files["tokenizer_config.json"] = (json.dumps(settings, indent=2) + "\n").encode()
    return files


def _wordpiece_settings(folder: Path) -> dict[str, Any]:
    """Lower-casing and the unknown token, as the preset's own ``tokenizer.json`` (a Keras config) sets them."""
    if not (folder / "tokenizer.json").is_file():
        return {}
    config = json.loads((folder / "tokenizer.json").read_text()).get("config", {})
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
    if not found:
        return ({TOKENIZER_FILES_KEY: present} if present else {}), []
    facts: Config = {VOCABULARY_KEY: found, TOKENIZER_FILES_KEY: present}
    tokenizer = folder / "tokenizer_config.json"
    if tokenizer.is_file() and tokenizer.stat().st_size < 1 << 24:
        value = load_json(tokenizer.read_bytes(), path=tokenizer, what="tokenizer config", hint="Save it again")
        if isinstance(value, dict):
            facts[SETTINGS_KEY] = {k: v for k, v in value.items() if isinstance(v, bool)}
    return facts, []


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
