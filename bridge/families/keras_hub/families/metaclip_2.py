"""MetaCLIP 2: ``MetaCLIP2Backbone`` <-> ``MetaClip2Model`` (transformers ``metaclip_2``), CLIP's two towers under
KerasHub's ``meta_clip2_`` names and transformers' CLIP names.

Unlike KerasHub's CLIP, its MetaCLIP 2 computes as transformers does: the text pooled at the first end token (id 2,
fixed in KerasHub; transformers reads ``eos_token_id``, written 2 and refused otherwise), the vision post layer norm on
the class token alone, every layer norm of epsilon 1e-5; and it keeps no ``position_ids`` variable.
"""

from __future__ import annotations

import re

from bridge.families.keras_hub.families.clip import CLIP, ENTRIES, nested_encoder, to_keras, to_transformers
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, refuse

_MODULE = "keras_hub.src.models.metaclip_2"
_EOS = 2  # the end token KerasHub's MetaCLIP 2 pools at
# CLIP's variable paths -> MetaCLIP 2's (its vision post norm is the backbone's own layer)
_PATHS = (
    (r"clip_vision_encoder/layers/layer_normalization_1/", "layer_normalization/"),
    (r"clip_(text_encoder|vision_encoder|vision_embedding|head|encoder_layer)", r"meta_clip2_\1"),
)


def _renamed(entry: Entry) -> Entry:
    source = entry.source
    for pattern, replacement in _PATHS:
        source = re.sub(pattern, replacement, source)
    return Entry(source, entry.target, entry.kind)


def _to_transformers(c: Config) -> Config:
    clip = to_transformers(c)
    towers = {f"{t}_config": {**clip[f"{t}_config"], "model_type": f"metaclip_2_{t}_model"} for t in ("text", "vision")}
    towers["text_config"].update(bos_token_id=None, pad_token_id=None, eos_token_id=_EOS)
    return {**clip, **towers, "model_type": "metaclip_2"}


def _to_keras(c: Config) -> Config:
    eos = (c.get("text_config") or {}).get("eos_token_id")
    if eos != _EOS:
        raise refuse(
            c, f"text_config.eos_token_id {eos}", f"KerasHub's MetaCLIP 2 pools the text at the first token {_EOS}"
        )
    clip = to_keras(c)
    towers = {
        tower: nested_encoder(
            f"{_MODULE}.metaclip_2_{tower}",
            f"MetaCLIP2{tower.title().replace('_', '')}",
            f"meta_clip2_{tower}",
            {k: v for k, v in clip[tower]["config"].items() if k not in ("name", "trainable", "dtype")},
        )
        for tower in ("vision_encoder", "text_encoder")
    }
    return {**clip, **towers}


METACLIP_2 = Family(
    backbone="MetaCLIP2Backbone",
    model_type="metaclip_2",
    base_class="MetaClip2Model",
    base_prefix="metaclip_2",
    layer=_renamed(Entry(CLIP.layer, "")).source,
    entries=tuple(_renamed(e) for e in ENTRIES if e.target),  # CLIP's position_ids variable: none here
    config=_to_transformers,
    scope=CLIP.scope,
    stacks=tuple(Stack(_renamed(Entry(s.layer, "")).source, s.entries, scope=s.scope) for s in CLIP.stacks),
    writing=Writing(_MODULE, _to_keras, (), files={"MetaCLIP2Backbone": "metaclip_2_backbone"}),
)
