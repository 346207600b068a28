"""google-research/albert TF1 checkpoints <-> transformers ``Albert*`` classes.

Names from google-research/albert ``modeling.py`` (``bert/embeddings`` at ``embedding_size``, the projection
``bert/encoder/embedding_hidden_mapping_in``, one shared block per ``transformer/group_G/inner_group_I`` with
``attention_1``, ``LayerNorm``, ``ffn_1``, ``LayerNorm_1``), ``run_pretraining.py`` (``cls/predictions``, the
sentence-order head ``cls/seq_relationship``) and ``classifier_utils.py`` (root ``output_weights``).  A model
fine-tuned on the TF-Hub module keeps the module's variables under ``module/`` and its head at the root.

Layers share weights, so the checkpoint holds one block per inner group whatever ``num_hidden_layers`` is, as
transformers' ``albert_layer_groups.G.albert_layers.I`` does.  TF ``Dense`` kernels ``[in, out]`` are
transposed; ``output_weights`` is already ``[out, in]`` (``matmul(..., transpose_b=True)``).

The way back writes the plain layout (``bert/...``, the heads the PyTorch model has) and ``albert_config.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bridge.core.packs import (
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
from bridge.families.google_bert.pack import google_research_config, google_research_tf_config
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts, mapped, unprefixed

_HUB = r"(?:module/)?"  # a TF-Hub module used inside a fine-tuning graph: its variables under `module/`
_BLOCK = _HUB + r"bert/encoder/transformer/group_(\d+)/inner_group_(\d+)"
_LAYER = "albert.encoder.albert_layer_groups.{1}.albert_layers.{2}"


def _dense(source: str, target: str) -> tuple[Rule, Rule]:
    return Rule(source + "/kernel", target + ".weight", "transpose"), Rule(source + "/bias", target + ".bias")


def _norm(source: str, target: str) -> tuple[Rule, Rule]:
    return Rule(source + "/gamma", target + ".weight"), Rule(source + "/beta", target + ".bias")


RULES = (
    Rule(_HUB + r"bert/embeddings/(word|position|token_type)_embeddings", "albert.embeddings.{1}_embeddings.weight"),
    *_norm(_HUB + r"bert/embeddings/LayerNorm", "albert.embeddings.LayerNorm"),
    *_dense(_HUB + r"bert/encoder/embedding_hidden_mapping_in", "albert.encoder.embedding_hidden_mapping_in"),
    Rule(_BLOCK + r"/attention_1/self/(query|key|value)/kernel", _LAYER + ".attention.{3}.weight", "transpose"),
    Rule(_BLOCK + r"/attention_1/self/(query|key|value)/bias", _LAYER + ".attention.{3}.bias"),
    *_dense(_BLOCK + r"/attention_1/output/dense", _LAYER + ".attention.dense"),
    *_norm(_BLOCK + r"/LayerNorm", _LAYER + ".attention.LayerNorm"),
    *_dense(_BLOCK + r"/ffn_1/intermediate/dense", _LAYER + ".ffn"),
    *_dense(_BLOCK + r"/ffn_1/intermediate/output/dense", _LAYER + ".ffn_output"),
    *_norm(_BLOCK + r"/LayerNorm_1", _LAYER + ".full_layer_layer_norm"),
    *_dense(_HUB + r"bert/pooler/dense", "albert.pooler"),
    *_dense(_HUB + r"cls/predictions/transform/dense", "predictions.dense"),
    *_norm(_HUB + r"cls/predictions/transform/LayerNorm", "predictions.LayerNorm"),
    Rule(_HUB + r"cls/predictions/output_bias", "predictions.bias"),
    Rule(_HUB + r"cls/seq_relationship/output_weights", "sop_classifier.classifier.weight"),
    Rule(_HUB + r"cls/seq_relationship/output_bias", "sop_classifier.classifier.bias"),
    Rule(r"output_weights", "classifier.weight"),
    Rule(r"output_bias", "classifier.bias"),
)

HEADS = (
    Head("pooler", _HUB + r"bert/pooler/.+", "albert.pooler."),
    Head("masked-LM head (cls/predictions)", _HUB + r"cls/predictions/.+", "predictions."),
    Head("sentence-order head (cls/seq_relationship)", _HUB + r"cls/seq_relationship/.+", "sop_classifier."),
    Head("classifier head (output_weights/output_bias)", r"output_(weights|bias)", "classifier."),
)

OPTIONAL = (
    Optional_(r"classifier\..+", "task head: newly initialised, to be fine-tuned"),
    Optional_(r"albert\.pooler\..+", "pooler: newly initialised (only classification heads read it)"),
    Optional_(r"sop_classifier\..+", "sentence-order head: newly initialised"),
)

# Which heads each transformers class has: (pooler, heads).
CLASSES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "AlbertModel": (True, ()),
    "AlbertForPreTraining": (True, ("mlm", "sop")),
    "AlbertForMaskedLM": (False, ("mlm",)),
    "AlbertForSequenceClassification": (True, ("classifier",)),
}


def num_labels(config: dict[str, Any]) -> int:
    """A task head's size: ``num_labels``, else the size of ``id2label``, else transformers' default 2."""
    return int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)


def tf_names(config: dict[str, Any], heads: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """google-research/albert variable names and shapes for ``config`` (heads: pooler, mlm, sop, classifier)."""
    heads = set(heads)
    e, h, i, v = config["embedding_size"], config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    out: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (v, e),
        "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], e),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], e),
        "bert/embeddings/LayerNorm/gamma": (e,),
        "bert/embeddings/LayerNorm/beta": (e,),
        "bert/encoder/embedding_hidden_mapping_in/kernel": (e, h),
        "bert/encoder/embedding_hidden_mapping_in/bias": (h,),
    }
    for g in range(config.get("num_hidden_groups", 1)):
        for n in range(config.get("inner_group_num", 1)):
            block = f"bert/encoder/transformer/group_{g}/inner_group_{n}"
            for proj in ("attention_1/self/query", "attention_1/self/key", "attention_1/self/value"):
                out.update({f"{block}/{proj}/kernel": (h, h), f"{block}/{proj}/bias": (h,)})
            out.update(
                {f"{block}/attention_1/output/dense/kernel": (h, h), f"{block}/attention_1/output/dense/bias": (h,)}
            )
            out.update({f"{block}/LayerNorm/gamma": (h,), f"{block}/LayerNorm/beta": (h,)})
            out.update(
                {f"{block}/ffn_1/intermediate/dense/kernel": (h, i), f"{block}/ffn_1/intermediate/dense/bias": (i,)}
            )
            out[f"{block}/ffn_1/intermediate/output/dense/kernel"] = (i, h)
            out[f"{block}/ffn_1/intermediate/output/dense/bias"] = (h,)
            out.update({f"{block}/LayerNorm_1/gamma": (h,), f"{block}/LayerNorm_1/beta": (h,)})
    if "pooler" in heads:
        out.update({"bert/pooler/dense/kernel": (h, h), "bert/pooler/dense/bias": (h,)})
    if "mlm" in heads:
        out.update({"cls/predictions/transform/dense/kernel": (h, e), "cls/predictions/transform/dense/bias": (e,)})
        out.update(
            {"cls/predictions/transform/LayerNorm/gamma": (e,), "cls/predictions/transform/LayerNorm/beta": (e,)}
        )
        out["cls/predictions/output_bias"] = (v,)
    if "sop" in heads:  # two classes in run_pretraining.py; transformers sizes sop_classifier by num_labels
        labels = num_labels(config)
        out.update({"cls/seq_relationship/output_weights": (labels, h), "cls/seq_relationship/output_bias": (labels,)})
    if "classifier" in heads:
        out.update({"output_weights": (num_labels(config), h), "output_bias": (num_labels(config),)})
    return out


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    pooler, heads = CLASSES[class_name]
    out = mapped(tf_names(config, (["pooler"] if pooler else []) + list(heads)), PACK.map_name)
    if class_name == "AlbertModel":  # the base model itself: no `albert.` prefix
        out = unprefixed(out, "albert.")
    if "mlm" in heads:  # the decoder is the word embeddings (transformers ties it), its bias the head's
        tie = "albert.embeddings.word_embeddings.weight" if config.get("tie_word_embeddings", True) else None
        out["predictions.decoder.weight"] = ((config["vocab_size"], config["embedding_size"]), tie)
        out["predictions.decoder.bias"] = ((config["vocab_size"],), "predictions.bias")
    return out


def default_target(names: Iterable[str]) -> str:
    """The transformers class that keeps every head the checkpoint has."""
    names = {n.removeprefix("module/") for n in names}
    mlm = any(n.startswith("cls/predictions/") for n in names)
    sop = any(n.startswith("cls/seq_relationship/") for n in names)
    if mlm and sop:
        return "AlbertForPreTraining"
    if mlm:
        return "AlbertForMaskedLM"
    if "output_weights" in names:
        return "AlbertForSequenceClassification"
    return "AlbertModel"


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """An AlbertConfig dict inferred from shapes, and notes on what had to be assumed."""
    shapes = {n.removeprefix("module/"): s for n, s in shapes.items()}
    vocab, embedding = shapes["bert/embeddings/word_embeddings"]
    blocks = [
        tuple(map(int, m.groups()))
        for n in shapes
        if (m := re.match(r"bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/", n))
    ]
    block = "bert/encoder/transformer/group_0/inner_group_0"
    hidden = shapes["bert/encoder/embedding_hidden_mapping_in/kernel"][1]
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "embedding_size": embedding,
        "hidden_size": hidden,
        "num_hidden_groups": 1 + max(g for g, _ in blocks),
        "inner_group_num": 1 + max(i for _, i in blocks),
        "intermediate_size": shapes[f"{block}/ffn_1/intermediate/dense/kernel"][1],
        "max_position_embeddings": shapes["bert/embeddings/position_embeddings"][0],
        "type_vocab_size": shapes.get("bert/embeddings/token_type_embeddings", (2,))[0],
        "num_attention_heads": max(1, hidden // 64),
        "num_hidden_layers": 12,
    }
    if "output_weights" in shapes:
        config["num_labels"] = shapes["output_weights"][0]
    notes = [
        "config inferred from tensor shapes (no albert_config.json beside the checkpoint); "
        f"num_attention_heads assumed hidden_size/64 = {config['num_attention_heads']} and num_hidden_layers "
        "assumed 12 (layers share weights, so the checkpoint does not say how many there are): "
        "pass --config albert_config.json if that is wrong"
    ]
    return config, notes


_ALBERT_CONFIG_KEYS = (
    "attention_probs_dropout_prob", "embedding_size", "hidden_act", "hidden_dropout_prob", "hidden_size",
    "initializer_range", "inner_group_num", "intermediate_size", "max_position_embeddings", "num_attention_heads",
    "num_hidden_groups", "num_hidden_layers", "type_vocab_size", "vocab_size",
)  # fmt: skip


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for a google-research ``albert_config.json`` (or a transformers one as it is)."""
    fixed = {"model_type": "albert", "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    return google_research_config(config, class_name, keys=_ALBERT_CONFIG_KEYS, fixed=fixed)


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """google-research ``albert_config.json`` for a transformers ALBERT ``config.json``, with the keys of
    google-research's ALBERT variants that transformers has no place for at the values every release has."""
    out, notes = google_research_tf_config(config, _ALBERT_CONFIG_KEYS)
    return {**out, "down_scale_factor": 1, "gap_size": 0, "net_structure_type": 0, "num_memory_blocks": 0}, notes


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """Which optional parts of the TF layout a PyTorch ALBERT fills, and the size of its classifier."""
    probes = {"pooler": "pooler.", "mlm": "predictions.", "sop": "sop_classifier.", "classifier": "classifier."}
    heads = [key for key, probe in probes.items() if any(n.startswith((probe, "albert." + probe)) for n in shapes)]
    classifier = next((s for n, s in shapes.items() if n.endswith("classifier.weight") and len(s) == 2), None)
    if "sop" in heads:  # the sentence-order head's size is the config's num_labels too (2 in run_pretraining.py)
        sop = shapes.get("sop_classifier.classifier.weight")
        return heads, None if sop is None else sop[0]
    return heads, None if classifier is None else classifier[0]


PACK = RulePack(
    name="albert",
    description="google-research/albert TF1 checkpoints (plain and TF-Hub module layouts) <-> transformers Albert*",
    config=ConfigHooks(
        from_source=config_from_source, pytorch=pt_config, tensorflow=tf_config, files=("albert_config.json",)
    ),
    pt=PyTorchSide(targets=class_layouts(CLASSES, _class_layout), default_target=default_target, base_prefix="albert"),
    tf=TensorFlowSide(
        default=True,  # the family's own layout before the layouts many families share
        layout=tf_names,
        source_heads=source_heads,
        output=Output("albert", writers.write_tf1_checkpoint, "model.ckpt", "albert_config.json"),
    ),
    matching=Matching(rules=RULES, heads=HEADS, optional=OPTIONAL),
    docs=Docs(model_types=("albert",), layout="google-research/albert TF1 checkpoint"),
)
