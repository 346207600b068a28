"""The openai-gpt2 pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.families.gpt2.pack import CLASSES, PACK

HPARAMS = json.loads((Path(__file__).resolve().parents[2] / "fixtures/gpt2-tf1/hparams.json").read_text())


@pytest.mark.parametrize("class_name", CLASSES)
@pytest.mark.parametrize("n_inner", [None, 12])
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, n_inner):
    hp = dict(HPARAMS, n_inner=n_inner)
    config = transformers.GPT2Config(
        vocab_size=hp["n_vocab"],
        n_positions=hp["n_ctx"],
        n_embd=hp["n_embd"],
        n_head=hp["n_head"],
        n_layer=hp["n_layer"],
        n_inner=n_inner,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.device("meta"):
        model = getattr(transformers, class_name)(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](hp)
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    # Ties: the table's tied_to equals what transformers declares for the class.
    declared = dict(getattr(model, "_tied_weights_keys", None) or {})
    assert {k: t for k, (_, t) in layout.items() if t} == declared
    # A transformers config (as a PyTorch source carries it) lays out the same.
    assert PACK.pt.targets[class_name](config.to_dict()) == layout
