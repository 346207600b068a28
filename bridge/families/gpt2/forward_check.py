"""The forward half of ``bridge verify`` for the ``openai-gpt2`` pack: transformers' GPT-2 against a TF2 reference
of openai/gpt-2's math (``reference_tf.py`` here) on the TF side's weights, either way of conversion."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.core.transforms import parse
from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.families.gpt2.pack import tf_layout
from bridge.forward_check import compare_outputs, load_or_skip, transformers_model
from bridge.rules import get_pack

_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh")


def gpt2_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """The pack's ``forward_check``: the same seeded token ids through transformers and the TF reference; the last
    hidden state (after ``ln_f``) and, for a class with the LM head, the logits compared at ``report.atol``."""
    tf_ckpt = ctx.src if ctx.to == "pytorch" else ctx.dst

    def load() -> tuple[Any, Any, dict[str, Any], Any]:
        import torch

        model, pt_config = transformers_model(ctx)
        from bridge.families.gpt2.reference_tf import gpt2_forward

        return torch, model, pt_config, gpt2_forward

    loaded = load_or_skip(report, load)
    if loaded is None:
        return
    torch, model, pt_config, gpt2_forward = loaded
    cfg = {**(ctx.plan.target.config or {}), **pt_config}  # the PyTorch model's own config decides what it computes
    act = cfg.get("activation_function", "gelu_new")
    if act not in _TANH_GELU:
        report.notes.append(f"PyTorch activation_function is {act!r}; the TF reference uses openai's tanh gelu")
    seq = min(ctx.seq_len, int(model.config.n_positions))
    ids = np.random.default_rng(ctx.seed).integers(0, int(model.config.vocab_size), (ctx.batch, seq)).astype(np.int64)
    with torch.no_grad():
        feed = torch.from_numpy(ids)
        pt = {"hidden": model.base_model(input_ids=feed).last_hidden_state.numpy()}
        if getattr(model, "lm_head", None) is not None:
            pt["logits"] = model(input_ids=feed).logits.numpy()
    weights = _openai_names(tf_ckpt, ctx)
    try:
        tf = gpt2_forward(weights, cfg, ids, eps=float(cfg.get("layer_norm_epsilon", 1e-5)))
    except KeyError as e:
        report.notes.append(
            f"forward check skipped: the TF reference forward needs `{e.args[0]}`, which no tensor of the TF side "
            "fills (nor any --map/--rules rule)"
        )
        return
    compare_outputs(report, tf, pt)


def _openai_names(tf_ckpt: Any, ctx: ForwardContext) -> Any:
    """openai name -> value as stored: read by name, or, for a TF source a --map/--rules rule renamed, through
    the plan's match for the same PyTorch name (its transform, then the inverse of the pack's)."""
    pack = get_pack("openai-gpt2")
    by_target = {m.target: m for m in ctx.plan.matched} if ctx.to == "pytorch" else {}
    base = f"{pack.pt.base_prefix}."

    def weights(name: str) -> np.ndarray:
        if name in tf_ckpt:
            value: np.ndarray = tf_ckpt[name].numpy()
            return value
        hit = pack.map_name(name)
        match = None
        if hit is not None:
            match = next((by_target[n] for n in (hit[0], hit[0].removeprefix(base)) if n in by_target), None)
        if hit is None or match is None:
            raise KeyError(name)
        at_pt = parse(match.transform).apply(tf_ckpt[match.source].numpy())
        return hit[1].inverse(tf_layout(ctx.plan.target.config or {}, ())[name]).apply(at_pt)

    return weights
