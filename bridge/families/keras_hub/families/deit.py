"""DeiT: ``DeiTBackbone`` <-> ``DeiTModel`` and ``DeiTImageClassifier`` <-> ``DeiTForImageClassification`` (ViT's
table plus the distillation token; the classifier reads the class token alone).  transformers' with-teacher head
(``DeiTForImageClassificationWithTeacher``) averages a second, distillation-token classifier KerasHub has no layer
for, so it is not a counterpart."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.vit import VIT
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    patch = c["patch_size"]
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    if height != width or patch_h != patch_w or not c.get("use_mha_bias", True):
        raise UsageError(
            "This DeiTBackbone has no transformers DeiTModel counterpart",
            detail=f"image_shape {c['image_shape']}, patch_size {patch}, use_mha_bias {c.get('use_mha_bias')}",
            hint="transformers' DeiT takes square images and patches and attention biases",
        )
    return {
        "model_type": "deit",
        "image_size": height,
        "patch_size": patch_h,
        "num_channels": channels,
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu",  # KerasHub DeiT's MLP: the exact form
        "layer_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "qkv_bias": True,
        "hidden_dropout_prob": c.get("dropout_rate", 0.0),
        "attention_probs_dropout_prob": c.get("attention_dropout", 0.0),
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", "gelu", "KerasHub DeiT's MLP computes the exact gelu"),
            ("qkv_bias", True, "the preset's table keeps the query, key and value biases"),
            ("num_channels", 3, "KerasHub's DeiT embeds three-channel images"),
        ),
    )
    size, patch = c.get("image_size", 224), c.get("patch_size", 16)
    return {
        "image_shape": [size, size, 3],
        "patch_size": [patch, patch],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout_rate": c.get("hidden_dropout_prob", 0.0),
        "attention_dropout": c.get("attention_probs_dropout_prob", 0.0),
        "layer_norm_epsilon": c.get("layer_norm_eps", 1e-12),
        "use_mha_bias": True,
    }


def _classifier(c: Config) -> Config:
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    return {
        "num_classes": len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2),
        "pooling": "token",  # DeiTForImageClassification classifies the class token
        "activation": None,
        "dropout": 0.0,
    }


_EMBED = "layers/dei_t_embeddings"
_BLOCK_RENAMES = {  # ViT's names of one block -> DeiT's KerasHub variables of the same role
    "mha/": "mha/",
    "layer_norm_1/": "layer_norm_1/",
    "layer_norm_2/": "layer_norm_2/",
    "mlp/dense_1/": "mlp/dense/",
    "mlp/dense_2/": "output_layer/dense/",
}


def _block(entry: Entry) -> Entry:
    for vit, deit in _BLOCK_RENAMES.items():
        if entry.source.startswith(vit):
            return Entry(deit + entry.source.removeprefix(vit), entry.target, entry.kind)
    raise AssertionError(entry.source)


DEIT = Family(
    backbone="DeiTBackbone",
    model_type="deit",
    base_class="DeiTModel",
    base_prefix="deit",
    layer="dei_t_encoder/encoder_layers/dei_t_encoder_block",
    entries=(
        Entry(f"{_EMBED}/vars/0", "embeddings.cls_token"),
        Entry(f"{_EMBED}/vars/1", "embeddings.distillation_token"),
        Entry(f"{_EMBED}/vars/2", "embeddings.position_embeddings"),
        Entry(f"{_EMBED}/patch_embedding/vars/0", "embeddings.patch_embeddings.projection.weight", "conv2d"),
        Entry(f"{_EMBED}/patch_embedding/vars/1", "embeddings.patch_embeddings.projection.bias"),
        Entry("layers/dei_t_encoder/layer_norm/vars/0", "layernorm.weight"),
        Entry("layers/dei_t_encoder/layer_norm/vars/1", "layernorm.bias"),
        *(_block(e) for e in VIT.entries if "{i}" in e.target),
    ),
    config=_to_transformers,
    tasks={"DeiTImageClassifier": "DeiTForImageClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.deit",
        _to_keras,
        ("ImageClassifier",),
        task_configs={"DeiTImageClassifier": _classifier},
        files={"DeiTBackbone": "deit_backbone", "DeiTImageClassifier": "deit_image_classifier"},
    ),
    saved=VIT.saved,  # transformers 5 renames DeiT's tensors as it does ViT's
    unkept=((r"pooler\.dense\.(weight|bias)", "DeiTModel's pooler, which KerasHub's DeiTBackbone does not compute"),),
)
