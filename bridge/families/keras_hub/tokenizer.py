"""A preset's tokenizer assets as the files transformers' ``AutoTokenizer`` reads, where it has the same tokenizer.

KerasHub keeps its vocabularies under ``assets/tokenizer/``: WordPiece ``vocabulary.txt`` (transformers' ``vocab.txt``),
byte-level BPE ``vocabulary.json`` + ``merges.txt`` (``vocab.json`` + ``merges.txt``) and SentencePiece
``vocabulary.spm`` (``tokenizer.model``); the files move unchanged and a ``tokenizer_config.json`` names the class.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bridge.core.keras_hub_preset import preset_facts, sniff_keras_hub_preset
from bridge.families.keras_hub.families import BY_BACKBONE

if TYPE_CHECKING:
    from pathlib import Path

# KerasHub asset -> the transformers file it is, per tokenizer model.
_WORDPIECE = {"vocabulary.txt": "vocab.txt"}
_BPE = {"vocabulary.json": "vocab.json", "merges.txt": "merges.txt"}
_SENTENCEPIECE = {"vocabulary.spm": "tokenizer.model"}


def tokenizer_files(folder: Path) -> dict[str, bytes]:
    """The tokenizer files to write beside the converted weights (none where the family names no tokenizer or the
    preset holds no vocabulary transformers reads)."""
    if not sniff_keras_hub_preset(folder):
        return {}
    facts = preset_facts(folder)
    family = BY_BACKBONE.get(str(facts.get("backbone_class", "")))
    assets = folder / "assets" / "tokenizer"
    if family is None or not family.tokenizer or not assets.is_dir():
        return {}
    for names in (_WORDPIECE, _BPE, _SENTENCEPIECE):
        if all((assets / name).is_file() for name in names):
            files = {target: (assets / name).read_bytes() for name, target in names.items()}
            settings: dict[str, Any] = {"tokenizer_class": family.tokenizer}
            if names is _WORDPIECE:
                settings |= _wordpiece_settings(folder)
            files["tokenizer_config.json"] = (json.dumps(settings, indent=2) + "\n").encode()
            return files
    return {}


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
