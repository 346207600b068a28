"""google-research/bert TF1 checkpoints <-> transformers ``Bert*`` classes.

Names from google-research/bert ``modeling.py`` and ``run_pretraining.py`` /
``run_classifier.py`` / ``run_squad.py``.  TF ``Dense`` kernels are ``[in, out]``,
``torch.nn.Linear`` weights ``[out, in]``: kernels are transposed.  The
next-sentence and task-head ``output_weights`` are already ``[out, in]`` (TF
multiplies with ``transpose_b=True``) and are copied as they are.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.packs import (
    Buffer,
    ConfigHooks,
    Docs,
    Head,
    Incompatible,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
    WordEmbeddings,
)
from bridge.core.pad_rows import pad_token_id
from bridge.families.google_bert import hooks
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts, mapped, unprefixed

_LAYER = r"bert/encoder/layer_(\d+)"

RULES = (
    Rule(r"bert/embeddings/(word|position|token_type)_embeddings", "bert.embeddings.{1}_embeddings.weight"),
    Rule(r"(bert/embeddings|cls/predictions/transform)/LayerNorm/gamma", "{1}.LayerNorm.weight"),
    Rule(r"(bert/embeddings|cls/predictions/transform)/LayerNorm/beta", "{1}.LayerNorm.bias"),
    Rule(_LAYER + r"/(.+)/LayerNorm/gamma", "bert.encoder.layer.{1}.{2}.LayerNorm.weight"),
    Rule(_LAYER + r"/(.+)/LayerNorm/beta", "bert.encoder.layer.{1}.{2}.LayerNorm.bias"),
    Rule(_LAYER + r"/(.+)/kernel", "bert.encoder.layer.{1}.{2}.weight", "transpose"),
    Rule(_LAYER + r"/(.+)/bias", "bert.encoder.layer.{1}.{2}.bias"),
    Rule(r"(bert/pooler/dense|cls/predictions/transform/dense)/kernel", "{1}.weight", "transpose"),
    Rule(r"(bert/pooler/dense|cls/predictions/transform/dense)/bias", "{1}.bias"),
    Rule(r"cls/predictions/output_bias", "cls.predictions.bias"),
    Rule(r"cls/seq_relationship/output_weights", "cls.seq_relationship.weight"),
    Rule(r"cls/seq_relationship/output_bias", "cls.seq_relationship.bias"),
    Rule(r"cls/squad/output_weights", "qa_outputs.weight"),
    Rule(r"cls/squad/output_bias", "qa_outputs.bias"),
    Rule(r"output_weights", "classifier.weight"),
    Rule(r"output_bias", "classifier.bias"),
)

HEADS = (
    Head("pooler", r"bert/pooler/.+", "bert.pooler."),
    Head("masked-LM head (cls/predictions)", r"cls/predictions/.+", "cls.predictions."),
    Head("next-sentence head (cls/seq_relationship)", r"cls/seq_relationship/.+", "cls.seq_relationship."),
    Head("SQuAD head (cls/squad)", r"cls/squad/.+", "qa_outputs."),
    Head("classifier head (output_weights/output_bias)", r"output_(weights|bias)", "classifier."),
)

OPTIONAL = (
    Optional_(r"classifier\..+", "task head: newly initialised, to be fine-tuned"),
    Optional_(r"qa_outputs\..+", "task head: newly initialised, to be fine-tuned"),
    Optional_(r"bert\.pooler\..+", "pooler: newly initialised (only classification heads read it)"),
    Optional_(r"cls\.seq_relationship\..+", "next-sentence head: newly initialised"),
)

# Which heads each transformers class has (pooler included or not), and its task-head shape.
CLASSES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "BertModel": (True, ()),
    "BertForPreTraining": (True, ("mlm", "nsp")),
    "BertForMaskedLM": (False, ("mlm",)),
    "BertLMHeadModel": (False, ("mlm",)),
    "BertForNextSentencePrediction": (True, ("nsp",)),
    "BertForSequenceClassification": (True, ("classifier",)),
    "BertForMultipleChoice": (True, ("choice",)),
    "BertForTokenClassification": (False, ("classifier",)),
    "BertForQuestionAnswering": (False, ("qa",)),
}


def num_labels(config: dict[str, Any]) -> int:
    """A task head's size: ``num_labels``, else the size of transformers' ``id2label`` (config.json
    stores no ``num_labels``), else transformers' default 2."""
    return int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)


