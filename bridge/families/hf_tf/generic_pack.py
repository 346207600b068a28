"""transformers' TensorFlow layout (``tf_model.h5``) of families other than BERT -> transformers PyTorch classes.

One generic road, per-family data.  ``TF<Class>.save_pretrained`` writes a Keras 2 HDF5 weights file whose dataset
names are ``<top layer>/<model scope>/<layer path>/<variable>:0``::

    distilbert/tf_distil_bert_for_sequence_classification/distilbert/transformer/layer_._0/ffn/lin1/kernel:0
    classifier/tf_distil_bert_for_sequence_classification/classifier/kernel:0
    transformer/tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/weight:0

(names read from files transformers 4.57.6 wrote, ``tests/fixtures/hf-tf-families/``).  The layer path is the
PyTorch module path with ``_._N`` for a list index; the variable names the PyTorch parameter: a ``Dense``
``kernel`` is the transposed ``weight``, LayerNorm ``gamma``/``beta`` are ``weight``/``bias``, an embedding matrix is
``weight`` or ``embeddings``.  The rules below say exactly that for every family; the target class's own names
come from transformers itself (built on the meta device), so a name these rules produce that the class lacks is a
gap in the plan, never a guess.  What a family does differently is data in :data:`FAMILIES` (GPT-2's Conv1D keeps
its ``[in, out]`` weight and stores its bias as ``[1, out]``).

A top layer other than the main one that holds the main layer's embeddings (RoBERTa's ``lm_head``: its decoder is
the word-embedding matrix) saves them a second time: those are the same variables, stored once.

Some families save variables outside the model scope (T5's ``shared/shared/shared/embeddings:0``, BART's
``model/model.shared/model.shared/embeddings:0`` and ``final_logits_bias/final_logits_bias:0``): those are
whole-name rules of the family (``Family.unscoped``), and the pack claims a file only through a name under a mapped
family's model scope (its ``signature``), so an unmapped family that saves the same names is still refused.

Families of transformers' TF layout that no pack maps are refused by name (``_Families.refuses``), never converted by a
guessed mapping.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.core.errors import UsageError
from bridge.core.packs import (
    Buffer,
    ConfigHooks,
    Copy,
    Detection,
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
from bridge.core.transforms import Transform
from bridge.families.hf_tf import tf_back
from bridge.families.hf_tf.data import (
    NOT_PROVEN_BACK,
    REMOVED_IN_5,
    WRITTEN_BACK,
    Family,
    back,
    pt_levels,
    seq2seq,
    snake,
    text,
    vision,
)
from bridge.families.hf_tf.pack import tf_config
from bridge.rules import writers

FAMILIES = tuple(
    dataclasses.replace(
        f,
        head_copies=back.HEAD_COPIES.get(f.model_type, ()),
        tf_leaves=back.TF_LEAVES.get(f.model_type, ()),
        tf_paths=back.TF_PATHS.get(f.model_type, ()),
        unread_copies=back.UNREAD_COPIES.get(f.model_type, ()),
        back_fills=back.BACK_FILLS.get(f.model_type, ()),
        towers=back.TOWERS.get(f.model_type, ()),
    )
    for f in text.FAMILIES + seq2seq.FAMILIES + vision.FAMILIES
)

# The variable -> the PyTorch parameter, and how the value changes.
_LEAVES = (
    ("kernel", "weight", "transpose"),
    ("gamma", "weight", "identity"),
    ("beta", "bias", "identity"),
    ("embeddings", "weight", "identity"),
    ("weight", "weight", "identity"),
    ("bias", "bias", "identity"),
    ("moving_mean", "running_mean", "identity"),  # batch norm's statistics: PyTorch's buffers
    ("moving_variance", "running_var", "identity"),
)
# batch norm's step counter has no TF variable: newly initialised, zeros
_BATCH_NORM_STEPS = Optional_(
    r".*\.num_batches_tracked", "batch norm's step counter: no TF variable, newly initialised (zeros)", "zeros"
)
# PyTorch -> TF: the step counter a PyTorch source holds and no TF variable does
_STEPS_DROPPED = Copy(tf_back.NOT_STORED, "batch norm's step counter: no TF variable holds it, dropped")
_MAX_DEPTH = 2  # list indices (``_._N``) in one name that the rules expand


def _path_rx(depth: int) -> tuple[str, str]:
    """A layer path with ``depth`` list indices, and the PyTorch template of its groups (``{}`` numbered later)."""
    if depth == 0:
        return r"([^:]+?)", "{}"
    return r"([^:]+?)" + r"_\._(\d+)/([^:]+?)" * depth, ".".join(["{}"] * (2 * depth + 1))


def _number(template: str) -> str:
    """``{}.{}.weight`` -> ``{1}.{2}.weight``: Rule templates number their groups."""
    parts = template.split("{}")
    return "".join(p + (f"{{{i}}}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


@dataclass(frozen=True)
class _Renamed(Rule):
    """A rule of a family: transformers' level conventions (:func:`pt_levels`), then the renames of transformers 5
    (``encoder.layer.0.attention.attention.query`` -> ``layers.0.attention.q_proj``) for the class the source's
    scope names, in order."""

    family: Family | None = None

    def apply(self, name: str) -> tuple[str, Transform] | None:
        hit = super().apply(name)
        if hit is None or self.family is None:
            return hit
        target = pt_levels(hit[0])
        if not self.family.renames:
            return target, hit[1]
        scope = _scope([name])
        cls = next((c for c in self.family.classes if snake("TF" + c) == scope), "")
        for cls_rx, rx, replacement in self.family.renames:
            if re.fullmatch(cls_rx, cls):
                target = re.sub(rx, replacement, target)
        return target, hit[1]


def _family_rules(family: Family) -> tuple[Rule, ...]:
    scope = family.scope_rx + r"(?:_\d+)?"  # Keras adds _1, _2 to a repeated scope
    # ``<top>/<scope>/<top>/...``: the top layer names itself again; another top holding the main layer is a copy
    tops = (re.escape(t) for t in (family.main, *family.heads))
    start = "(?:" + "|".join(rf"(?:{top}/)?{scope}/(?={top}/)" for top in tops) + ")"
    if family.unread:  # never mapped: :func:`_family_unread` explains them
        start = rf"(?!(?:[^/]+/)?{scope}/(?:{'|'.join(path for path, _ in family.unread)}):0$)" + start
    leaves = [*family.rules, *((re.escape(leaf), f"{param}", how) for leaf, param, how in _LEAVES)]
    needs = os.path.commonprefix([snake("TF" + c) for c in family.classes])  # in every name of its scopes
    out: list[Rule] = []
    for leaf, param, transform in leaves:  # the family's exceptions first: the first rule that matches wins
        for depth in range(_MAX_DEPTH, -1, -1):
            path, template = _path_rx(depth)
            source, target = f"{start}{path}/{leaf}:0", _number(f"{template}.{param}")
            out.append(_Renamed(source, target, transform, needs, family))
    return tuple(out)


def _family_copies(family: Family) -> tuple[Copy, ...]:
    main = re.escape(family.main)
    return (
        Copy(
            rf"(?!{main}/)[^/]+/({family.scope_rx}(?:_\d+)?/{main}/.+)",
            f"a head's copy of the {family.main} layer's variables (a tied decoder): the same variables, stored once",
            owner=rf"{family.main}/\1",
        ),
    )


def _family_unread(family: Family) -> tuple[Copy, ...]:
    scope = family.scope_rx + r"(?:_\d+)?"
    unread = tuple(
        Copy(rf"(?:[^/]+/)?{scope}/{path}:0", f"never read by the TF forward: {why}") for path, why in family.unread
    )
    # PyTorch -> TF only: the value written to a never-read variable (the first copy above, without an owner,
    # still explains it when reading, whatever it holds)
    written = tuple(
        Copy(rf"([^/]+/{scope}/){re.escape(path)}:0", "the value 4.57's loader gives it", owner=rf"\1{source}:0")
        for path, source in family.unread_copies
    )
    return unread + written


def _family_heads(family: Family) -> tuple[Head, ...]:
    # no family in the label: the matcher may find a head by its PyTorch prefix (`lm_head.`), which families share
    return tuple(
        Head(
            f"{head} (top layer)",
            rf"{re.escape(head)}/{family.scope_rx}(?:_\d+)?/{re.escape(head)}/.+",
            pt_levels(head) + ".",
        )
        for head in family.heads
    ) + _main_heads(family)


def _main_heads(family: Family) -> tuple[Head, ...]:
    """Parts of the main layer a class may lack (a pooler), dropped with the reason like a task head."""
    main = re.escape(family.main)
    return tuple(
        Head(
            f"{family.main}.{pt_levels(part.replace('/', '.'))} ({family.model_type}, a part of the main layer)",
            rf"(?:{main}/)?{family.scope_rx}(?:_\d+)?/{main}/{re.escape(part)}/.+",
            f"{family.main}.{pt_levels(part.replace('/', '.'))}.",
        )
        for part in family.main_heads
    )


def _unscoped_rules(family: Family) -> tuple[Rule, ...]:
    return tuple(Rule(rx, template, how) for rx, template, how in family.unscoped)


def _unscoped_copies(family: Family) -> tuple[Copy, ...]:
    return tuple(Copy(rx, reason, owner=owner) for rx, owner, reason in family.unscoped_copies)


def _unscoped_heads(family: Family) -> tuple[Head, ...]:
    return tuple(Head(f"{head} (top layer)", rf"{re.escape(head)}/[^:]+:0", head) for head in family.unscoped_heads)


def _scope(names: Iterable[str]) -> str | None:
    """The model scope of a ``tf_model.h5`` (``tf_distil_bert_for_sequence_classification``), without Keras' ``_N``."""
    for name in names:
        m = re.match(r"(?:[^/]+/)?(tf[a-z0-9_]*?)(?:_\d+)?/", name)
        if m:
            return m.group(1)
    return None


