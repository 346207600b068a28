"""google-research/electra TF1 checkpoints <-> transformers ``Electra*`` classes.

Names from google-research/electra ``model/modeling.py`` and ``run_pretraining.py``.  A pretraining checkpoint
holds two networks: the discriminator (``electra/embeddings_project``, ``electra/encoder/layer_N``, the head
``discriminator_predictions/{dense, dense_1}``) and the generator (``generator/embeddings_project``,
``generator/encoder/layer_N``, ``generator_predictions/{dense, LayerNorm, output_bias}``), which share the
embeddings ``electra/embeddings`` (a generator with untied embeddings has its own ``generator/embeddings``).
transformers keeps one network per model: ``ElectraForPreTraining`` and ``ElectraModel`` take the discriminator,
``ElectraForMaskedLM`` the generator, so the rules depend on the target (``bind``) and the other network is an
expected leftover.  The generator's sizes come from its own tensors (``config["generator"]``); its heads are
``hidden_size // 64`` at least 1, as ``get_generator_config`` sets them.

TF ``Dense`` kernels ``[in, out]`` are transposed.  electra's ``gelu`` is the exact (erf) one: ``gelu``.

The way back writes the network the PyTorch model is: a discriminator (``ElectraForPreTraining``,
``ElectraModel``) under ``electra/``, a generator (``ElectraForMaskedLM``) under ``generator/`` with its embeddings
under ``electra/embeddings``, where google-research's pretraining keeps the embeddings both share.  Both at once:
a folder holding ``discriminator/`` and ``generator/`` (each network's ``save_pretrained`` output) is one source
(:data:`COMPANION`: the generator's names under ``generator/``), written as one pretraining checkpoint; the
generator's embeddings must equal the discriminator's, which google-research stores once.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any

from bridge.core.errors import UsageError
from bridge.core.model import Checkpoint
from bridge.core.packs import (
    Companion,
    ConfigHooks,
    Copy,
    Docs,
    Head,
    Matching,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
)
from bridge.core.plan import TargetSpec
from bridge.families.google_bert.pack import google_research_config
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts, mapped, unprefixed


def _network(scope: str, embeddings: str) -> tuple[Rule, ...]:
    """One network's encoder, read from ``scope``, with the embeddings stored under ``embeddings``."""
    return (
        Rule(
            embeddings + r"/embeddings/(word|position|token_type)_embeddings",
            "electra.embeddings.{1}_embeddings.weight",
        ),
        Rule(embeddings + r"/embeddings/LayerNorm/gamma", "electra.embeddings.LayerNorm.weight"),
        Rule(embeddings + r"/embeddings/LayerNorm/beta", "electra.embeddings.LayerNorm.bias"),
        Rule(scope + r"/embeddings_project/kernel", "electra.embeddings_project.weight", "transpose"),
        Rule(scope + r"/embeddings_project/bias", "electra.embeddings_project.bias"),
        Rule(scope + r"/encoder/layer_(\d+)/(.+)/LayerNorm/gamma", "electra.encoder.layer.{1}.{2}.LayerNorm.weight"),
        Rule(scope + r"/encoder/layer_(\d+)/(.+)/LayerNorm/beta", "electra.encoder.layer.{1}.{2}.LayerNorm.bias"),
        Rule(scope + r"/encoder/layer_(\d+)/(.+)/kernel", "electra.encoder.layer.{1}.{2}.weight", "transpose"),
        Rule(scope + r"/encoder/layer_(\d+)/(.+)/bias", "electra.encoder.layer.{1}.{2}.bias"),
    )


