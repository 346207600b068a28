"""DINOv3: ``DINOV3Backbone`` <-> ``DINOv3ViTModel`` (2D rotary positions, register tokens, layer scales, the plain
or gated feed-forward, optional query/key/value/output/MLP biases).

Names are those transformers 5's ``save_pretrained`` writes (``layer.{i}``; it loads them under ``model.layer.{i}``).
Neither side stores the rotary table: both compute it from ``rope_theta`` and the image's patch grid alike.
transformers always holds a mask token and a register table (``[1, 0, hidden]`` without registers); a preset without
them writes zeros, the value transformers starts them at (the mask token is read only for masked patches, which
the Keras backbone never takes).  transformers' training-time augmentations of the patch coordinates
(``pos_embed_shift/jitter/rescale``) have no KerasHub counterpart: written as none, ignored on the way back."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse

# Keras' activation names -> transformers' (ACT2FN) of the same function: Keras' "gelu" is the exact form
_ACTIVATIONS = {"gelu": "gelu", "silu": "silu", "swish": "silu", "relu": "relu", "tanh": "tanh"}
_BIASES = (("query", "q"), ("key", "k"), ("value", "v"), ("proj", "o"))


def _square(value: object, what: str, c: Config) -> int:
    """One side of a square patch (KerasHub's DINOv3 takes an int)."""
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise refuse(c, f"{what} {value}", "KerasHub's DINOV3Backbone takes square patches (one patch_size)")


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    act = c.get("hidden_activation", "gelu")
    if not isinstance(act, str) or act not in _ACTIVATIONS:
        raise UsageError(
            "This DINOV3Backbone has no transformers DINOv3ViTModel counterpart",
            detail=f"hidden_activation {act}",
            hint=f"transformers' DINOv3 names its activations; this tool maps {sorted(_ACTIVATIONS)}",
        )
    return {
        "model_type": "dinov3_vit",
        "image_size": height if height == width else [height, width],
        "patch_size": c["patch_size"],
        "num_channels": channels,
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "hidden_act": _ACTIVATIONS[act],
        "attention_dropout": c.get("attention_dropout", 0.0),
        "drop_path_rate": c.get("drop_path_rate", 0.0),
        "layer_norm_eps": c.get("layer_norm_eps", 1e-5),
        "rope_theta": c.get("rope_theta", 100.0),
        **{f"{k}_bias": c.get(f"use_{k}_bias", True) for k, _ in _BIASES},
        "mlp_bias": c.get("use_mlp_bias", True),
        "layerscale_value": c.get("layer_scale_init_value", 1.0),
        "use_gated_mlp": c.get("use_gated_mlp", False),
        "num_register_tokens": c.get("num_register_tokens", 0),
        "pos_embed_shift": None,  # KerasHub trains without augmenting the patch coordinates
        "pos_embed_jitter": None,
        "pos_embed_rescale": None,
        "apply_layernorm": c.get("apply_layernorm", False),
    }


def _to_keras(c: Config) -> Config:
    act = c.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS.values():
        raise refuse(c, f"hidden_act {act}", f"KerasHub's DINOv3 MLP computes one of {sorted(set(_ACTIVATIONS))}")
    size = c.get("image_size", 224)
    height, width = (size, size) if isinstance(size, int) else size
    return {
        "patch_size": _square(c.get("patch_size", 16), "patch_size", c),
        "num_layers": c["num_hidden_layers"],
        "hidden_dim": c["hidden_size"],
        "num_heads": c["num_attention_heads"],
        "intermediate_dim": c["intermediate_size"],
        "layer_scale_init_value": c.get("layerscale_value", 1.0),
        "num_register_tokens": c.get("num_register_tokens", 0),
        "use_mask_token": True,  # transformers always holds one
        "hidden_activation": act,
        "use_gated_mlp": c.get("use_gated_mlp", False),
        **{f"use_{k}_bias": c.get(f"{k}_bias", k != "key") for k, _ in _BIASES},
        "use_mlp_bias": c.get("mlp_bias", True),
        "attention_dropout": c.get("attention_dropout", 0.0),
        "drop_path_rate": c.get("drop_path_rate", 0.0),
        "layer_norm_eps": c.get("layer_norm_eps", 1e-5),
        "image_shape": [height, width, c.get("num_channels", 3)],
        "rope_theta": c.get("rope_theta", 100.0),
        "apply_layernorm": c.get("apply_layernorm", False),
    }


def _dense(keras: str, target: str, bias: bool) -> tuple[Entry, ...]:
    kernel = Entry(f"{keras}/vars/0", f"{target}.weight", "dense")
    return (kernel, Entry(f"{keras}/vars/1", f"{target}.bias")) if bias else (kernel,)


def _variant(keras: Config) -> tuple[Entry, ...]:
    """The embedding's tokens (numbered by which of them the config makes) and each layer's dense layers (with or
    without biases, gated or not)."""
    tokens = [
        "embeddings.cls_token",
        *(["embeddings.mask_token"] if keras.get("use_mask_token", True) else []),
        *(["embeddings.register_tokens"] if keras.get("num_register_tokens", 0) else []),
    ]
    mlp_bias = keras.get("use_mlp_bias", True)
    projections = (
        ("gate_proj", "up_proj", "down_proj") if keras.get("use_gated_mlp", False) else ("up_proj", "down_proj")
    )
    return (
        *(Entry(f"layers/dinov3_embedding/vars/{k}", target) for k, target in enumerate(tokens)),
        *(
            e
            for k, p in _BIASES
            for e in _dense(
                f"attention/{'output' if k == 'proj' else k}_dense",
                f"{_STEM}.attention.{p}_proj",
                keras.get(f"use_{k}_bias", True),
            )
        ),
        *(e for p in projections for e in _dense(f"mlp/{p}", f"{_STEM}.mlp.{p}", mlp_bias)),
    )


_STEM = "layer.{i}"
_EMBED = "layers/dinov3_embedding/patch_embeddings/projection"
DINOV3 = Family(
    backbone="DINOV3Backbone",
    model_type="dinov3_vit",
    base_class="DINOv3ViTModel",
    base_prefix="model",
    layer="dinov3_encoder/layers/dinov3_layer",
    entries=(
        Entry(f"{_EMBED}/vars/0", "embeddings.patch_embeddings.weight", "conv2d"),
        Entry(f"{_EMBED}/vars/1", "embeddings.patch_embeddings.bias"),
        Entry("layers/layer_normalization/vars/0", "norm.weight"),
        Entry("layers/layer_normalization/vars/1", "norm.bias"),
        *(Entry(f"norm{n}/vars/{v}", f"{_STEM}.norm{n}.{p}") for n in (1, 2) for v, p in ((0, "weight"), (1, "bias"))),
        Entry("layer_scale1/vars/0", f"{_STEM}.layer_scale1.lambda1"),
        Entry("layer_scale2/vars/0", f"{_STEM}.layer_scale2.lambda1"),
    ),
    config=_to_transformers,
    writing=Writing("keras_hub.src.models.dinov3", _to_keras, (), files={"DINOV3Backbone": "dinov3_backbone"}),
    variant=_variant,
    zeros=(
        ("embeddings.mask_token", "a preset without a mask token: transformers' starting value, read only for masks"),
        ("embeddings.register_tokens", "a preset without register tokens: transformers' empty table"),
    ),
    saved_names=True,
)
