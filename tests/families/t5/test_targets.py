"""The t5 pack's torch-free class layouts equal real transformers models (meta device)."""

from __future__ import annotations

import pytest

from bridge.families.t5.pack import CLASSES, PACK

BASE = {"vocab_size": 40, "d_model": 8, "d_kv": 6, "num_heads": 2, "d_ff": 16, "num_layers": 2,
        "relative_attention_num_buckets": 8}  # fmt: skip
VARIANTS = {
    "v1.0": {"feed_forward_proj": "relu", "tie_word_embeddings": True},
    "v1.1": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "num_decoder_layers": 3},
}


@pytest.mark.parametrize("class_name", sorted(CLASSES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_layout_equals_transformers_state_dict(transformers, torch, class_name, variant):
    ours = dict(BASE, **VARIANTS[variant])
    config_class = transformers.MT5Config if class_name.startswith("MT5") else transformers.T5Config
    with torch.device("meta"):
        model = getattr(transformers, class_name)(config_class(**ours))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = PACK.pt.targets[class_name](ours)
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    # Ties: what transformers declares, except an untied LM head (v1.1, and MT5 always), which transformers 5 keeps
    # apart when the weights file stores it with its own values.
    declared = dict(model._tied_weights_keys or {})
    if not ours["tie_word_embeddings"] or class_name.startswith("MT5"):  # MT5's LM head is never a scaled tie
        declared.pop("lm_head.weight", None)
    assert {k: t for k, (_, t) in layout.items() if t} == declared
