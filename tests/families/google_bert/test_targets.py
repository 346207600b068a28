"""The google-bert pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.families.google_bert.pack import CLASSES, PACK

CONFIG = json.loads((Path(__file__).resolve().parents[3] / "examples/tiny-bert/bert_config.json").read_text())


@pytest.mark.parametrize("class_name", sorted(CLASSES))
@pytest.mark.parametrize("num_labels", [2, 5])
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, num_labels):
    config = transformers.BertConfig(**CONFIG, num_labels=num_labels, is_decoder=class_name == "BertLMHeadModel")
    with torch.device("meta"):
        model = getattr(transformers, class_name)(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](dict(CONFIG, num_labels=num_labels))
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    # Ties: the table's tied_to equals what transformers declares for the class.
    declared = dict(getattr(model, "_tied_weights_keys", None) or {})
    assert {k: t for k, (_, t) in layout.items() if t} == declared
