"""The xlnet pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import pytest

from bridge.families.xlnet.pack import CLASSES, PACK

CONFIG = {"n_token": 32, "d_model": 8, "n_head": 2, "d_head": 4, "d_inner": 16, "n_layer": 3}


@pytest.mark.parametrize("class_name", CLASSES)
@pytest.mark.parametrize(("num_labels", "tied"), [(1, True), (3, False)])
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, num_labels, tied):
    config = transformers.XLNetConfig(
        vocab_size=32, d_model=8, n_head=2, d_inner=16, n_layer=3, num_labels=num_labels, tie_word_embeddings=tied
    )
    with torch.device("meta"):
        model = getattr(transformers, class_name)(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](dict(CONFIG, num_labels=num_labels, tie_word_embeddings=tied))
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    # Ties: what transformers declares for the class, when the config ties the LM head to the embeddings.
    declared = dict(getattr(model, "_tied_weights_keys", None) or {}) if tied else {}
    assert {k: t for k, (_, t) in layout.items() if t} == declared
