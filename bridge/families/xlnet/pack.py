"""zihangdai/xlnet TF1 checkpoints <-> transformers ``XLNet*`` classes.

Names from zihangdai/xlnet ``modeling.py`` (``transformer_xl`` under the ``model/transformer`` scope,
``lm_loss``, ``summarize_sequence``'s ``sequnece_summary`` scope, spelt so, and ``classification_loss`` /
``regression_loss``'s ``<kind>_<task>/logit``) and ``model_utils.py`` (AdamWeightDecayOptimizer's
``adam_m``/``adam_v`` slots, which the core's slot grammar already reads as optimizer state).

The attention kernels ``q, k, v, o, r`` are ``[d_model, n_head, d_head]`` on both sides (both multiply with
einsum), so they are copied as they are; only the feed-forward and head ``Dense`` kernels are transposed.
With ``untie_r`` (every released XLNet) the relative-attention biases ``r_w_bias``, ``r_r_bias``,
``r_s_bias`` are ``[n_layer, n_head, d_head]``, and ``seg_embed`` is always ``[n_layer, 2, n_head, d_head]``:
transformers keeps one per layer, so layer ``k`` takes row ``k`` (``row(k)``).  Biases tied across layers
(``untie_r=False``: ``[n_head, d_head]``) have no per-layer rows; the plan shows them as mismatched, which
transformers 4.x could not load either.

The way back stacks the per-layer rows again (``place(k, n_layer)``) and names a task head
``model/<regression|classification>_<finetuning_task>/logit``, the task read from the source's own head name on
the way in (``config.json``'s ``finetuning_task``).  ``mask_emb`` goes back to pretraining-shaped models only:
fine-tuned checkpoints do not store it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from bridge.core.packs import (
    Buffer,
    ConfigHooks,
    Docs,
    Head,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
)
from bridge.families.google_bert.pack import label_maps
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts

_T = r"model/transformer"
_LAYER = _T + r"/layer_(\d+)"
# Layers whose per-layer bias rows have a rule: XLNet-large has 24; deeper stacks would show the rest as missing.
_MAX_LAYERS = 64
_LOGIT = r"model/(?:classification|regression)_[^/]+/logit"
_TASK = re.compile(r"model/(classification|regression)_([^/]+)/logit/kernel")

RULES = (
    Rule(_T + r"/word_embedding/lookup_table", "transformer.word_embedding.weight"),
    Rule(_T + r"/mask_emb/mask_emb", "transformer.mask_emb"),
    Rule(_LAYER + r"/rel_attn/([qkvor])/kernel", "transformer.layer.{1}.rel_attn.{2}"),
    Rule(_LAYER + r"/(rel_attn|ff)/LayerNorm/gamma", "transformer.layer.{1}.{2}.layer_norm.weight"),
    Rule(_LAYER + r"/(rel_attn|ff)/LayerNorm/beta", "transformer.layer.{1}.{2}.layer_norm.bias"),
    Rule(_LAYER + r"/ff/(layer_[12])/kernel", "transformer.layer.{1}.ff.{2}.weight", "transpose"),
    Rule(_LAYER + r"/ff/(layer_[12])/bias", "transformer.layer.{1}.ff.{2}.bias"),
    Rule(r"model/lm_loss/bias", "lm_loss.bias"),
    Rule(r"model/lm_loss/weight", "lm_loss.weight"),  # lm_loss(tie_weight=False): already [n_token, d_model]
    Rule(r"model/sequnece_summary/summary/kernel", "sequence_summary.summary.weight", "transpose"),
    Rule(r"model/sequnece_summary/summary/bias", "sequence_summary.summary.bias"),
    Rule(_LOGIT + r"/kernel", "logits_proj.weight", "transpose"),
    Rule(_LOGIT + r"/bias", "logits_proj.bias"),
    # One source, a row per layer: every rule below matches the same name, each takes its layer's row.
    *(
        Rule(_T + r"/(r_w_bias|r_r_bias|r_s_bias|seg_embed)", f"transformer.layer.{k}.rel_attn.{{1}}", f"row({k})")
        for k in range(_MAX_LAYERS)
    ),
)

HEADS = (
    Head("LM head (lm_loss)", r"model/lm_loss/.+", "lm_loss."),
    Head("sequence summary (sequnece_summary)", r"model/sequnece_summary/.+", "sequence_summary."),
    Head("classifier (classification_*/regression_* logit)", _LOGIT + r"/.+", "logits_proj."),
)

OPTIONAL = (
    Optional_(
        r"transformer\.mask_emb",
        "mask_emb: only pretraining's two-stream query reads it (XLNetModel with target_mapping); fine-tuned "
        "checkpoints do not store it; written as zeros so the model loads complete",
        fill="zeros",
    ),
    Optional_(
        r"lm_loss\.bias",
        "no LM bias in the checkpoint (a fine-tuned model): written as zeros, xlnet's initial value",
        fill="zeros",
    ),
    Optional_(r"sequence_summary\..+", "sequence summary: newly initialised, to be fine-tuned"),
    Optional_(r"logits_proj\..+", "task head: newly initialised, to be fine-tuned"),
)

# The way back to a fine-tuned layout (no mask_emb): transformers' zeros, as the way in wrote them, are no loss.
BUFFERS = (
    Buffer(
        r"^(transformer\.)?mask_emb$",
        "mask_emb: only pretraining's two-stream query reads it, a fine-tuned xlnet checkpoint does not store it",
        lambda shape: np.zeros(shape, dtype=np.float32),
    ),
)

CLASSES = ("XLNetModel", "XLNetLMHeadModel", "XLNetForSequenceClassification")


def _dims(config: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    """(vocab, d_model, n_head, d_head, d_inner, n_layer) from xlnet's own config or transformers'."""
    vocab = int(config["n_token"] if "n_token" in config else config["vocab_size"])
    d_model, n_head = int(config["d_model"]), int(config["n_head"])
    return vocab, d_model, n_head, d_model // n_head, int(config["d_inner"]), int(config["n_layer"])


def _num_labels(config: dict[str, Any]) -> int:
    return int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)


def _base_layout(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """``XLNetModel``'s state dict, torch-free, in transformers' order."""
    v, h, n, d, i, layers = _dims(config)
    out: dict[str, tuple[int, ...]] = {"mask_emb": (1, 1, h), "word_embedding.weight": (v, h)}
    for k in range(layers):
        a, f = f"layer.{k}.rel_attn", f"layer.{k}.ff"
        out.update({f"{a}.{p}": (h, n, d) for p in "qkvor"})
        out.update({f"{a}.{b}": (n, d) for b in ("r_r_bias", "r_s_bias", "r_w_bias")})
        out[f"{a}.seg_embed"] = (2, n, d)
        out.update({f"{a}.layer_norm.weight": (h,), f"{a}.layer_norm.bias": (h,)})
        out.update({f"{f}.layer_norm.weight": (h,), f"{f}.layer_norm.bias": (h,)})
        out.update({f"{f}.layer_1.weight": (i, h), f"{f}.layer_1.bias": (i,)})
        out.update({f"{f}.layer_2.weight": (h, i), f"{f}.layer_2.bias": (h,)})
    return out


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    base = _base_layout(config)
    if class_name == "XLNetModel":
        return {name: (shape, None) for name, shape in base.items()}
    out: Layout = {f"transformer.{name}": (shape, None) for name, shape in base.items()}
    v, h = _dims(config)[:2]
    if class_name == "XLNetLMHeadModel":
        tie = "transformer.word_embedding.weight" if config.get("tie_word_embeddings", True) else None
        out["lm_loss.weight"] = ((v, h), tie)
        out["lm_loss.bias"] = ((v,), None)
    else:
        labels = _num_labels(config)
        out["sequence_summary.summary.weight"] = ((h, h), None)
        out["sequence_summary.summary.bias"] = ((h,), None)
        out["logits_proj.weight"] = ((labels, h), None)
        out["logits_proj.bias"] = ((labels,), None)
    return out


def default_target(names: Iterable[str]) -> str:
    """The transformers class that keeps every head the checkpoint has."""
    names = list(names)
    if any(re.fullmatch(_LOGIT + r"/.+", n) for n in names):
        return "XLNetForSequenceClassification"
    if any(n.startswith("model/lm_loss/") for n in names):
        return "XLNetLMHeadModel"
    return "XLNetModel"


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """An xlnet_config.json dict inferred from shapes, with what had to be assumed (the activation)."""
    vocab, d_model = shapes[f"{_T}/word_embedding/lookup_table"]
    _, n_head, d_head = shapes[f"{_T}/layer_0/rel_attn/q/kernel"]
    layers = 1 + max(int(m.group(1)) for n in shapes if (m := re.match(_LAYER + "/", n)))
    config: dict[str, Any] = {
        "n_token": vocab,
        "d_model": d_model,
        "n_head": n_head,
        "d_head": d_head,
        "d_inner": shapes[f"{_T}/layer_0/ff/layer_1/kernel"][1],
        "n_layer": layers,
        "ff_activation": "gelu",
        "untie_r": len(shapes.get(f"{_T}/r_w_bias", (0, 0, 0))) == 3,
    }
    if "model/lm_loss/weight" in shapes:  # lm_loss(tie_weight=False) trained its own softmax weights
        config["tie_word_embeddings"] = False
    logit = next(((m, s) for n, s in shapes.items() if (m := _TASK.fullmatch(n))), None)
    if logit is not None:
        config["num_labels"] = logit[1][1]
        config["finetuning_task"] = logit[0].group(2)
    notes = [
        "config inferred from tensor shapes (no xlnet_config.json beside the checkpoint); ff_activation assumed "
        "gelu (released XLNet models): pass --config xlnet_config.json if it was relu (shapes cannot tell)"
    ]
    if not config["untie_r"]:  # kept beside a config file too: it explains the mismatched biases
        notes.append(
            "r_w_bias/r_r_bias/r_s_bias are shared by all layers (untie_r=false); transformers keeps one per "
            "layer and these rules only read per-layer rows ([n_layer, n_head, d_head]), so they are mismatched"
        )
    return config, notes


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for an ``xlnet_config.json``; a transformers config only changes class."""
    if "model_type" in config:
        return dict(config, architectures=[class_name]), []
    vocab, d_model, n_head, d_head, d_inner, layers = _dims(config)
    notes = []
    if int(config.get("d_head", d_head)) != d_head:
        notes.append(
            f"d_head {config['d_head']} is not d_model/n_head = {d_head}: transformers' XLNet cannot hold "
            "these attention kernels (the plan shows them mismatched)"
        )
    act = config.get("ff_activation", "gelu")
    if act == "gelu":  # modeling.py's gelu is the tanh approximation, which transformers calls gelu_new
        act = "gelu_new"
        notes.append("ff_activation: xlnet's `gelu` is the tanh approximation -> transformers `gelu_new`")
    out: dict[str, Any] = {
        "architectures": [class_name],
        "model_type": "xlnet",
        "vocab_size": vocab,
        "d_model": d_model,
        "n_layer": layers,
        "n_head": n_head,
        "d_head": d_head,
        "d_inner": d_inner,
        "ff_activation": act,
        "attn_type": "bi",
        "layer_norm_eps": 1e-12,  # tf.contrib.layers.layer_norm's epsilon
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", True)),
        "dtype": "float32",
    }
    if "num_labels" in config:
        out.update(label_maps(config["num_labels"]))
    if config.get("finetuning_task"):  # the task head's name, for the way back
        out["finetuning_task"] = config["finetuning_task"]
    return out, notes