def tf_layout(config: dict[str, Any], heads: Iterable[str] = ("pooler", "mlm", "nsp")) -> dict[str, tuple[int, ...]]:
    """google-research/bert variable names and shapes for ``config``.

    ``heads`` picks among ``pooler``, ``mlm`` (cls/predictions), ``nsp``
    (cls/seq_relationship), ``classifier`` (root output_weights, run_classifier.py)
    and ``qa`` (cls/squad, run_squad.py).
    """
    heads = set(heads)
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    def ln(prefix: str) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}/LayerNorm/gamma": (h,), f"{prefix}/LayerNorm/beta": (h,)}

    out: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (v, h),
        "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], h),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], h),
        **ln("bert/embeddings"),
    }
    for n in range(config["num_hidden_layers"]):
        layer = f"bert/encoder/layer_{n}"
        for proj in ("query", "key", "value"):
            out[f"{layer}/attention/self/{proj}/kernel"] = (h, h)
            out[f"{layer}/attention/self/{proj}/bias"] = (h,)
        out[f"{layer}/attention/output/dense/kernel"] = (h, h)
        out[f"{layer}/attention/output/dense/bias"] = (h,)
        out.update(ln(f"{layer}/attention/output"))
        out[f"{layer}/intermediate/dense/kernel"] = (h, i)
        out[f"{layer}/intermediate/dense/bias"] = (i,)
        out[f"{layer}/output/dense/kernel"] = (i, h)
        out[f"{layer}/output/dense/bias"] = (h,)
        out.update(ln(f"{layer}/output"))
    if "pooler" in heads:
        out["bert/pooler/dense/kernel"] = (h, h)
        out["bert/pooler/dense/bias"] = (h,)
    if "mlm" in heads:
        out["cls/predictions/transform/dense/kernel"] = (h, h)
        out["cls/predictions/transform/dense/bias"] = (h,)
        out.update(ln("cls/predictions/transform"))
        out["cls/predictions/output_bias"] = (v,)
    if "nsp" in heads:
        out["cls/seq_relationship/output_weights"] = (2, h)
        out["cls/seq_relationship/output_bias"] = (2,)
    if "classifier" in heads or "choice" in heads:  # google-research has one classifier layout for both
        labels = num_labels(config)
        out["output_weights"] = (labels, h)
        out["output_bias"] = (labels,)
    if "qa" in heads:
        out["cls/squad/output_weights"] = (2, h)
        out["cls/squad/output_bias"] = (2,)
    return out


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    pooler, heads = CLASSES[class_name]
    tf_heads = {"mlm": "mlm", "nsp": "nsp", "classifier": "classifier", "qa": "qa", "choice": "classifier"}
    cfg = dict(config, num_labels=1) if "choice" in heads else config
    out = mapped(tf_layout(cfg, (["pooler"] if pooler else []) + [tf_heads[h] for h in heads]), PACK.map_name)
    if "qa" in heads:  # transformers sizes qa_outputs by num_labels (run_squad.py: always 2)
        labels = num_labels(config)
        out["qa_outputs.weight"] = ((labels, config["hidden_size"]), None)
        out["qa_outputs.bias"] = ((labels,), None)
    if class_name == "BertModel":  # the base model itself: no `bert.` prefix
        out = unprefixed(out, "bert.")
    if "mlm" in heads:
        h, v = config["hidden_size"], config["vocab_size"]
        tie = "bert.embeddings.word_embeddings.weight" if config.get("tie_word_embeddings", True) else None
        out["cls.predictions.decoder.weight"] = ((v, h), tie)
        out["cls.predictions.decoder.bias"] = ((v,), "cls.predictions.bias")
    return out


