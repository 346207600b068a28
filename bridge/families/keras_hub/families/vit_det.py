"""ViTDet: ``ViTDetBackbone`` (SAM's image encoder: windowed attention with decomposed relative positions, some
layers global, ending in SAM's neck) <-> transformers 5 ``SamVisionModel`` (``sam_vision_model``), whose encoder
ends in the same neck; transformers' ``VitDetModel`` has none.

The relative position tables span ``2 * window_size - 1`` positions in windowed layers and ``2 * image / patch -
1`` in global ones on both sides (so the tables follow the image size the preset was built for).  The neck (1x1
convolution, layer norm, 3x3 convolution, layer norm, no biases) norms with epsilon 1e-6 on both sides, fixed;
the blocks' norms take the config's.  Both MLPs compute the exact gelu.  Variants without the query-key-value
biases, the absolute or the relative positions are refused (the tables would differ by layer).  KerasHub's
backbone normalizes its images by the ImageNet mean and deviation itself; transformers' SamProcessor does so
before the model (the same values): the weights are the same, the forwards agree on pixels normalized for
transformers."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require

_STEM = "vision_encoder"
_FLAGS = (("use_bias", "qkv_bias"), ("use_abs_pos", "use_abs_pos"), ("use_rel_pos", "use_rel_pos"))


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    off = [k for k, _ in _FLAGS if not c.get(k, True)]
    if height != width or off:
        raise UsageError(
            "This ViTDetBackbone has no transformers SamVisionModel counterpart",
            detail=f"image_shape {c['image_shape']}" + "".join(f", {k} False" for k in off),
            hint="write the backbone with square images, query-key-value biases and both position kinds",
        )
    return {
        "model_type": "sam_vision_model",
        "image_size": height,
        "num_channels": channels,
        "patch_size": c["patch_size"],
        "hidden_size": c["hidden_size"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "mlp_dim": c["intermediate_dim"],
        "output_channels": c["num_output_channels"],
        "window_size": c["window_size"],
        "global_attn_indexes": list(c["global_attention_layer_indices"]),
        "layer_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "hidden_act": "gelu",  # KerasHub's MLP: the exact form
        "qkv_bias": True,
        "use_abs_pos": True,
        "use_rel_pos": True,
    }


def vit_det_keras_config(c: Config) -> Config:
    """A ``SamVisionConfig`` (a ``SamConfig``'s ``vision_config``) as ``ViTDetBackbone``'s config."""
    require(
        c,
        (
            ("hidden_act", "gelu", "KerasHub ViTDet's MLP computes the exact gelu"),
            ("attention_dropout", 0.0, "KerasHub ViTDet's attention has no dropout"),
            *((t, True, f"KerasHub's ViTDet preset table holds them ({k})") for k, t in _FLAGS),
        ),
    )
    hidden = c.get("hidden_size", 768)
    size = c.get("image_size", 1024)
    return {
        "image_shape": [size, size, c.get("num_channels", 3)],
        "patch_size": c.get("patch_size", 16),
        "hidden_size": hidden,
        "num_layers": c.get("num_hidden_layers", 12),
        "intermediate_dim": c.get("mlp_dim") or int(hidden * c.get("mlp_ratio", 4.0)),
        "num_heads": c.get("num_attention_heads", 12),
        "num_output_channels": c.get("output_channels", 256),
        "use_bias": True,
        "use_abs_pos": True,
        "use_rel_pos": True,
        "window_size": c.get("window_size", 14),
        "global_attention_layer_indices": list(c.get("global_attn_indexes", [2, 5, 8, 11])),
        "layer_norm_epsilon": c.get("layer_norm_eps", 1e-6),
    }


def vit_det_entries(root: str = "layers", stem: str = _STEM) -> tuple[Entry, ...]:
    """The encoder's variables under ``root`` and their transformers names under ``stem`` (``{i}``: a block)."""
    block = f"{stem}.layers.{{i}}"
    attention = "attention"
    return (
        Entry(f"{root}/add_positional_embedding/vars/0", f"{stem}.pos_embed"),
        Entry(
            f"{root}/vi_t_det_patching_and_embedding/projection/vars/0",
            f"{stem}.patch_embed.projection.weight",
            "conv2d",
        ),
        Entry(f"{root}/vi_t_det_patching_and_embedding/projection/vars/1", f"{stem}.patch_embed.projection.bias"),
        Entry(f"{root}/sequential/layers/conv2d/vars/0", f"{stem}.neck.conv1.weight", "conv2d"),
        Entry(f"{root}/sequential/layers/layer_normalization/vars/0", f"{stem}.neck.layer_norm1.weight"),
        Entry(f"{root}/sequential/layers/layer_normalization/vars/1", f"{stem}.neck.layer_norm1.bias"),
        Entry(f"{root}/sequential/layers/conv2d_1/vars/0", f"{stem}.neck.conv2.weight", "conv2d"),
        Entry(f"{root}/sequential/layers/layer_normalization_1/vars/0", f"{stem}.neck.layer_norm2.weight"),
        Entry(f"{root}/sequential/layers/layer_normalization_1/vars/1", f"{stem}.neck.layer_norm2.bias"),
        Entry(f"{attention}/add_decomposed_relative_pe/vars/0", f"{block}.attn.rel_pos_h"),
        Entry(f"{attention}/add_decomposed_relative_pe/vars/1", f"{block}.attn.rel_pos_w"),
        Entry(f"{attention}/qkv/vars/0", f"{block}.attn.qkv.weight", "dense"),
        Entry(f"{attention}/qkv/vars/1", f"{block}.attn.qkv.bias"),
        Entry(f"{attention}/projection/vars/0", f"{block}.attn.proj.weight", "dense"),
        Entry(f"{attention}/projection/vars/1", f"{block}.attn.proj.bias"),
        *(
            Entry(f"layer_norm{n}/vars/{v}", f"{block}.layer_norm{n}.{p}")
            for n in (1, 2)
            for v, p in enumerate(("weight", "bias"))
        ),
        *(
            Entry(f"mlp_block/dense_net/layers/{layer}/vars/{v}", f"{block}.mlp.{lin}.{p}", kind)
            for layer, lin in (("dense", "lin1"), ("dense_1", "lin2"))
            for v, p, kind in ((0, "weight", "dense"), (1, "bias", "same"))
        ),
    )


VIT_DET = Family(
    backbone="ViTDetBackbone",
    model_type="sam_vision_model",
    base_class="SamVisionModel",
    base_prefix="sam",  # SamVisionModel's own names begin vision_encoder., without it
    layer="windowed_transformer_encoder",
    entries=vit_det_entries(),
    config=_to_transformers,
    normalizes_images=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's, SamProcessor's too
    writing=Writing(
        "keras_hub.src.models.vit_det", vit_det_keras_config, (), files={"ViTDetBackbone": "vit_det_backbone"}
    ),
)
