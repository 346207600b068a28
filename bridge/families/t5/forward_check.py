"""The forward half of ``bridge verify`` for the ``t5`` pack: transformers' T5 / mT5 class against a TF2 forward of
Mesh TensorFlow's T5 math (``reference_tf.py`` here) on the checkpoint's own variables."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.forward_check import compare_outputs, load_or_skip, towards_pytorch_only


def t5_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """Same seeded inputs (one padded source row) through the TF reference and the converted model."""
    if not towards_pytorch_only(report, ctx, "t5"):
        return

    def load() -> tuple[Any, Any, Any]:
        from pt_side.forward import load_transformers_model

        model, _ = load_transformers_model(ctx.out if ctx.out.is_dir() else ctx.out.parent)
        import torch

        from bridge.families.t5.reference_tf import t5_forward

        return model, torch, t5_forward

    loaded = load_or_skip(report, load)
    if loaded is None:
        return
    model, torch, t5_forward = loaded
    # The reference computes the source's math (its gin file or its shapes), not what the output's config.json
    # says: a config.json that asks for another activation or another LM head is what this check is for.
    cfg = dict(ctx.plan.target.config or {})
    rng = np.random.default_rng(ctx.seed)
    batch, seq = ctx.batch, ctx.seq_len
    input_ids = rng.integers(0, cfg["vocab_size"], (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[-1, seq // 2 :] = 0  # one padded source row exercises the encoder and cross-attention masks
    seq2seq = hasattr(model, "lm_head")
    decoder_ids = rng.integers(0, cfg["vocab_size"], (batch, max(1, seq // 2))).astype(np.int64) if seq2seq else None
    feed = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    with torch.no_grad():
        if seq2seq:
            out = model(**feed, decoder_input_ids=torch.from_numpy(decoder_ids), use_cache=False)
            pt = {"encoder_last_hidden_state": out.encoder_last_hidden_state.numpy(), "logits": out.logits.numpy()}
        else:
            pt = {"encoder_last_hidden_state": model(**feed).last_hidden_state.numpy()}
    try:
        tf = t5_forward(lambda n: ctx.src[n].numpy(), cfg, input_ids, mask, decoder_ids)
    except KeyError as e:
        report.notes.append(f"forward check skipped: the TF reference needs {e}, which the source does not have")
        return
    compare_outputs(report, tf, pt)