DISCRIMINATOR_HEAD = (
    Rule(r"discriminator_predictions/dense/kernel", "discriminator_predictions.dense.weight", "transpose"),
    Rule(r"discriminator_predictions/dense/bias", "discriminator_predictions.dense.bias"),
    Rule(r"discriminator_predictions/dense_1/kernel", "discriminator_predictions.dense_prediction.weight", "transpose"),
    Rule(r"discriminator_predictions/dense_1/bias", "discriminator_predictions.dense_prediction.bias"),
)
GENERATOR_HEAD = (
    Rule(r"generator_predictions/dense/kernel", "generator_predictions.dense.weight", "transpose"),
    Rule(r"generator_predictions/dense/bias", "generator_predictions.dense.bias"),
    Rule(r"generator_predictions/LayerNorm/gamma", "generator_predictions.LayerNorm.weight"),
    Rule(r"generator_predictions/LayerNorm/beta", "generator_predictions.LayerNorm.bias"),
    Rule(r"generator_predictions/output_bias", "generator_lm_head.bias"),
)
DISCRIMINATOR_RULES = _network("electra", "electra") + DISCRIMINATOR_HEAD
GENERATOR_RULES = _network("generator", "electra") + GENERATOR_HEAD
# Detection counts both networks; bind() keeps the one the target is.
RULES = DISCRIMINATOR_RULES + _network("generator", "generator") + GENERATOR_HEAD

_GENERATOR_PARTS = r"generator/.+|generator_predictions/.+"
_DISCRIMINATOR_PARTS = r"electra/(encoder|embeddings_project)/.+|discriminator_predictions/.+"
DISCRIMINATOR_HEADS = (
    Head("generator (generator/..., generator_predictions)", _GENERATOR_PARTS, "generator.", separate=True),
    Head(
        "replaced-token-detection head (discriminator_predictions)",
        r"discriminator_predictions/.+",
        "discriminator_predictions.",
    ),
)
GENERATOR_HEADS = (
    Head(
        "discriminator (electra/encoder, electra/embeddings_project, discriminator_predictions)",
        _DISCRIMINATOR_PARTS,
        "discriminator.",
        separate=True,
    ),
    Head("masked-LM head (generator_predictions)", r"generator_predictions/.+", "generator_predictions."),
)

CLASSES: dict[str, tuple[str, ...]] = {
    "ElectraModel": (),
    "ElectraForPreTraining": ("discriminator",),
    "ElectraForMaskedLM": ("generator",),
}


def _sizes(config: dict[str, Any], class_name: str) -> dict[str, Any]:
    """The config of the network ``class_name`` holds: the generator's sizes for the masked-LM class."""
    out = {**config, **config.get("generator", {})} if class_name == "ElectraForMaskedLM" else dict(config)
    out.pop("generator", None)
    return out


