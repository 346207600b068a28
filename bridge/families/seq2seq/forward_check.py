"""The forward half of ``bridge verify`` for the ``bertseq2seq`` pack (EncoderDecoderModel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.forward_check import compare_outputs, load_or_skip, towards_pytorch_only


def seq2seq_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """Same seeded inputs through the TF reference and the converted model; logits compared at ``report.atol``."""
    if not towards_pytorch_only(report, ctx, "bertseq2seq"):
        return
    tf_ckpt, pt_folder, config = ctx.src, ctx.out, ctx.plan.target.config or {}
    seed, batch, seq_len = ctx.seed, ctx.batch, ctx.seq_len

    def load() -> tuple[Any, dict[str, Any], Any, Any]:
        from pt_side.forward import load_transformers_model

        model, pt_config = load_transformers_model(pt_folder if pt_folder.is_dir() else pt_folder.parent)
        import torch

        from bridge.families.seq2seq.reference_tf import seq2seq_forward

        return model, pt_config, torch, seq2seq_forward

    loaded = load_or_skip(report, load)
    if loaded is None:
        return
    model, pt_config, torch, seq2seq_forward = loaded
    enc = pt_config.get("encoder", {})
    cfg = {**config, **{k: enc[k] for k in ("num_attention_heads", "hidden_size", "vocab_size") if k in enc}}
    if enc.get("hidden_act") not in ("gelu_new", "gelu_pytorch_tanh"):
        report.notes.append(f"PyTorch hidden_act is {enc.get('hidden_act')!r}; the TF reference uses the tanh gelu")
    seq = min(seq_len, cfg["max_position_embeddings"])
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(0, cfg["vocab_size"], (batch, seq)).astype(np.int64)
    decoder_ids = rng.integers(0, cfg["vocab_size"], (batch, max(1, seq // 2))).astype(np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[-1, seq // 2 :] = 0  # one padded source row exercises the encoder and cross-attention masks
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(mask),
            decoder_input_ids=torch.from_numpy(decoder_ids),
        )
    pt = {"encoder_last_hidden_state": out.encoder_last_hidden_state.numpy(), "logits": out.logits.numpy()}
    prefix = config.get("prefix", "module/bert/")  # with its trailing slash; "" when the names have none
    bias = "decoder/output_bias" if f"{prefix}decoder/output_bias" in tf_ckpt else None
    tf = seq2seq_forward(
        lambda n: tf_ckpt[n].numpy(),
        cfg,
        input_ids,
        mask,
        decoder_ids,
        prefix=prefix,
        coupled=bool(config.get("tie_encoder_decoder")),
        output_bias=bias,
    )
    compare_outputs(report, tf, pt)
