"""The forward half of ``bridge verify`` for BERT (the ``google-bert`` and ``hf-tf`` packs): transformers' PyTorch
model against a TF2 reference of google-research's math (``reference_tf.py`` here) on the TF side's weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bridge.core.packs import RulePack
from bridge.core.plan import Match
from bridge.core.transforms import Transform, parse
from bridge.core.verify_report import ForwardCause, ForwardContext, VerifyReport, differences
from bridge.families.google_bert.pack import tf_layout
from bridge.forward_check import compare_outputs, load_or_skip, transformers_model
from bridge.rules import get_pack


def bert_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """The pack's ``forward_check``: the same seeded batch through transformers and the TF reference."""
    # A TF source renamed by --map/--rules: the plan says which of its tensors the reference reads.
    renamed = {m.target: m for m in ctx.plan.matched} if ctx.to == "pytorch" else {}
    tf_ckpt = ctx.src if ctx.src.framework != "pytorch" else ctx.dst
    pack = ctx.plan.rule_pack or get_pack(ctx.plan.pack)
    _bert_forward(report, tf_ckpt, pack, ctx, renamed)


# transformers' hidden_act -> the gelu form it computes, and back.
_GELU_FORMS = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
_GELU_NAMES = {"erf": "gelu", "tanh": "gelu_new"}