def default_target(names: Iterable[str]) -> str:
    """The transformers class that keeps every head the checkpoint has (google-research or transformers names)."""
    names = {n.replace(".", "/") for n in names}
    mlm = any(n.startswith("cls/predictions/") for n in names)
    nsp = any(n.startswith("cls/seq_relationship/") for n in names)
    pooler = any(n.startswith(("bert/pooler/", "pooler/")) for n in names)
    if mlm and (nsp or pooler):  # BertForMaskedLM has no pooler: only the pre-training class keeps both
        return "BertForPreTraining"
    if mlm:
        return "BertForMaskedLM"
    if nsp:
        return "BertForNextSentencePrediction"
    if any(n.startswith(("cls/squad/", "qa_outputs/")) for n in names):
        return "BertForQuestionAnswering"
    if "output_weights" in names or "classifier/weight" in names:
        return "BertForSequenceClassification"
    return "BertModel"


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """A BertConfig dict inferred from shapes, and notes on what had to be assumed.

    google-research names give a ``bert_config.json``; a PyTorch state dict saved without its ``config.json``
    (transformers names, any prefix) gives a transformers config (:func:`config_from_pytorch`).
    """
    if "bert/embeddings/word_embeddings" not in shapes and _pytorch_prefix(shapes) is not None:
        return config_from_pytorch(shapes)
    vocab, hidden = shapes["bert/embeddings/word_embeddings"]
    layers = 1 + max(int(m.group(1)) for n in shapes if (m := re.match(r"bert/encoder/layer_(\d+)/", n)))
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": shapes["bert/encoder/layer_0/intermediate/dense/kernel"][1],
        "max_position_embeddings": shapes["bert/embeddings/position_embeddings"][0],
        "type_vocab_size": shapes.get("bert/embeddings/token_type_embeddings", (2,))[0],
        "num_attention_heads": max(1, hidden // 64),
    }
    if "output_weights" in shapes:
        config["num_labels"] = shapes["output_weights"][0]
    notes = [
        "config inferred from tensor shapes (no bert_config.json beside the checkpoint); "
        f"num_attention_heads assumed hidden_size/64 = {config['num_attention_heads']}: "
        "pass --config bert_config.json if that is wrong (shapes cannot tell)"
    ]
    return config, notes


_PT_WORDS = re.compile(r"(.*?)embeddings\.word_embeddings\.weight")


