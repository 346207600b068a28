"""Depth Anything: ``DepthAnythingBackbone`` (a ``DINOV2Backbone`` image encoder, a DPT neck, a depth head) and its
``DepthAnythingDepthEstimator`` <-> ``DepthAnythingForDepthEstimation`` (transformers ``depth_anything``).

The encoder is DINOv2's table (families/dinov2.py) under ``backbone.``: transformers' ``Dinov2Backbone``, whose
``out_features`` are KerasHub's ``feature_keys`` (the same ``stageN`` names) and whose ``apply_layernorm`` norms
each feature map as the encoder's ``apply_layernorm`` does.  The neck's reassemble layers resize by their factor
(a transposed convolution above 1, a strided one below), its fusion layers upsample with ``align_corners=True`` in
both libraries.  The head's last activation is the task's: ReLU (relative depth, transformers' ``max_depth`` 1) or
a sigmoid times ``max_depth`` (metric); a preset of the backbone alone leaves it out and is written as relative.
KerasHub has no transformers importer for this family."""

from __future__ import annotations

from dataclasses import replace

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.dinov2 import DINOV2
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, policy, refuse, require, scoped

_ENCODER = "image_encoder/config"
_FUNCTIONAL = "layers/functional/"  # the feature extractor KerasHub wraps around the encoder's layers
_NECK = "layers/depth_anything_neck"
_HEAD = "layers/depth_anything_depth_estimation_head"
_FUSION = "fusion_stage/depth_anything_feature_fusion_layer"
_MIN_DEPTH = 1e-7  # KerasHub's default (Keras' epsilon): its training loss's floor, which transformers lacks
_DINOV2_MODULE = "keras_hub.src.models.dinov2.dinov2_backbone"


def _encoder_entry(entry: Entry, keras: Config) -> Entry:
    """A DINOv2 entry as the nested encoder names it: under the feature extractor (the final norm, outside the
    extractor's graph unless it norms the feature maps, under the encoder itself) and ``backbone.``."""
    source = entry.source
    if "{i}" not in entry.target:
        norm = source.startswith("layers/layer_normalization/")
        inside = not norm or scoped(keras, _ENCODER).get("apply_layernorm", False)
        source = _FUNCTIONAL + source if inside else "image_encoder/" + source
    return replace(entry, source=source, target=entry.target and "backbone." + entry.target)


def _suffix(i: int) -> str:
    return f"_{i}" if i else ""


def _conv(source: str, target: str, bias: bool = True) -> tuple[Entry, ...]:
    return (Entry(f"{source}/vars/0", f"{target}.weight", "conv2d"),) + (
        (Entry(f"{source}/vars/1", f"{target}.bias"),) if bias else ()
    )


def _neck(keras: Config) -> tuple[Entry, ...]:
    entries: list[Entry] = []
    for i, factor in enumerate(keras["reassemble_factors"]):
        layer = f"{_NECK}/reassemble_stage/depth_anything_reassemble_layer{_suffix(i)}"
        entries += _conv(f"{layer}/projection", f"neck.reassemble_stage.layers.{i}.projection")
        if factor != 1:  # a transposed convolution's [h, w, out, in] turns as a convolution's [h, w, in, out]
            entries += _conv(f"{layer}/resize", f"neck.reassemble_stage.layers.{i}.resize")
        entries += _conv(f"{_NECK}/convs/conv2d{_suffix(i)}", f"neck.convs.{i}", bias=False)
        fusion = f"{_NECK}/{_FUSION}{_suffix(i)}"
        entries += _conv(f"{fusion}/projection", f"neck.fusion_stage.layers.{i}.projection")
        for r in (1, 2):
            for c in (1, 2):
                entries += _conv(
                    f"{fusion}/residual_layer{r}/convolution{c}",
                    f"neck.fusion_stage.layers.{i}.residual_layer{r}.convolution{c}",
                )
    return tuple(entries)


def _variant(keras: Config) -> tuple[Entry, ...]:
    encoder = tuple(_encoder_entry(e, keras) for e in DINOV2.entries_for(scoped(keras, _ENCODER)))
    head = tuple(e for n in (1, 2, 3) for e in _conv(f"{_HEAD}/conv{n}", f"head.conv{n}"))
    return encoder + _neck(keras) + head


def _to_transformers(c: Config) -> Config:
    encoder = scoped(c, _ENCODER)
    if c.get("data_format", "channels_last") != "channels_last":
        raise UsageError(
            "This DepthAnythingBackbone has no transformers counterpart",
            detail=f"data_format {c['data_format']}",
            hint="save the preset with data_format channels_last",
        )
    backbone = {
        **DINOV2.config(encoder),
        "out_features": list(c["feature_keys"]),
        "apply_layernorm": encoder.get("apply_layernorm", False),
        "reshape_hidden_states": False,  # the neck reads the tokens
    }
    return {
        "model_type": "depth_anything",
        "backbone_config": backbone,
        "patch_size": encoder["patch_size"],
        "reassemble_hidden_size": encoder["hidden_dim"],
        "reassemble_factors": list(c["reassemble_factors"]),
        "neck_hidden_sizes": list(c["neck_hidden_dims"]),
        "fusion_hidden_size": c["fusion_hidden_dim"],
        "head_in_index": c["head_in_index"],
        "head_hidden_size": c["head_hidden_dim"],
        "depth_estimation_type": "relative",
        "max_depth": 1,
    }