@dataclass(frozen=True)
class _Families:
    """The families a generic pack is built from, and what its hooks ask of them (which family a file is)."""

    families: tuple[Family, ...]

    def signature(self) -> str:
        """A name under one of the mapped families' model scopes: the unscoped rules (``model/model.shared/...``,
        which unmapped families such as Blenderbot save too) never make the pack claim another family's file."""
        return "(?:^|/)(?:" + "|".join(f.scope_rx for f in self.families) + r")(?:_\d+)?/"

    def of(self, names: Iterable[str]) -> Family | None:
        scope = _scope(names)
        if scope is None:
            return None
        return next((f for f in self.families if re.fullmatch(f.scope_rx, scope)), None)

    def default_target(self, names: Iterable[str]) -> str | None:
        """The class named by the model scope (``tf_distil_bert_for_sequence_classification``), else the base
        class."""
        names = list(names)
        family, scope = self.of(names), _scope(names)
        if family is None:
            return None
        return next((c for c in family.classes if snake("TF" + c) == scope), family.classes[0])

    def saved_class(self, config: dict[str, Any], names: Iterable[str]) -> str | None:
        """config.json's ``architectures`` (transformers' TF ``save_pretrained`` writes the class without ``TF``),
        when it is of the family the file's scope names: another family's class would be a wrong mapping."""
        saved = config.get("architectures")
        name = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
        family = self.of(names)
        if name is None or family is None:
            return None
        name = name.removeprefix("TF")
        return name if name in family.classes else None

    def refuses(self, names: Iterable[str], config: dict[str, Any]) -> str | None:
        """A transformers ``tf_model.h5`` of a family no pack maps: which family, for a refusal by name; of a
        mapped family, a config value its constraints do not convert (:attr:`Family.constraints`)."""
        names = list(names)
        family = self.of(names)
        if family is not None:
            return _violated(family, config)
        scope = _scope(names)
        if scope is None or not scope.startswith("tf"):
            return None
        saved = config.get("architectures")
        arch = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        if model_type is None and arch is None:
            return None  # not a transformers save_pretrained: a plain Keras model, for the Keras pack
        what = f"the transformers family `{model_type or '?'}` (TF{(arch or '?').removeprefix('TF')}, scope `{scope}`)"
        if model_type in REMOVED_IN_5:
            return f"{what} is not supported: {REMOVED_IN_5[model_type]}"
        known = ", ".join(["bert", *(f.model_type for f in self.families)])
        return f"{what} is not supported by the hf-tf rules yet (they map: {known})"


