"""ViT: ``ViTBackbone`` <-> ``ViTModel`` (the patch convolution's kernel turned to torch's ``[out, in, h, w]``; the
position table gains transformers' leading batch axis; the pooler KerasHub's backbone lacks written as zeros)."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, LoraOrder, LoraSite, Writing, require


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    patch = c["patch_size"]
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    if height != width or patch_h != patch_w or not c.get("use_class_token", True):
        raise UsageError(
            "This ViTBackbone has no transformers ViTModel counterpart",
            detail=f"image_shape {c['image_shape']}, patch_size {patch}, use_class_token {c.get('use_class_token')}",
            hint="transformers' ViT takes square images and patches and a class token",
        )
    return {
        "model_type": "vit",
        "image_size": height,
        "patch_size": patch_h,
        "num_channels": channels,
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["mlp_dim"],
        "hidden_act": "gelu",  # KerasHub ViT's MLP: the exact form
        "layer_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "qkv_bias": c.get("use_mha_bias", True),
        "hidden_dropout_prob": c.get("dropout_rate", 0.0),
        "attention_probs_dropout_prob": c.get("attention_dropout", 0.0),
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", "gelu", "KerasHub ViT's MLP computes the exact gelu"),
            ("qkv_bias", True, "the preset's table keeps the query, key and value biases"),
        ),
    )
    size, patch = c.get("image_size", 224), c.get("patch_size", 16)
    return {
        "image_shape": [size, size, c.get("num_channels", 3)],
        "patch_size": [patch, patch],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "mlp_dim": c["intermediate_size"],
        "dropout_rate": c.get("hidden_dropout_prob", 0.0),
        "attention_dropout": c.get("attention_probs_dropout_prob", 0.0),
        "layer_norm_epsilon": c.get("layer_norm_eps", 1e-12),
        "use_mha_bias": True,
        "use_mlp_bias": True,
        "use_class_token": True,
        "use_patch_bias": True,
    }


# transformers 5's in-memory names -> the 4.x names its save_pretrained still writes (it renames them on loading)
_SAVED = (
    (r"^layers\.", "encoder.layer."),
    *((rf"\.attention\.{x[0]}_proj\.", f".attention.attention.{x}.") for x in ("query", "key", "value")),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
)

_EMBED = "layers/vi_t_patching_and_embedding"
VIT = Family(
    backbone="ViTBackbone",
    model_type="vit",
    base_class="ViTModel",
    base_prefix="vit",
    layer="vi_t_encoder/encoder_layers/vi_t_encoder_block",
    entries=(
        Entry(f"{_EMBED}/vars/0", "embeddings.cls_token"),
        Entry(f"{_EMBED}/patch_embedding/vars/0", "embeddings.patch_embeddings.projection.weight", "conv2d"),
        Entry(f"{_EMBED}/patch_embedding/vars/1", "embeddings.patch_embeddings.projection.bias"),
        Entry(f"{_EMBED}/position_embedding/vars/0", "embeddings.position_embeddings", "lead1"),
        Entry("layers/vi_t_encoder/layer_norm/vars/0", "layernorm.weight"),
        Entry("layers/vi_t_encoder/layer_norm/vars/1", "layernorm.bias"),
        *(
            Entry(f"mha/{k}_dense/vars/{v}", f"layers.{{i}}.attention.{k[0]}_proj.{p}", kind)
            for k in ("query", "key", "value")
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry("mha/output_dense/vars/0", "layers.{i}.attention.o_proj.weight", "heads_out"),
        Entry("mha/output_dense/vars/1", "layers.{i}.attention.o_proj.bias"),
        Entry("layer_norm_1/vars/0", "layers.{i}.layernorm_before.weight"),
        Entry("layer_norm_1/vars/1", "layers.{i}.layernorm_before.bias"),
        Entry("layer_norm_2/vars/0", "layers.{i}.layernorm_after.weight"),
        Entry("layer_norm_2/vars/1", "layers.{i}.layernorm_after.bias"),
        Entry("mlp/dense_1/vars/0", "layers.{i}.mlp.fc1.weight", "dense"),
        Entry("mlp/dense_1/vars/1", "layers.{i}.mlp.fc1.bias"),
        Entry("mlp/dense_2/vars/0", "layers.{i}.mlp.fc2.weight", "dense"),
        Entry("mlp/dense_2/vars/1", "layers.{i}.mlp.fc2.bias"),
    ),
    config=_to_transformers,
    writing=Writing("keras_hub.src.models.vit", _to_keras, ("ImageClassifier",), files={"ViTBackbone": "vit_backbone"}),
    saved=_SAVED,
    unkept=((r"pooler\.dense\.(weight|bias)", "ViTModel's pooler, which KerasHub's ViTBackbone does not compute"),),
    lora=LoraOrder(
        5,  # the patching and embedding layer, its position and patch embeddings, the encoder, its final norm
        (
            None,  # the encoder block
            None,  # mlp
            LoraSite("dense_2", "layers.{i}.mlp.fc2"),
            LoraSite("dense_1", "layers.{i}.mlp.fc1"),
            None,  # ln_2
            None,  # mha
            LoraSite("attention_output", "layers.{i}.attention.o_proj", "q"),
            LoraSite("value", "layers.{i}.attention.v_proj", "q"),
            LoraSite("key", "layers.{i}.attention.k_proj", "q"),
            LoraSite("query", "layers.{i}.attention.q_proj", "q"),
            None,  # ln_1
        ),
        ("num_hidden_layers", "num_attention_heads", "num_attention_heads"),
        reverse=True,
    ),
)