def _bert_forward(
    report: VerifyReport,
    tf_ckpt: Any,
    pack: RulePack,
    ctx: ForwardContext,
    by_target: dict[str, Match],
) -> None:
    """transformers' PyTorch model against the TF reference forward on the TF side's weights.

    The reference reads google-research names; another layout's weights reach it through
    the PyTorch names both packs map to.  google-research's code has only the tanh gelu;
    transformers' TF models compute the config's ``hidden_act``, and so does the reference for them.
    """

    def load() -> tuple[Any, dict[str, Any], Any, Callable[..., dict[str, np.ndarray]]]:
        from pt_side.forward import transformers_outputs

        model, pt_config = transformers_model(ctx)
        from bridge.families.google_bert.reference_tf import bert_forward

        return model, pt_config, transformers_outputs, bert_forward

    loaded = load_or_skip(report, load)
    if loaded is None:
        return
    model, pt_config, transformers_outputs, bert_forward = loaded
    cfg = {**(ctx.plan.target.config or {}), **pt_config}  # the PyTorch model's own config decides what it computes
    seq, batch = min(ctx.seq_len, cfg["max_position_embeddings"]), ctx.batch
    rng = np.random.default_rng(ctx.seed)
    inputs = {
        "input_ids": rng.integers(0, cfg["vocab_size"], (batch, seq)).astype(np.int64),
        "token_type_ids": rng.integers(0, cfg.get("type_vocab_size", 1), (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
    }
    inputs["attention_mask"][-1, seq // 2 :] = 0  # one padded row exercises the mask
    pt = transformers_outputs(model, inputs)
    heads = tuple(
        h for h, key in (("pooler", "pooled_output"), ("mlm", "mlm_logits"), ("nsp", "nsp_logits")) if key in pt
    )
    act = cfg.get("hidden_act")
    gelu = "erf" if pack.name != "google-bert" and act == "gelu" else "tanh"
    if gelu == "tanh" and act not in ("gelu_new", "gelu_pytorch_tanh"):
        report.notes.append(f"PyTorch hidden_act is {act!r}; the TF reference uses the tanh gelu")
    weights = _google_names(tf_ckpt, pack, cfg, heads, by_target)

    def run(form: str) -> dict[str, np.ndarray]:
        return bert_forward(
            weights,
            cfg,
            inputs["input_ids"],
            inputs["token_type_ids"],
            inputs["attention_mask"],
            heads=heads,
            gelu=form,
        )

    try:
        tf = run(gelu)
    except _NoSource as e:
        report.notes.append(
            f"forward check skipped: the TF reference forward needs `{e.args[0]}`, which no "
            "tensor of the TF side fills (nor any --map/--rules rule)"
        )
        return
    compare_outputs(report, tf, {name: value for name, value in pt.items() if name in tf})
    pt_form = _GELU_FORMS.get(act or "")
    if report.ok or report.value_failures or pt_form is None or pt_form == gelu:
        return
    # Values are bit-exact and the two sides' activations differ: run the reference with the PyTorch side's
    # activation; if that agrees, the activation is the whole difference.
    matched = run(pt_form)
    worst = max(differences(matched[name], value)[0] for name, value in pt.items() if name in matched)
    if worst > report.atol:
        report.notes.append(
            f"with the TF reference computing the PyTorch side's `{act}` ({pt_form}) too, outputs "
            f"still differ by {worst:.1e} (atol {report.atol:g}): the activation does not explain it "
            "all"
        )
        return
    tf_side = "google-research's tanh form" if pack.name == "google-bert" else f"the {gelu} form"
    pt_side = ctx.out if ctx.to == "pytorch" else ctx.source
    config_path = (pt_side if pt_side.is_dir() else pt_side.parent) / "config.json"
    report.explained = ForwardCause(
        cause="activation",
        detail=f"transformers' `{act}` ({pt_form}) on the PyTorch side vs {tf_side} on the TF side",
        matched_max_abs=worst,
        accept_atol=_round_up(max(o.max_abs for o in report.outputs)),
        fix=f'make the PyTorch side compute the TF side\'s math: set "hidden_act": "{_GELU_NAMES[gelu]}" in '
        f"{config_path}",
    )


def _round_up(x: float) -> float:
    """``x`` rounded up to one significant digit (1.1e-3 -> 2e-3): an ``--atol`` that accepts it."""
    if x <= 0:
        return 0.0
    exponent = math.floor(math.log10(x))
    lead = math.ceil(x / 10**exponent)
    while lead > 1 and float(f"{lead - 1}e{exponent}") >= x:  # x / 10**exponent may round up by an ulp
        lead -= 1
    while float(f"{lead}e{exponent}") < x:  # or down
        lead += 1
    return float(f"{lead}e{exponent}")


class _NoSource(KeyError):
    """A google-research name the reference forward needs and the TF side does not provide."""


def _google_names(
    tf_ckpt: Any, pack: RulePack, config: dict[str, Any], heads: tuple[str, ...], by_target: dict[str, Match]
) -> Callable[[str], np.ndarray]:
    """google-research name -> value, from a checkpoint in ``pack``'s TF layout.

    Both packs' rules meet at the PyTorch names: a value is brought to its PyTorch layout by
    ``pack``'s transform, then to google-research's by the inverse of that pack's.  A name neither
    the checkpoint nor the pack provides is looked up in ``by_target`` (the plan's matches by
    PyTorch name: tensors a user rule renamed).  Such a tensor is read as it is stored when its
    shape is google-research's, so the forward still checks the rule's transform; else through it.
    """
    google = get_pack("google-bert")
    by_pt: dict[str, tuple[str, Transform]] = {}
    if pack.name != google.name:
        for r in tf_ckpt.values():
            hit = pack.map_name(r.name)
            if hit is not None and r.kind == "model":
                by_pt.setdefault(hit[0], (r.name, hit[1]))
    shapes = tf_layout(config, heads)
    base = f"{google.pt.base_prefix}."

    def planned(pt_name: str) -> Match | None:
        for name in (pt_name, pt_name.removeprefix(base), base + pt_name):
            if name in by_target:
                return by_target[name]
        return None

    def read(name: str) -> np.ndarray:
        value: np.ndarray = tf_ckpt[name].numpy()
        return value

    def weights(name: str) -> np.ndarray:
        if pack.name == google.name and name in tf_ckpt:
            return read(name)
        pt_name, to_pt = google.map_name(name)  # type: ignore[misc]
        if pt_name in by_pt:
            source, from_tf = by_pt[pt_name]
            return to_pt.inverse(shapes[name]).apply(from_tf.apply(read(source)))
        match = planned(pt_name)
        if match is None:
            raise _NoSource(name)
        value = read(match.source)
        if pack.name == google.name and value.shape == shapes[name]:
            return value
        return to_pt.inverse(shapes[name]).apply(parse(match.transform).apply(value))

    return weights