def tf_names(config: dict[str, Any], scope: str, heads: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """google-research/electra variable names and shapes of one network (``scope``: electra or generator)."""
    heads = set(heads)
    e, h, i, v = (
        config.get("embedding_size", config["hidden_size"]),
        config["hidden_size"],
        config["intermediate_size"],
        config["vocab_size"],
    )
    out: dict[str, tuple[int, ...]] = {
        "electra/embeddings/word_embeddings": (v, e),
        "electra/embeddings/token_type_embeddings": (config["type_vocab_size"], e),
        "electra/embeddings/position_embeddings": (config["max_position_embeddings"], e),
        "electra/embeddings/LayerNorm/gamma": (e,),
        "electra/embeddings/LayerNorm/beta": (e,),
    }
    if e != h:  # modeling.py projects the embeddings only when their width differs
        out.update({f"{scope}/embeddings_project/kernel": (e, h), f"{scope}/embeddings_project/bias": (h,)})
    for n in range(config["num_hidden_layers"]):
        layer = f"{scope}/encoder/layer_{n}"
        for proj in ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense"):
            out.update({f"{layer}/{proj}/kernel": (h, h), f"{layer}/{proj}/bias": (h,)})
        out.update(
            {f"{layer}/attention/output/LayerNorm/gamma": (h,), f"{layer}/attention/output/LayerNorm/beta": (h,)}
        )
        out.update({f"{layer}/intermediate/dense/kernel": (h, i), f"{layer}/intermediate/dense/bias": (i,)})
        out.update({f"{layer}/output/dense/kernel": (i, h), f"{layer}/output/dense/bias": (h,)})
        out.update({f"{layer}/output/LayerNorm/gamma": (h,), f"{layer}/output/LayerNorm/beta": (h,)})
    if "discriminator" in heads:
        out.update({"discriminator_predictions/dense/kernel": (h, h), "discriminator_predictions/dense/bias": (h,)})
        out.update({"discriminator_predictions/dense_1/kernel": (h, 1), "discriminator_predictions/dense_1/bias": (1,)})
    if "generator" in heads:
        out.update({"generator_predictions/dense/kernel": (h, e), "generator_predictions/dense/bias": (e,)})
        out.update({"generator_predictions/LayerNorm/gamma": (e,), "generator_predictions/LayerNorm/beta": (e,)})
        out["generator_predictions/output_bias"] = (v,)
    return out


def _map(rules: tuple[Rule, ...], name: str) -> tuple[str, Any]:
    return next(hit for rule in rules if (hit := rule.apply(name)) is not None)


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    heads = CLASSES[class_name]
    generator = "generator" in heads
    rules, scope = (GENERATOR_RULES, "generator") if generator else (DISCRIMINATOR_RULES, "electra")
    sizes = _sizes(config, class_name)
    out = mapped(tf_names(sizes, scope, heads), functools.partial(_map, rules))
    if class_name == "ElectraModel":  # the base model itself: no `electra.` prefix
        out = unprefixed(out, "electra.")
    if generator:  # the output embeddings are the word embeddings (transformers ties them)
        tie = "electra.embeddings.word_embeddings.weight" if sizes.get("tie_word_embeddings", True) else None
        e = sizes.get("embedding_size", sizes["hidden_size"])
        out["generator_lm_head.weight"] = ((sizes["vocab_size"], e), tie)
    return out


def _is_generator(shapes: dict[str, tuple[int, ...]], spec: TargetSpec) -> bool:
    """Whether the target is the generator: the masked-LM class, or a reference with its head or its sizes."""
    if spec.class_name is not None:
        return bool(spec.class_name == "ElectraForMaskedLM")
    if any(n.startswith(("generator_predictions.", "generator_lm_head.")) for n in spec.tensors):
        return True
    query = "encoder.layer.0.attention.self.query.weight"
    target = next((t.shape for n, t in spec.tensors.items() if n.removeprefix("electra.") == query), None)
    generator = shapes.get("generator/encoder/layer_0/attention/self/query/kernel")
    discriminator = shapes.get("electra/encoder/layer_0/attention/self/query/kernel")
    return target is not None and target == generator and target != discriminator


def bind(ckpt: Checkpoint, spec: TargetSpec) -> tuple[RulePack, list[str]]:
    """The rules of the network the target is (the generator for ElectraForMaskedLM, else the discriminator)."""
    shapes = {r.name: r.shape for r in ckpt.values() if r.kind == "model"}
    names = set(shapes)
    if ckpt.framework == "pytorch" and _is_pair(names):
        return _PAIR, [
            "ELECTRA pair: discriminator/ under electra/ and discriminator_predictions, generator/ under "
            "generator/ and generator_predictions, one embeddings for both (electra/embeddings)"
        ]
    if not _is_generator(shapes, spec):
        bound = _bound(DISCRIMINATOR_RULES, DISCRIMINATOR_HEADS)
        note = "ELECTRA checkpoint: the target takes the discriminator (electra/...); the generator is not part of it"
        return bound, [note] if any(re.fullmatch(_GENERATOR_PARTS, n) for n in names) else []
    embeddings = "generator" if any(n.startswith("generator/embeddings/") for n in names) else "electra"
    rules = _network("generator", embeddings) + GENERATOR_HEAD
    heads = GENERATOR_HEADS
    if embeddings == "generator":  # untied_generator_embeddings: electra/embeddings are the discriminator's
        heads = (dataclasses.replace(heads[0], source=_DISCRIMINATOR_PARTS + r"|electra/embeddings/.+"), heads[1])
    shared = "its own generator/embeddings" if embeddings == "generator" else "the shared electra/embeddings"
    note = f"ELECTRA checkpoint: the target takes the generator (generator/..., generator_predictions, {shared})"
    return _bound(rules, heads), [note]


def _bound(rules: tuple[Rule, ...], heads: tuple[Head, ...]) -> RulePack:
    """The pack with one network's rules and heads, bound (no ``bind`` left to run)."""
    return dataclasses.replace(PACK, matching=Matching(rules=rules, heads=heads))


def default_target(names: Iterable[str]) -> str:
    """The class that keeps the discriminator's head; the generator's when only it is there."""
    names = set(names)
    if any(n.startswith("discriminator_predictions/") for n in names):
        return "ElectraForPreTraining"
    if any(n.startswith("generator_predictions/") for n in names) and not any(
        n.startswith("electra/encoder/") for n in names
    ):
        return "ElectraForMaskedLM"
    return "ElectraModel"


def _encoder_sizes(shapes: dict[str, tuple[int, ...]], scope: str) -> dict[str, Any] | None:
    layers = [int(m.group(1)) for n in shapes if (m := re.match(scope + r"/encoder/layer_(\d+)/", n))]
    if not layers:
        return None
    hidden = shapes[f"{scope}/encoder/layer_0/attention/self/query/kernel"][1]
    return {
        "hidden_size": hidden,
        "num_hidden_layers": 1 + max(layers),
        "intermediate_size": shapes[f"{scope}/encoder/layer_0/intermediate/dense/kernel"][1],
        "num_attention_heads": max(1, hidden // 64),
    }


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """An ElectraConfig dict from shapes (the discriminator's; the generator's sizes under ``generator``)."""
    embeddings = "electra" if "electra/embeddings/word_embeddings" in shapes else "generator"
    vocab, width = shapes[f"{embeddings}/embeddings/word_embeddings"]
    discriminator, generator = _encoder_sizes(shapes, "electra"), _encoder_sizes(shapes, "generator")
    main = discriminator or generator
    if main is None:
        raise KeyError("electra/encoder/layer_0")
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "embedding_size": width,
        **main,
        "max_position_embeddings": shapes[f"{embeddings}/embeddings/position_embeddings"][0],
        "type_vocab_size": shapes.get(f"{embeddings}/embeddings/token_type_embeddings", (2,))[0],
        "hidden_act": "gelu",
    }
    if discriminator is not None and generator is not None:
        config["generator"] = generator
    notes = [
        "config inferred from tensor shapes (google-research/electra ships no config file); num_attention_heads "
        f"assumed hidden_size/64 = {main['num_attention_heads']} as in ELECTRA's released sizes: "
        "pass --config config.json if that is wrong (shapes cannot tell)"
    ]
    return config, notes


_ELECTRA_CONFIG_KEYS = (
    "attention_probs_dropout_prob", "embedding_size", "hidden_act", "hidden_dropout_prob", "hidden_size",
    "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
    "num_hidden_layers", "type_vocab_size", "vocab_size",
)  # fmt: skip


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for the network ``class_name`` holds (ELECTRA's gelu is the exact one)."""
    sizes = _sizes(config, class_name)
    fixed = {"model_type": "electra", "pad_token_id": 0}
    return google_research_config(sizes, class_name, keys=_ELECTRA_CONFIG_KEYS, fixed=fixed, tanh_gelu=False)


def tf_layout(config: dict[str, Any], heads: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """The network a PyTorch ELECTRA is, in google-research's names (heads: ``discriminator``, ``generator``); with
    ``pair``, the discriminator and the generator, sharing ``electra/embeddings``."""
    heads = list(heads)
    if _PAIR_HEAD in heads:
        generator = tf_names(_sizes(config, "ElectraForMaskedLM"), "generator", ["generator"])
        discriminator = tf_names(_sizes(config, "ElectraForPreTraining"), "electra", heads)
        return {**generator, **discriminator}  # the shared embeddings in the discriminator's sizes
    if "generator" in heads:
        return tf_names(_sizes(config, "ElectraForMaskedLM"), "generator", heads)
    return tf_names(_sizes(config, "ElectraForPreTraining"), "electra", heads)


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """The head a PyTorch ELECTRA has: the discriminator's, or the generator's (the masked-LM class); a pair's
    discriminator head and ``pair``."""
    if _is_pair(shapes):
        own = [n for n in shapes if not n.startswith(COMPANION.prefix)]
        if any(n.startswith(("generator_predictions.", "generator_lm_head.")) for n in own):
            raise UsageError(
                "The discriminator/ folder holds a generator (ElectraForMaskedLM)",
                detail="its names have generator_predictions",
                hint="Put the discriminator (ElectraForPreTraining) in discriminator/ and the generator in generator/",
            )
        if not any(n.startswith(COMPANION.prefix + "generator_predictions.") for n in shapes):
            raise UsageError(
                "The generator/ folder holds no generator (ElectraForMaskedLM)",
                detail="its names have no generator_predictions",
                hint="Put the generator's save_pretrained output (ElectraForMaskedLM) in generator/",
            )
        head = any(n.startswith("discriminator_predictions.") for n in own)
        return (["discriminator"] if head else []) + [_PAIR_HEAD], None
    if any(n.startswith(("generator_predictions.", "generator_lm_head.")) for n in shapes):
        return ["generator"], None
    return (["discriminator"] if any(n.startswith("discriminator_predictions.") for n in shapes) else []), None


def tf_class(heads: Iterable[str], config: dict[str, Any]) -> str:
    """The transformers class whose network the layout is (what :func:`bind` reads to pick the rules)."""
    heads = list(heads)
    if _PAIR_HEAD in heads:
        return (
            "ElectraForPreTraining + ElectraForMaskedLM"
            if "discriminator" in heads
            else "ElectraModel + ElectraForMaskedLM"
        )
    return "ElectraForMaskedLM" if "generator" in heads else "ElectraForPreTraining" if heads else "ElectraModel"


_PAIR_HEAD = "pair"  # tf_layout's head for both networks at once


def _is_pair(names: Iterable[str]) -> bool:
    """Whether a PyTorch source is a discriminator/ + generator/ folder (the generator's names under its prefix)."""
    return any(n.startswith(COMPANION.prefix) for n in names)


_GENERATOR_SIZES = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads")
_SHARED_SIZES = ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size")


def pair_config(discriminator: dict[str, Any], generator: dict[str, Any]) -> dict[str, Any]:
    """The config of both networks: the discriminator's, the generator's sizes under ``generator`` (as
    :func:`config_from_source` infers them); the embeddings, stored once, must have one size."""
    differ = [k for k in _SHARED_SIZES if discriminator.get(k) != generator.get(k)]
    if differ:
        pairs = ", ".join(f"{k} {discriminator.get(k)} vs {generator.get(k)}" for k in differ)
        raise UsageError(
            "The discriminator's and the generator's embeddings differ in size",
            detail=f"{pairs}: google-research's checkpoint stores one embeddings for both",
            hint="Convert each network on its own (--target electra writes one network per checkpoint)",
        )
    return {**discriminator, "generator": {k: generator[k] for k in _GENERATOR_SIZES if k in generator}}


COMPANION = Companion(
    main="discriminator",
    folder="generator",
    prefix="generator/",
    config=pair_config,
    label="ELECTRA discriminator/ (ElectraForPreTraining) + generator/ (ElectraForMaskedLM)",
)


PACK = RulePack(
    name="electra",
    description="google-research/electra TF1 checkpoints (discriminator and generator) <-> transformers Electra*",
    config=ConfigHooks(from_source=config_from_source, pytorch=pt_config),
    pt=PyTorchSide(
        targets=class_layouts(CLASSES, _class_layout),
        default_target=default_target,
        base_prefix="electra",
        companion=COMPANION,
    ),
    tf=TensorFlowSide(
        default=True,  # the family's own layout before the layouts many families share
        layout=tf_layout,
        class_name=tf_class,
        source_heads=source_heads,
        output=Output("electra", writers.write_tf1_checkpoint, "model.ckpt"),
    ),
    matching=Matching(rules=RULES, heads=DISCRIMINATOR_HEADS, bind=bind),
    docs=Docs(model_types=("electra",), layout="google-research/electra TF1 checkpoint"),
)


# The pair's rules: the discriminator's, then the generator's under its prefix (the discriminator's rule for
# electra/embeddings comes first and wins); the generator's own copy of the embeddings is checked, not written.
_PAIR = dataclasses.replace(
    PACK,
    matching=Matching(
        rules=DISCRIMINATOR_RULES
        + tuple(Rule(r.source, COMPANION.prefix + r.target, r.transform) for r in GENERATOR_RULES),
        copies=(
            Copy(
                r"generator/(electra\.embeddings\..+)",
                "the generator's embeddings are the discriminator's: google-research stores them once",
                owner=r"\1",
            ),
            Copy(
                r"generator/generator_lm_head\.weight",
                "the generator's output embeddings are its word embeddings (tied)",
                owner="electra.embeddings.word_embeddings.weight",
            ),
        ),
    ),
)