def _task_settings(task: Config) -> Config:
    """The depth estimator's own keys as transformers spells them (relative depth: ``max_depth`` 1)."""
    kind = task.get("depth_estimation_type", "relative")
    if kind != "metric":
        return {"depth_estimation_type": kind, "max_depth": 1}
    depth = task.get("max_depth")
    if depth is None or float(depth) != int(depth):
        raise UsageError(
            "This DepthAnythingDepthEstimator has no transformers counterpart",
            detail=f"max_depth {depth}",
            hint="DepthAnythingConfig holds a whole max_depth: save the estimator with one",
        )
    return {"depth_estimation_type": kind, "max_depth": int(depth)}


def _to_keras(c: Config) -> Config:
    backbone = c.get("backbone_config") or {}
    require(
        c,
        (
            ("use_pretrained_backbone", False, "the preset holds the encoder's weights"),
            ("backbone", None, "the encoder is the Dinov2Backbone of backbone_config"),
        ),
        unset_ok=True,
    )
    if backbone.get("model_type") != "dinov2":
        raise refuse(c, f"backbone_config.model_type {backbone.get('model_type')}", "KerasHub's encoder is DINOv2")
    require(
        backbone,
        (("reshape_hidden_states", False, "DepthAnythingForDepthEstimation's neck reads the tokens"),),
    )
    if c.get("patch_size", 14) != backbone.get("patch_size", 14):
        raise refuse(c, f"patch_size {c.get('patch_size')}", "one patch size for the encoder and the neck")
    if c.get("reassemble_hidden_size") != backbone["hidden_size"]:
        raise refuse(c, f"reassemble_hidden_size {c.get('reassemble_hidden_size')}", "the encoder's hidden_size")
    if c.get("fusion_hidden_size", 64) % 2:
        raise refuse(c, f"fusion_hidden_size {c['fusion_hidden_size']}", "the head halves it")
    kind, max_depth = c.get("depth_estimation_type", "relative"), c.get("max_depth", 1)
    if kind == "relative" and max_depth != 1:
        raise refuse(c, f"max_depth {max_depth}", "KerasHub's relative depth estimator does not scale its output")
    features = backbone.get("out_features") or [f"stage{i}" for i in backbone.get("out_indices") or ()]
    if not features:
        raise refuse(c, "backbone_config.out_features none", "the neck reads named feature maps")
    encoder = {
        **DINOV2.writing.keras_config(backbone),  # type: ignore[union-attr]
        "apply_layernorm": backbone.get("apply_layernorm", True),
    }
    return {
        "image_encoder": {
            "module": _DINOV2_MODULE,
            "class_name": "DINOV2Backbone",
            "config": {"name": "dinov2_backbone", "trainable": True, "dtype": policy("float32"), **encoder},
            "registered_name": "keras_hub>DINOV2Backbone",
        },
        "reassemble_factors": list(c.get("reassemble_factors", (4, 2, 1, 0.5))),
        "neck_hidden_dims": list(c.get("neck_hidden_sizes", (48, 96, 192, 384))),
        "fusion_hidden_dim": c.get("fusion_hidden_size", 64),
        "head_hidden_dim": c.get("head_hidden_size", 32),
        "head_in_index": c.get("head_in_index", -1),
        "feature_keys": list(features),
    }


def _estimator(c: Config) -> Config:
    kind = c.get("depth_estimation_type", "relative")
    if kind not in ("relative", "metric"):
        raise refuse(c, f"depth_estimation_type {kind}", "KerasHub estimates relative or metric depth")
    depth = c.get("max_depth")
    return {
        "depth_estimation_type": kind,
        "min_depth": _MIN_DEPTH,
        "max_depth": float(depth) if kind == "metric" and depth else None,
    }


DEPTH_ANYTHING = Family(
    backbone="DepthAnythingBackbone",
    model_type="depth_anything",
    base_class="DepthAnythingForDepthEstimation",
    base_prefix="depth_anything",
    layer="functional/layers/dinov2_encoder/layers/dinov2_layer",
    entries=(),
    config=_to_transformers,
    tasks={"DepthAnythingDepthEstimator": "DepthAnythingForDepthEstimation"},
    task_settings=_task_settings,
    writing=Writing(
        "keras_hub.src.models.depth_anything",
        _to_keras,
        ("DepthEstimator",),
        task_configs={"DepthAnythingDepthEstimator": _estimator},
    ),
    variant=_variant,
    scope=_ENCODER,
    saved_names=True,
)
