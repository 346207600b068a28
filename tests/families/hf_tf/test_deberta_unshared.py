"""DeBERTa-v2 with ``share_att_key: false``: TF's ``pos_proj``/``pos_q_proj`` are PyTorch's ``pos_key_proj``/
``pos_query_proj``.  Oracle: the TF model's own logits (io.npz, written by transformers 4.57's TFDebertaV2ForMaskedLM,
tests/families/hf_tf/make_deberta_unshared.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bridge.commands.check import check
from bridge.commands.convert import convert

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-deberta-v2-unshared"


def test_position_projections_map_to_their_pytorch_names():
    plan = check(FIXTURE / "tf", to="pytorch")
    assert plan.ok, plan
    targets = {m.target for m in plan.matched}
    for proj in ("pos_key_proj", "pos_query_proj"):
        for layer in (0, 1):
            for leaf in ("weight", "bias"):
                assert f"deberta.encoder.layer.{layer}.attention.self.{proj}.{leaf}" in targets


def test_forward_matches_the_tf_model(tmp_path, transformers):
    import torch

    convert(FIXTURE / "tf", to="pytorch", out=tmp_path / "pt")
    model, info = transformers.DebertaV2ForMaskedLM.from_pretrained(str(tmp_path / "pt"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    io = np.load(FIXTURE / "io.npz")
    meta = json.loads((FIXTURE / "meta.json").read_text())
    with torch.no_grad():
        out = model.eval()(**{k: torch.from_numpy(io[k]) for k in meta["inputs"]})
    np.testing.assert_allclose(out.logits.numpy(), io["logits"], atol=meta["atol"], rtol=0)
