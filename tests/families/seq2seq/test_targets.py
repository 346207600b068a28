"""The bertseq2seq pack's torch-free EncoderDecoderModel layout equals a real transformers model (meta device)."""

from __future__ import annotations

import pytest

from bridge.families.seq2seq.pack import PACK, copies

CONFIG = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 32, "max_position_embeddings": 32}  # fmt: skip


@pytest.mark.parametrize(("shared", "decoder_layers"), [(False, 2), (False, 3), (True, 2)])
def test_layout_equals_transformers_state_dict(transformers, torch, shared, decoder_layers):
    enc = transformers.BertGenerationConfig(**CONFIG)
    dec = transformers.BertGenerationConfig(
        **dict(CONFIG, num_hidden_layers=decoder_layers), is_decoder=True, add_cross_attention=True
    )
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec, tie_encoder_decoder=shared)
    with torch.device("meta"):
        model = transformers.EncoderDecoderModel(config=config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ours = dict(CONFIG, decoder_num_hidden_layers=decoder_layers, tie_encoder_decoder=shared)
    layout = PACK.pt.targets["EncoderDecoderModel"](ours)
    assert {k: shape for k, (shape, _) in layout.items()} == expected
    # Ties: transformers' own (the LM head) plus the copies convert writes, nothing else.
    declared = {f"decoder.{k}": f"decoder.{v}" for k, v in (model.decoder._tied_weights_keys or {}).items()}
    written = {k: v for k, v in copies(ours).items() if v is not None}
    assert {k: t for k, (_, t) in layout.items() if t} == {**declared, **written}
    assert all(layout[k][0] == layout[v][0] for k, v in written.items())
