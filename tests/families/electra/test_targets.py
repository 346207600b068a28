"""The electra pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import pytest

from bridge.families.electra.pack import CLASSES, PACK

CONFIG = {"vocab_size": 32, "embedding_size": 8, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 1,
          "intermediate_size": 64, "max_position_embeddings": 16, "type_vocab_size": 2}  # fmt: skip


@pytest.mark.parametrize("class_name", sorted(CLASSES))
@pytest.mark.parametrize("embedding_size", [8, 16])  # projected or not
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, embedding_size):
    config = dict(CONFIG, embedding_size=embedding_size)
    with torch.device("meta"):
        model = getattr(transformers, class_name)(transformers.ElectraConfig(**config))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](config)
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    declared = dict(getattr(model, "_tied_weights_keys", None) or {})
    assert {k: t for k, (_, t) in layout.items() if t} == declared


def test_generator_sizes_are_its_own(transformers, torch):
    """The masked-LM class is laid out with the generator's sizes that config_from_source puts aside."""
    config = dict(CONFIG, generator={"hidden_size": 4, "num_hidden_layers": 1, "intermediate_size": 16})
    hf = transformers.ElectraConfig(**{**CONFIG, **config["generator"]})
    with torch.device("meta"):
        model = transformers.ElectraForMaskedLM(hf)
    layout = PACK.pt.targets["ElectraForMaskedLM"](config)
    assert {k: s for k, (s, _) in layout.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