def _pytorch_prefix(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What comes before ``embeddings.`` in a PyTorch BERT's names (``""``, ``bert.``, ``module.bert.``), if any."""
    found = [m.group(1) for n in shapes if (m := _PT_WORDS.fullmatch(n)) and len(shapes[n]) == 2]
    return min(found, key=len) if found else None


def config_from_pytorch(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """A transformers ``BertConfig`` dict inferred from a PyTorch state dict's shapes, and what had to be assumed
    (what no shape tells: the head count, the activation, the layer-norm epsilon: transformers' defaults)."""
    prefix = _pytorch_prefix(shapes)
    if prefix is None:
        raise KeyError("embeddings.word_embeddings.weight")
    vocab, hidden = shapes[f"{prefix}embeddings.word_embeddings.weight"]
    rx = re.compile(re.escape(prefix) + r"encoder\.layer\.(\d+)\.")
    layers = 1 + max(int(m.group(1)) for n in shapes if (m := rx.match(n)))
    config: dict[str, Any] = {
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": shapes[f"{prefix}encoder.layer.0.intermediate.dense.weight"][0],
        "max_position_embeddings": shapes[f"{prefix}embeddings.position_embeddings.weight"][0],
        "type_vocab_size": shapes.get(f"{prefix}embeddings.token_type_embeddings.weight", (2,))[0],
        "num_attention_heads": max(1, hidden // 64),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    head = next((s for n, s in shapes.items() if n.endswith(("classifier.weight", "qa_outputs.weight"))), None)
    if head is not None and len(head) == 2:  # as transformers' config.json says it (never `num_labels`)
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(head[0])}
        config["label2id"] = {f"LABEL_{i}": i for i in range(head[0])}
    notes = [
        f"config inferred from tensor shapes (no config.json beside the checkpoint): {layers} layer(s), "
        f"hidden {hidden}, intermediate {config['intermediate_size']}, vocab {vocab}, "
        f"{config['max_position_embeddings']} positions; assumed num_attention_heads = hidden_size/64 = "
        f"{config['num_attention_heads']}, hidden_act `gelu` (exact) and layer_norm_eps 1e-12 (transformers' "
        "defaults): pass --config config.json if that is wrong (shapes cannot tell)"
    ]
    return config, notes


_BERT_CONFIG_KEYS = (
    "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
    "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
    "type_vocab_size", "vocab_size",
)  # fmt: skip


def label_maps(num_labels: int) -> dict[str, Any]:
    """transformers' ``id2label``/``label2id`` for a classifier of ``num_labels`` units (names as it makes them)."""
    return {
        "id2label": {str(i): f"LABEL_{i}" for i in range(num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(num_labels)},
    }


def google_research_config(
    config: dict[str, Any],
    class_name: str,
    *,
    keys: Iterable[str],
    fixed: dict[str, Any],
    tanh_gelu: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for a google-research ``*_config.json`` (BERT and the families built on its code).

    The ``keys`` both spell alike are kept, ``fixed`` (``model_type``, token ids) added.  ``tanh_gelu``: the
    family's ``gelu`` is modeling.py's tanh approximation, which transformers calls ``gelu_new``.  A config that is
    already transformers' (``model_type``: a PyTorch source, or one given with ``--config``) says what the model
    computes: only the class changes.
    """
    if "model_type" in config:
        return dict(config, architectures=[class_name]), []
    out: dict[str, Any] = {k: config[k] for k in keys if k in config}
    notes = []
    if tanh_gelu and out.get("hidden_act", "gelu") == "gelu":
        out["hidden_act"] = "gelu_new"
        notes.append("hidden_act: google-research `gelu` is the tanh approximation -> transformers `gelu_new`")
    if "num_labels" in config:
        out.update(label_maps(config["num_labels"]))
    out.update({"architectures": [class_name], "layer_norm_eps": 1e-12, "dtype": "float32", **fixed})
    return out, notes


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for a google-research ``bert_config.json`` (which names no pad id: [PAD]'s line
    in the vocab.txt beside it, read by :func:`pad_from_vocab`, else 0)."""
    pad = config.get("pad_token_id", 0)
    return google_research_config(
        config, class_name, keys=_BERT_CONFIG_KEYS, fixed={"model_type": "bert", "pad_token_id": pad}
    )


def pad_from_vocab(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The pad id a google-research checkpoint's vocab.txt gives ([PAD]'s line), where it is not the usual 0."""
    found = pad_token_id(folder, None)
    if found is None or found[1] != "vocab.txt" or found[0] == 0:
        return {}, []
    return {"pad_token_id": found[0]}, [f"pad_token_id {found[0]}: the line of [PAD] in vocab.txt"]


def google_research_tf_config(
    config: dict[str, Any], keys: Iterable[str], *, tanh_gelu: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """A google-research ``*_config.json`` for a transformers ``config.json`` (the ``keys`` both spell alike; it
    names no class).  ``tanh_gelu``: the family's ``gelu`` is modeling.py's tanh approximation (transformers
    ``gelu_new``); else it is the exact one.  A config that is google-research's already (no ``model_type``) keeps
    its ``gelu``."""
    out = {k: config[k] for k in keys if k in config}
    notes = []
    act = out.get("hidden_act", "gelu")
    if act == "gelu_new" and tanh_gelu:
        out["hidden_act"] = "gelu"
    elif act == "gelu" and "model_type" in config and tanh_gelu:
        notes.append(
            "hidden_act: transformers `gelu` is exact (erf); google-research code only has the tanh approximation, "
            "so TF outputs differ slightly (about 1e-3) from the PyTorch model"
        )
    elif act == "gelu_new" and not tanh_gelu:
        notes.append("hidden_act: transformers `gelu_new` is the tanh approximation; this family's `gelu` is exact")
    if config.get("layer_norm_eps", 1e-12) != 1e-12:
        notes.append(f"layer_norm_eps {config['layer_norm_eps']} differs from google-research's fixed 1e-12")
    return out, notes


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """google-research ``bert_config.json`` for a transformers BERT ``config.json``."""
    return google_research_tf_config(config, _BERT_CONFIG_KEYS)


INCOMPATIBLE = (
    Incompatible(
        r"(^|[./])attention[./]self[./]distance_embedding([./]|$)",
        "relative-position attention weights (transformers 4.x position_embedding_type="
        "relative_key/relative_key_query): transformers 5's Bert classes have no such option, so the target "
        "cannot compute the attention these were trained for and the converted model would compute something else",
    ),
)


def _positions(shape: tuple[int, ...]) -> np.ndarray:
    """``arange(n)`` laid out as the buffer is (``[1, n]``): what BertEmbeddings rebuilds at every load."""
    return np.arange(shape[-1] if shape else 0, dtype=np.int64).reshape(shape)


BUFFERS = (
    Buffer(
        r"(^|\.)embeddings\.position_ids$",
        "transformers < 4.31 saved BertEmbeddings' position_ids (arange(max_position_embeddings)); later versions "
        "rebuild it and do not load it",
        _positions,
    ),
)


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """Which optional parts of the TF layout a PyTorch BERT fills (by its class's names), and the size of its
    classifier: the weights say how many labels it has, whatever the config's ``id2label`` says."""
    heads = []
    for key, probe in (
        ("pooler", "pooler."),
        ("mlm", "cls.predictions."),
        ("nsp", "cls.seq_relationship."),
        ("classifier", "classifier."),
        ("qa", "qa_outputs."),
    ):
        if any(probe in n for n in shapes):
            heads.append(key)
    classifier = next((s for n, s in shapes.items() if n.endswith("classifier.weight") and len(s) == 2), None)
    if "classifier" in heads and any("MultipleChoice" in a for a in config.get("architectures") or ()):
        heads[heads.index("classifier")] = "choice"  # one score per choice: a classifier of one unit
    return heads, None if classifier is None else classifier[0]


# The forward comparison verify runs: transformers against a TF2 reference of google-research's math.
FORWARD_CHECK = hooks.forward_check


def mlm_tied(names: Collection[str], config: dict[str, Any]) -> bool:
    """google-research's MLM head multiplies by the embedding table (no decoder kernel); transformers ties
    ``cls.predictions.decoder.weight`` to it unless ``tie_word_embeddings`` is false."""
    if "cls/predictions/output_bias" in names:
        return True
    mlm = any(n.startswith("cls.predictions.") for n in names)
    return mlm and bool(config.get("tie_word_embeddings", True))


# google-research configs name no pad_token_id; [PAD] is id 0 in their vocab.txt
WORD_EMBEDDINGS = WordEmbeddings(
    (r"bert/embeddings/word_embeddings", r"(bert\.)?embeddings\.word_embeddings\.weight"), 0, mlm_tied
)

PACK = RulePack(
    name="google-bert",
    description="google-research/bert TF1 checkpoints <-> transformers Bert* classes",
    config=ConfigHooks(
        from_source=config_from_source,
        from_files=pad_from_vocab,
        pytorch=pt_config,
        tensorflow=tf_config,
        files=("bert_config.json",),
    ),
    pt=PyTorchSide(targets=class_layouts(CLASSES, _class_layout), default_target=default_target, base_prefix="bert"),
    tf=TensorFlowSide(
        layout=tf_layout,
        source_heads=source_heads,
        default=True,
        output=Output("google-bert", writers.write_tf1_checkpoint, "bert_model.ckpt", "bert_config.json"),
    ),
    matching=Matching(rules=RULES, heads=HEADS, optional=OPTIONAL, incompatible=INCOMPATIBLE, buffers=BUFFERS),
    forward_check=FORWARD_CHECK,
    word_embeddings=WORD_EMBEDDINGS,
    docs=Docs(model_types=("bert",), layout="google-research TF1 checkpoint"),
)
