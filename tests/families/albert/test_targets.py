"""The albert pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.families.albert.pack import CLASSES, PACK

CONFIG = json.loads((Path(__file__).resolve().parents[2] / "fixtures/albert-tf1/albert_config.json").read_text())


@pytest.mark.parametrize("class_name", sorted(CLASSES))
@pytest.mark.parametrize("groups", [(1, 1), (2, 3)])
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, groups):
    config = dict(CONFIG, num_hidden_groups=groups[0], inner_group_num=groups[1], num_labels=3)
    keys = ("net_structure_type", "gap_size", "num_memory_blocks", "down_scale_factor")  # not AlbertConfig's
    hf_config = transformers.AlbertConfig(**{k: v for k, v in config.items() if k not in keys})
    with torch.device("meta"):
        model = getattr(transformers, class_name)(hf_config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](config)
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    declared = dict(getattr(model, "_tied_weights_keys", None) or {})
    assert {k: t for k, (_, t) in layout.items() if t} == declared
