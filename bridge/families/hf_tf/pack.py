"""transformers' TensorFlow layout (``tf_model.h5``) <-> transformers PyTorch ``Bert*`` classes.

``TFBertModel.save_pretrained`` writes a Keras 2 HDF5 weights file: one group per
top-level layer (``bert``, ``mlm___cls``, ``nsp___cls``, ``classifier``,
``qa_outputs``), each dataset named after its TF variable, i.e. the model scope
and the layer path with a ``:0`` suffix::

    bert/tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0
    mlm___cls/tf_bert_for_pre_training/mlm___cls/predictions/bias:0
    nsp___cls/tf_bert_for_pre_training/nsp___cls/seq_relationship/kernel:0

(names verified on files written by transformers 4.57.6, ``tests/fixtures/``).
Every ``Dense`` kernel is ``[in, out]`` and is transposed, the next-sentence one
included (unlike google-research's ``output_weights``).  The masked-LM head holds
the embeddings layer (its decoder is the word-embedding matrix), so Keras saves
the embeddings a second time under ``mlm___cls/<scope>/bert/embeddings/``: those
copies are the same variables and are stored once on the PyTorch side.

The PyTorch class layouts are the google-research pack's (the same transformers
classes), computed without torch.  The other way, :func:`tf_layout` enumerates
the file transformers' ``TF<class>.save_pretrained`` writes, in Keras' order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bridge.core.packs import (
    ConfigHooks,
    Copy,
    Docs,
    Head,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
    WordEmbeddings,
)
from bridge.families.google_bert import pack as _bert
from bridge.rules import writers

# Optional top-level group (the h5 layer name), then the model scope (``tf_bert_model``,
# ``tf_bert_for_pre_training``, ... with Keras' ``_1`` suffixes).
_SCOPE = r"(?:{group}/)?tf_bert[^/]*/"
_BERT = _SCOPE.format(group="bert") + "bert/"
_LAYER = _BERT + r"encoder/layer_\._(\d+)/"


def _head(group: str) -> str:
    return _SCOPE.format(group=group) + group + "/"


RULES = (
    Rule(_BERT + r"embeddings/word_embeddings/weight:0", "bert.embeddings.word_embeddings.weight"),
    Rule(_BERT + r"embeddings/(position|token_type)_embeddings/embeddings:0", "bert.embeddings.{1}_embeddings.weight"),
    Rule(_BERT + r"embeddings/LayerNorm/gamma:0", "bert.embeddings.LayerNorm.weight"),
    Rule(_BERT + r"embeddings/LayerNorm/beta:0", "bert.embeddings.LayerNorm.bias"),
    Rule(_LAYER + r"(.+)/LayerNorm/gamma:0", "bert.encoder.layer.{1}.{2}.LayerNorm.weight"),
    Rule(_LAYER + r"(.+)/LayerNorm/beta:0", "bert.encoder.layer.{1}.{2}.LayerNorm.bias"),
    Rule(_LAYER + r"(.+)/kernel:0", "bert.encoder.layer.{1}.{2}.weight", "transpose"),
    Rule(_LAYER + r"(.+)/bias:0", "bert.encoder.layer.{1}.{2}.bias"),
    Rule(_BERT + r"pooler/dense/kernel:0", "bert.pooler.dense.weight", "transpose"),
    Rule(_BERT + r"pooler/dense/bias:0", "bert.pooler.dense.bias"),
    Rule(
        _head("mlm___cls") + r"predictions/transform/dense/kernel:0",
        "cls.predictions.transform.dense.weight",
        "transpose",
    ),
    Rule(_head("mlm___cls") + r"predictions/transform/dense/bias:0", "cls.predictions.transform.dense.bias"),
    Rule(_head("mlm___cls") + r"predictions/transform/LayerNorm/gamma:0", "cls.predictions.transform.LayerNorm.weight"),
    Rule(_head("mlm___cls") + r"predictions/transform/LayerNorm/beta:0", "cls.predictions.transform.LayerNorm.bias"),
    Rule(_head("mlm___cls") + r"predictions/bias:0", "cls.predictions.bias"),
    Rule(_head("nsp___cls") + r"seq_relationship/kernel:0", "cls.seq_relationship.weight", "transpose"),
    Rule(_head("nsp___cls") + r"seq_relationship/bias:0", "cls.seq_relationship.bias"),
    Rule(_head("classifier") + r"kernel:0", "classifier.weight", "transpose"),
    Rule(_head("classifier") + r"bias:0", "classifier.bias"),
    Rule(_head("qa_outputs") + r"kernel:0", "qa_outputs.weight", "transpose"),
    Rule(_head("qa_outputs") + r"bias:0", "qa_outputs.bias"),
)

HEADS = (
    Head("pooler", _BERT + r"pooler/.+", "bert.pooler."),
    Head("masked-LM head (mlm___cls)", _head("mlm___cls") + r"predictions/.+", "cls.predictions."),
    Head("next-sentence head (nsp___cls)", _head("nsp___cls") + r".+", "cls.seq_relationship."),
    Head("classifier head", _head("classifier") + r".+", "classifier."),
    Head("question-answering head (qa_outputs)", _head("qa_outputs") + r".+", "qa_outputs."),
)

COPIES = (
    Copy(
        r"(?:mlm___cls/)?(tf_bert[^/]*/bert/embeddings/.+)",
        "the masked-LM head's copy of the embeddings layer (its decoder is the word-embedding matrix): "
        "the same variables as bert/embeddings, stored once",
        owner=r"bert/\1",
    ),
)

OPTIONAL: tuple[Optional_, ...] = _bert.OPTIONAL


def default_target(names: Iterable[str]) -> str:
    """The transformers class the ``tf_model.h5`` was saved from, named by its model scope
    (``tf_bert_for_token_classification``: the heads alone cannot tell it from sequence classification,
    nor ``TFBertLMHeadModel`` from ``TFBertForMaskedLM``); else the class that keeps every head it has."""
    names = list(names)
    scopes = {_snake("TF" + name): name for name in _bert.CLASSES}
    for name in names:
        m = re.match(r"(?:[^/]+/)?(tf_bert[^/]*?)(?:_\d+)?/", name)  # Keras adds _1, _2 to a repeated scope
        if m and m.group(1) in scopes:
            return scopes[m.group(1)]
    groups = {n.split("/", 1)[0] for n in names}
    mlm, nsp = "mlm___cls" in groups, "nsp___cls" in groups
    if mlm and nsp:
        return "BertForPreTraining"
    if mlm:
        return "BertForMaskedLM"
    if nsp:
        return "BertForNextSentencePrediction"
    if "qa_outputs" in groups:
        return "BertForQuestionAnswering"
    if "classifier" in groups:
        return "BertForSequenceClassification"
    return "BertModel"


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """A transformers config inferred from shapes when no ``config.json`` is beside the source: a PyTorch state
    dict's names as they are, a ``tf_model.h5``'s through the rules (the PyTorch names and shapes they map to)."""
    mapped = dict(shapes)
    for name, shape in shapes.items():
        hit = PACK.map_name(name)
        if hit is not None:
            mapped.setdefault(hit[0], hit[1].shape(shape) or shape)
    return _bert.config_from_pytorch(mapped)


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """The ``config.json`` beside ``tf_model.h5`` is already a transformers config: only the class changes."""
    out = dict(config, architectures=[class_name])
    return out, []


def tf_class(heads: Iterable[str], config: dict[str, Any] | None = None) -> str:
    """transformers' TF class for the parts a PyTorch source has: ``TF`` + the Bert class with those heads.

    Where two classes have the same parts (``BertForMaskedLM``, ``BertLMHeadModel``) the config's
    ``architectures`` (else ``is_decoder``) says which one the weights are."""
    heads, config = set(heads), config or {}
    pooler, tasks = "pooler" in heads, heads - {"pooler"}
    fits = [name for name, (_, has) in _bert.CLASSES.items() if set(has) == tasks]
    if not fits:
        return "TFBertModel"
    fits = [name for name in fits if _bert.CLASSES[name][0] == pooler] or fits
    named = [name for name in fits if name in (config.get("architectures") or ())]
    if named:
        return "TF" + named[0]
    if config.get("is_decoder") and "BertLMHeadModel" in fits:
        return "TFBertLMHeadModel"
    return "TF" + fits[0]


def _snake(class_name: str) -> str:
    """Keras' default layer name for a class (``to_snake_case``): TFBertForPreTraining -> tf_bert_for_pre_training."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def tf_layout(config: dict[str, Any], heads: Iterable[str] = ("pooler",)) -> dict[str, tuple[int, ...]]:
    """The datasets of the ``tf_model.h5`` that ``tf_class(heads, config)`` saves, in Keras' order.

    Keys are h5 paths ``<layer group>/<variable name>``; groups come in ``model.layers``
    order (TFBertForPreTraining: ``bert``, ``nsp___cls``, ``mlm___cls``) and the weights of
    each group in the layer's own order, as ``save_weights`` lists them in ``weight_names``.
    The masked-LM group ends with its copy of the embeddings (see :data:`COPIES`).
    Weightless layers (a classifier's dropout) are left out: loaders skip them.
    """
    cls = tf_class(heads, config)
    pooler, tasks = _bert.CLASSES[cls.removeprefix("TF")]
    scope = _snake(cls)
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    labels = _bert.num_labels(config)
    out: dict[str, tuple[int, ...]] = {}

    def dense(prefix: str, n_in: int, n_out: int) -> None:
        out[f"{prefix}/kernel:0"] = (n_in, n_out)
        out[f"{prefix}/bias:0"] = (n_out,)

    def layer_norm(prefix: str) -> None:
        out[f"{prefix}/LayerNorm/gamma:0"] = (h,)
        out[f"{prefix}/LayerNorm/beta:0"] = (h,)

    def embeddings(prefix: str) -> None:
        out[f"{prefix}/embeddings/word_embeddings/weight:0"] = (v, h)
        out[f"{prefix}/embeddings/token_type_embeddings/embeddings:0"] = (config["type_vocab_size"], h)
        out[f"{prefix}/embeddings/position_embeddings/embeddings:0"] = (config["max_position_embeddings"], h)
        layer_norm(f"{prefix}/embeddings")

    bert = f"bert/{scope}/bert"
    embeddings(bert)
    for n in range(config["num_hidden_layers"]):
        layer = f"{bert}/encoder/layer_._{n}"
        for proj in ("query", "key", "value"):
            dense(f"{layer}/attention/self/{proj}", h, h)
        dense(f"{layer}/attention/output/dense", h, h)
        layer_norm(f"{layer}/attention/output")
        dense(f"{layer}/intermediate/dense", h, i)
        dense(f"{layer}/output/dense", i, h)
        layer_norm(f"{layer}/output")
    if pooler:
        dense(f"{bert}/pooler/dense", h, h)
    if "nsp" in tasks:
        dense(f"nsp___cls/{scope}/nsp___cls/seq_relationship", h, 2)
    if "mlm" in tasks:
        mlm = f"mlm___cls/{scope}"
        out[f"{mlm}/mlm___cls/predictions/bias:0"] = (v,)  # built before the transform: first in weight_names
        dense(f"{mlm}/mlm___cls/predictions/transform/dense", h, h)
        layer_norm(f"{mlm}/mlm___cls/predictions/transform")
        embeddings(f"{mlm}/bert")
    if "classifier" in tasks or "choice" in tasks:  # TFBertForMultipleChoice: the same Dense, one unit
        dense(f"classifier/{scope}/classifier", h, 1 if "choice" in tasks else labels)
    if "qa" in tasks:
        dense(f"qa_outputs/{scope}/qa_outputs", h, labels)
    return out


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """The ``config.json`` transformers 4.x writes beside ``tf_model.h5``.

    Its TF ``save_pretrained`` names the class without the ``TF`` prefix and, having no
    torch dtype, writes no ``dtype``.  Without a TF class (a reference checkpoint as the
    target) the source's ``architectures`` stay.
    """
    out = {k: v for k, v in config.items() if k not in ("dtype", "torch_dtype")}
    if class_name.startswith("TF"):
        out["architectures"] = [class_name.removeprefix("TF")]
    return out, []


