"""DINOv2: ``DINOV2Backbone`` <-> ``Dinov2Model`` (layer scales, the plain or SwiGLU feed-forward, the mask token).

Names are those transformers 5's ``save_pretrained`` writes (``attention.attention.query``, the SwiGLU's gate and up
projections joined as ``mlp.weights_in``, as KerasHub's ``weights_in`` joins them): it renames and splits them on
loading.  KerasHub keeps a second, interpolated position table for its input size; converted presets take images of
the trained size (the two tables equal, the second rebuilt from the first on loading, written as zeros here):
resampling differs between the libraries' bicubic kernels.  Register tokens are transformers'
``Dinov2WithRegistersModel``, not this family."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require

_EPSILON = 1e-6  # KerasHub's DINOv2 norms


def _refuse(c: Config, detail: str, hint: str) -> UsageError:
    return UsageError("This DINOV2Backbone has no transformers Dinov2Model counterpart", detail=detail, hint=hint)


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    trained = tuple(c.get("position_embedding_shape", (518, 518))[:2])
    if (height, width) != trained:
        raise _refuse(
            c,
            f"image_shape {c['image_shape']}, position_embedding_shape {c.get('position_embedding_shape')}",
            "the position table is interpolated to image_shape by KerasHub's own bicubic resampling; save the "
            "preset with image_shape equal to position_embedding_shape",
        )
    if c.get("num_register_tokens", 0):
        raise _refuse(c, f"num_register_tokens {c['num_register_tokens']}", "Dinov2Model has no register tokens")
    hidden, inter = c["hidden_dim"], c["intermediate_dim"]
    ratio = inter // hidden if inter % hidden == 0 else inter / hidden
    if int(hidden * ratio) != inter:
        raise _refuse(c, f"intermediate_dim {inter}", "Dinov2Config spells it as hidden_size * mlp_ratio")
    return {
        "model_type": "dinov2",
        "image_size": height,
        "patch_size": c["patch_size"],
        "num_channels": channels,
        "hidden_size": hidden,
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "mlp_ratio": ratio,
        "hidden_act": "gelu",  # KerasHub's DINOv2 MLP: the exact form
        "layer_norm_eps": _EPSILON,
        "qkv_bias": True,
        "layerscale_value": c.get("layer_scale_init_value", 1.0),
        "use_swiglu_ffn": c.get("use_swiglu_ffn", False),
        "use_mask_token": c.get("use_mask_token", True),
        "hidden_dropout_prob": c.get("dropout_rate", 0.0),
        "attention_probs_dropout_prob": c.get("dropout_rate", 0.0),
        "drop_path_rate": c.get("drop_path_rate", 0.0),
        "apply_layernorm": c.get("apply_layernorm", False),
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", "gelu", "KerasHub's DINOv2 MLP computes the exact gelu"),
            ("qkv_bias", True, "the preset's table keeps the query, key and value biases"),
            ("layer_norm_eps", _EPSILON, "KerasHub's DINOv2 layer norms use epsilon 1e-6"),
            ("num_channels", 3, "KerasHub's DINOv2 embeds three-channel images"),
        ),
    )
    if c.get("attention_probs_dropout_prob", 0.0) != c.get("hidden_dropout_prob", 0.0):
        raise _refuse(c, f"attention_probs_dropout_prob {c['attention_probs_dropout_prob']}", "one dropout rate")
    size = c.get("image_size", 224)
    return {
        "patch_size": c.get("patch_size", 14),
        "num_layers": c["num_hidden_layers"],
        "hidden_dim": c["hidden_size"],
        "num_heads": c["num_attention_heads"],
        "intermediate_dim": int(c["hidden_size"] * c.get("mlp_ratio", 4)),
        "layer_scale_init_value": c.get("layerscale_value", 1.0),
        "num_register_tokens": 0,
        "use_mask_token": c.get("use_mask_token", True),
        "use_swiglu_ffn": c.get("use_swiglu_ffn", False),
        "dropout_rate": c.get("hidden_dropout_prob", 0.0),
        "drop_path_rate": c.get("drop_path_rate", 0.0),
        "image_shape": [size, size, 3],
        "position_embedding_shape": [size, size, 3],
        "antialias_in_interpolation": False,
        "apply_layernorm": c.get("apply_layernorm", False),
    }


def _embedding(keras: Config) -> tuple[Entry, ...]:
    """The embedding's own variables, numbered by which of them the config makes (the mask token or not); Keras
    stores trainable variables first, so the interpolated table (trainable) comes before the trained one (not)."""
    embed = "layers/dinov2_embedding/vars"
    table = ["embeddings.cls_token", *(["embeddings.mask_token"] if keras.get("use_mask_token", True) else [])]
    height, patch = keras["image_shape"][0], keras["patch_size"]
    positions = (1, (height // patch) ** 2 + 1, keras["hidden_dim"])
    return (
        *(Entry(f"{embed}/{k}", target) for k, target in enumerate(table)),
        Entry(f"{embed}/{len(table)}", "", shape=positions),  # the interpolated table, rebuilt on loading
        Entry(f"{embed}/{len(table) + 1}", "embeddings.position_embeddings"),
    )


def _feed_forward(keras: Config) -> tuple[Entry, ...]:
    names = ("weights_in", "weights_out") if keras.get("use_swiglu_ffn", False) else ("fc1", "fc2")
    return tuple(
        Entry(f"mlp/{name}/vars/{v}", f"encoder.layer.{{i}}.mlp.{name}.{p}", kind)
        for name in names
        for v, p, kind in ((0, "weight", "dense"), (1, "bias", "same"))
    )


def _variant(keras: Config) -> tuple[Entry, ...]:
    return _embedding(keras) + _feed_forward(keras)


_STEM = "encoder.layer.{i}"
DINOV2 = Family(
    backbone="DINOV2Backbone",
    model_type="dinov2",
    base_class="Dinov2Model",
    base_prefix="dinov2",
    layer="dinov2_encoder/layers/dinov2_layer",
    entries=(
        Entry(
            "layers/dinov2_embedding/patch_embeddings/projection/vars/0",
            "embeddings.patch_embeddings.projection.weight",
            "conv2d",
        ),
        Entry(
            "layers/dinov2_embedding/patch_embeddings/projection/vars/1", "embeddings.patch_embeddings.projection.bias"
        ),
        Entry("layers/layer_normalization/vars/0", "layernorm.weight"),
        Entry("layers/layer_normalization/vars/1", "layernorm.bias"),
        *(
            Entry(f"attention/attention/{k}_dense/vars/{v}", f"{_STEM}.attention.attention.{k}.{p}", kind)
            for k in ("query", "key", "value")
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry("attention/attention/output_dense/vars/0", f"{_STEM}.attention.output.dense.weight", "heads_out"),
        Entry("attention/attention/output_dense/vars/1", f"{_STEM}.attention.output.dense.bias"),
        *(Entry(f"norm{n}/vars/{v}", f"{_STEM}.norm{n}.{p}") for n in (1, 2) for v, p in ((0, "weight"), (1, "bias"))),
        Entry("layer_scale1/vars/0", f"{_STEM}.layer_scale1.lambda1"),
        Entry("layer_scale2/vars/0", f"{_STEM}.layer_scale2.lambda1"),
    ),
    config=_to_transformers,
    writing=Writing("keras_hub.src.models.dinov2", _to_keras, (), files={"DINOV2Backbone": "dinov2_backbone"}),
    variant=_variant,
    saved_names=True,
)