def _violated(family: Family, config: dict[str, Any]) -> str | None:
    for key, allowed, why in family.constraints:
        if key in config and config[key] != allowed:
            return (
                f"`{key}` is {config[key]!r} in this {family.model_type} config: {why}, so the converted model would "
                f"compute otherwise than the TF one (only {key} = {allowed!r} converts)"
            )
    return None


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """No inference from shapes: these classes have more sizes than their tensors show (heads, epsilons,
    activations), and transformers' defaults would be a wrong model.  ``save_pretrained`` writes config.json."""
    raise KeyError("config.json (the one transformers' save_pretrained writes beside tf_model.h5)")


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """The ``config.json`` beside ``tf_model.h5`` is already a transformers config: only the class changes."""
    return dict(config, architectures=[class_name]), []


def _source_layout(families: tuple[Family, ...], pack: RulePack) -> Any:
    """PyTorch -> ``tf_model.h5``: the layout of the TF class the source's config names, its names computed from the
    source's by the rules run backwards (:mod:`bridge.families.hf_tf.tf_back`)."""

    def source_layout(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        found = tf_back.of_config(families, config)
        model_type = config.get("model_type")
        if found is not None and found[1] in back.NOT_WRITTEN:  # said by class, whether its family is written or not
            raise UsageError(f"No tf_model.h5 is written for {found[1]}", detail=back.NOT_WRITTEN[found[1]])
        if found is None or found[0].model_type not in WRITTEN_BACK:  # a one-tower model_type: its family's
            why = NOT_PROVEN_BACK if found is not None else "its family is not one the hf-tf rules map"
            raise UsageError(
                f"No tf_model.h5 is written for the {model_type} family",
                detail=why,
                hint="`bridge layouts` lists the families each TF layout is written for",
            )
        family, cls = found
        if not cls:
            raise UsageError(
                f"config.json's architectures names no {family.model_type} class with a TensorFlow twin",
                detail=f"architectures: {config.get('architectures')}; "
                f"{family.model_type}'s: {', '.join(family.classes)}",
                hint="Pass --config with the config.json transformers saved beside the weights",
            )
        for key, default, allowed, why in back.BACK_CONSTRAINTS.get(family.model_type, ()):
            if config.get(key, default) != allowed:
                raise UsageError(
                    f"No tf_model.h5 is written for a {family.model_type} with {key} = {config.get(key)!r}",
                    detail=f"only {key} = {allowed!r}: {why}",
                )
        for key, proven in back.PROVEN_TOWERS.get(family.model_type, ()):
            tower = config.get(key)
            tower_type = str(tower.get("model_type")) if isinstance(tower, dict) else "unknown"
            if tower_type not in proven:
                raise UsageError(
                    f"No tf_model.h5 is written for this {family.model_type} model: its {key} is {tower_type}",
                    detail=f"the way back of its {key} is proven for {', '.join(proven)} only",
                    hint="Keep the PyTorch model, or convert each tower alone with --to tensorflow --target hf-tf",
                )
        layout, _, unplaced = tf_back.layout(tf_back.with_towers(family, config), "TF" + cls, shapes, pack.map_name)
        if unplaced:
            raise UsageError(
                f"{len(unplaced)} tensors of this {cls} have no place in TF{cls}'s tf_model.h5",
                detail=", ".join(f"`{n}`" for n in unplaced[:5]),
                hint="Pass --target with a reference checkpoint of the TF layout, or convert the class transformers "
                "saved",
            )
        return layout

    return source_layout


def tf_class(heads: Iterable[str], config: dict[str, Any]) -> str:
    """transformers 4.x's TF class of the PyTorch class the config names (``RobertaForMaskedLM`` ->
    ``TFRobertaForMaskedLM``)."""
    saved = config.get("architectures")
    name = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else "Model"
    return "TF" + name


def build_pack(families: tuple[Family, ...]) -> RulePack:
    """The generic hf-tf pack of these families: their data, turned into rules, heads, copies and the hooks."""
    pack = _read_pack(families)
    written = tuple(t for f in families if f.model_type in WRITTEN_BACK for t in (f.model_type, *f.also))
    tf = TensorFlowSide(
        class_name=tf_class,
        output=Output("hf-tf", writers.write_keras2_h5, "tf_model.h5", "config.json"),
        source_layout=_source_layout(families, pack),
        model_types=written,
    )
    return dataclasses.replace(pack, tf=tf, config=dataclasses.replace(pack.config, tensorflow=tf_config))


def _read_pack(families: tuple[Family, ...]) -> RulePack:
    """The TF -> PyTorch part of the pack."""
    known = _Families(families)
    return RulePack(
        name="hf-tf-generic",
        description="transformers TF (tf_model.h5) of "
        + ", ".join(f.model_type for f in families)
        + " <-> their transformers PyTorch classes",
        detection=Detection(signature=known.signature(), refuses=known.refuses),
        config=ConfigHooks(from_source=config_from_source, pytorch=pt_config),
        pt=PyTorchSide(
            targets={name: layout for family in families for name, layout in family.layouts.items()},
            default_target=known.default_target,
            saved_class=known.saved_class,
        ),
        matching=Matching(
            rules=tuple(rule for family in families for rule in _family_rules(family) + _unscoped_rules(family)),
            heads=tuple(head for family in families for head in _family_heads(family) + _unscoped_heads(family)),
            copies=(
                _STEPS_DROPPED,
                *(
                    copy
                    for family in families
                    for copy in (*_family_copies(family), *_family_unread(family), *_unscoped_copies(family))
                ),
            ),
            optional=(
                _BATCH_NORM_STEPS,
                *(Optional_(rx, reason, fill) for family in families for rx, reason, fill in family.optional),
                *(Optional_(f.target, f.why, f.fill) for family in families for f in family.back_fills),
            ),
            buffers=tuple(Buffer(rx, reason, value) for family in families for rx, reason, value in family.buffers),
        ),
        docs=Docs(
            model_types=tuple(dict.fromkeys(t for f in families for t in (f.model_type, *f.also))), layout="tf_model.h5"
        ),
    )


PACK = build_pack(FAMILIES)