PACK = RulePack(
    name="hf-tf",
    description="transformers TF (tf_model.h5, TFBert*) <-> transformers PyTorch Bert* classes",
    config=ConfigHooks(from_source=config_from_source, pytorch=pt_config, tensorflow=tf_config),
    pt=PyTorchSide(targets=_bert.PACK.pt.targets, default_target=default_target, base_prefix="bert"),
    tf=TensorFlowSide(
        layout=tf_layout,
        class_name=tf_class,
        source_heads=_bert.source_heads,
        output=Output("hf-tf", writers.write_keras2_h5, "tf_model.h5", "config.json"),
    ),
    matching=Matching(rules=RULES, heads=HEADS, optional=OPTIONAL, copies=COPIES, buffers=_bert.BUFFERS),
    forward_check=_bert.FORWARD_CHECK,
    # transformers' TF MLM head (mlm___cls) reuses the embedding layer unless tie_word_embeddings is false
    word_embeddings=WordEmbeddings(
        (_BERT + r"embeddings/word_embeddings/weight:0", *_bert.WORD_EMBEDDINGS.names),
        0,
        lambda names, config: (
            _bert.mlm_tied(names, config)
            or (any("/mlm___cls/" in n for n in names) and bool(config.get("tie_word_embeddings", True)))
        ),
    ),
    docs=Docs(model_types=("bert",), layout="tf_model.h5"),
)