def tf_layout(config: dict[str, Any], heads: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """zihangdai/xlnet variable names and shapes for ``config`` (heads: mask_emb, lm, summary, logit)."""
    heads = set(heads)
    v, h, n, d, i, layers = _dims(config)
    out: dict[str, tuple[int, ...]] = {f"{_T}/word_embedding/lookup_table": (v, h)}
    if "mask_emb" in heads:
        out[f"{_T}/mask_emb/mask_emb"] = (1, 1, h)
    out.update({f"{_T}/{b}": (layers, n, d) for b in ("r_w_bias", "r_r_bias", "r_s_bias")})
    out[f"{_T}/seg_embed"] = (layers, 2, n, d)
    for k in range(layers):
        a, f = f"{_T}/layer_{k}/rel_attn", f"{_T}/layer_{k}/ff"
        out.update({f"{a}/{p}/kernel": (h, n, d) for p in "qkvor"})
        out.update({f"{a}/LayerNorm/gamma": (h,), f"{a}/LayerNorm/beta": (h,)})
        out.update({f"{f}/layer_1/kernel": (h, i), f"{f}/layer_1/bias": (i,)})
        out.update({f"{f}/layer_2/kernel": (i, h), f"{f}/layer_2/bias": (h,)})
        out.update({f"{f}/LayerNorm/gamma": (h,), f"{f}/LayerNorm/beta": (h,)})
    if "lm" in heads:
        out["model/lm_loss/bias"] = (v,)
        if not config.get("tie_word_embeddings", True):
            out["model/lm_loss/weight"] = (v, h)
    if "summary" in heads:
        out.update({"model/sequnece_summary/summary/kernel": (h, h), "model/sequnece_summary/summary/bias": (h,)})
    if "logit" in heads:
        labels = _num_labels(config)
        scope = f"model/{'regression' if labels == 1 else 'classification'}_{config.get('finetuning_task') or 'task'}"
        out.update({f"{scope}/logit/kernel": (h, labels), f"{scope}/logit/bias": (labels,)})
    return out


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """Which optional parts of the TF layout a PyTorch XLNet fills, and the size of its task head."""
    probes = {"lm": "lm_loss.", "summary": "sequence_summary.", "logit": "logits_proj."}
    heads = [key for key, probe in probes.items() if any(n.startswith(probe) for n in shapes)]
    if "logit" not in heads:  # a fine-tuned model's checkpoint has no mask_emb
        heads.append("mask_emb")
    logit = shapes.get("logits_proj.weight")
    return heads, None if logit is None or len(logit) != 2 else logit[0]


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """zihangdai/xlnet ``xlnet_config.json`` for a transformers XLNet ``config.json``."""
    vocab, d_model, n_head, d_head, d_inner, layers = _dims(config)
    act = config.get("ff_activation", "gelu")
    notes = []
    if act == "gelu_new":
        act = "gelu"
    elif act != "relu":
        notes.append(f"ff_activation {act!r}: xlnet's modeling.py computes gelu (the tanh form) or relu only")
    out = {"d_head": d_head, "d_inner": d_inner, "d_model": d_model, "ff_activation": act, "n_head": n_head}
    out.update({"n_layer": layers, "n_token": vocab, "untie_r": True})
    return out, notes


PACK = RulePack(
    name="xlnet",
    description="zihangdai/xlnet TF1 checkpoints <-> transformers XLNet* classes",
    config=ConfigHooks(
        from_source=config_from_source, pytorch=pt_config, tensorflow=tf_config, files=("xlnet_config.json",)
    ),
    pt=PyTorchSide(
        targets=class_layouts(CLASSES, _class_layout), default_target=default_target, base_prefix="transformer"
    ),
    tf=TensorFlowSide(
        default=True,  # the family's own layout before the layouts many families share
        layout=tf_layout,
        source_heads=source_heads,
        output=Output("xlnet", writers.write_tf1_checkpoint, "xlnet_model.ckpt", "xlnet_config.json"),
    ),
    matching=Matching(rules=RULES, heads=HEADS, optional=OPTIONAL, buffers=BUFFERS),
    docs=Docs(model_types=("xlnet",), layout="zihangdai/xlnet TF1 checkpoint"),
)
