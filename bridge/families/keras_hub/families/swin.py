"""Swin: ``SwinTransformerBackbone`` <-> ``SwinModel`` (window attention with its relative position bias tables,
shifted windows, patch merging between stages).

KerasHub numbers its blocks twice (``swin_transformer_stage_<s>/blocks/swin_transformer_block_<b>``), so the table is
spelled per stage and block from the config's ``depths``.  Its one query-key-value kernel holds the three
projections side by side (transformers: three).  Neither side saves the relative position index: both compute it
from the window size alike (transformers 5 keeps it as a non-persistent buffer).  ``SwinModel``'s pooler is an
average with no weights.  Names are those transformers 5's ``save_pretrained`` writes (``attention.self.query``)."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, require

_EPSILON = 1e-5  # KerasHub's Swin layer norms


def _refuse(detail: str, hint: str) -> UsageError:
    return UsageError(
        "This SwinTransformerBackbone has no transformers SwinModel counterpart", detail=detail, hint=hint
    )


def _to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    if height != width:
        raise _refuse(f"image_shape {c['image_shape']}", "transformers' SwinConfig takes one image_size")
    if not c.get("patch_norm", True):
        raise _refuse("patch_norm False", "transformers' Swin always normalizes the patch embeddings")
    return {
        "model_type": "swin",
        "image_size": height,
        "patch_size": c.get("patch_size", 4),
        "num_channels": channels,
        "embed_dim": c["embed_dim"],
        "depths": list(c["depths"]),
        "num_heads": list(c["num_heads"]),
        "window_size": c["window_size"],
        "mlp_ratio": c.get("mlp_ratio", 4.0),
        "qkv_bias": c.get("qkv_bias", True),
        "hidden_dropout_prob": c.get("dropout_rate", 0.0),
        "attention_probs_dropout_prob": c.get("attention_dropout", 0.0),
        "drop_path_rate": c.get("drop_path", 0.1),
        "hidden_act": "gelu",  # KerasHub's Swin MLP: the exact form
        "use_absolute_embeddings": False,
        "layer_norm_eps": _EPSILON,
    }


def _square(c: Config, key: str, default: int) -> int:
    value = c.get(key, default)
    if isinstance(value, int):
        return value
    if len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise _refuse(f"{key} {value}", f"KerasHub's SwinTransformerBackbone takes a square {key}")


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", "gelu", "KerasHub's Swin MLP computes the exact gelu"),
            ("layer_norm_eps", _EPSILON, "KerasHub's Swin layer norms use epsilon 1e-5"),
            ("use_absolute_embeddings", False, "KerasHub's Swin has no absolute position table"),
        ),
    )
    size = _square(c, "image_size", 224)
    return {
        "image_shape": [size, size, c.get("num_channels", 3)],
        "patch_size": _square(c, "patch_size", 4),
        "embed_dim": c["embed_dim"],
        "depths": list(c["depths"]),
        "num_heads": list(c["num_heads"]),
        "window_size": c["window_size"],
        "mlp_ratio": c.get("mlp_ratio", 4.0),
        "qkv_bias": c.get("qkv_bias", True),
        "dropout_rate": c.get("hidden_dropout_prob", 0.0),
        "attention_dropout": c.get("attention_probs_dropout_prob", 0.0),
        "drop_path": c.get("drop_path_rate", 0.1),
        "patch_norm": True,
        "data_format": "channels_last",
    }


def _numbered(name: str, k: int) -> str:
    """Keras 3's name of a layer class's ``k``-th instance in its parent."""
    return f"{name}_{k}" if k else name


def _norm(source: str, target: str) -> tuple[Entry, ...]:
    return Entry(f"{source}/vars/0", f"{target}.weight"), Entry(f"{source}/vars/1", f"{target}.bias")


def _block(layer: str, stem: str, qkv_bias: bool) -> tuple[Entry, ...]:
    attention = f"{stem}.attention.self"
    return (
        *_norm(f"{layer}/norm1", f"{stem}.layernorm_before"),
        *(Entry(f"{layer}/attn/qkv/vars/0", f"{attention}.{p}.weight", f"dense%{k}/3") for k, p in enumerate(_QKV)),
        *(
            (Entry(f"{layer}/attn/qkv/vars/1", f"{attention}.{p}.bias", f"same%{k}/3") for k, p in enumerate(_QKV))
            if qkv_bias
            else ()
        ),
        Entry(f"{layer}/attn/vars/0", f"{attention}.relative_position_bias_table"),
        Entry(f"{layer}/attn/proj/vars/0", f"{stem}.attention.output.dense.weight", "dense"),
        Entry(f"{layer}/attn/proj/vars/1", f"{stem}.attention.output.dense.bias"),
        *_norm(f"{layer}/norm2", f"{stem}.layernorm_after"),
        Entry(f"{layer}/mlp/fc1/vars/0", f"{stem}.intermediate.dense.weight", "dense"),
        Entry(f"{layer}/mlp/fc1/vars/1", f"{stem}.intermediate.dense.bias"),
        Entry(f"{layer}/mlp/fc2/vars/0", f"{stem}.output.dense.weight", "dense"),
        Entry(f"{layer}/mlp/fc2/vars/1", f"{stem}.output.dense.bias"),
    )


_QKV = ("query", "key", "value")


def _variant(keras: Config) -> tuple[Entry, ...]:
    """Every stage's blocks and its patch merging (all stages but the last), spelled out: two numbered levels."""
    entries: list[Entry] = []
    depths = list(keras["depths"])
    for s, depth in enumerate(depths):
        stage = f"layers/{_numbered('swin_transformer_stage', s)}"
        for b in range(depth):
            layer = f"{stage}/blocks/{_numbered('swin_transformer_block', b)}"
            entries += _block(layer, f"encoder.layers.{s}.blocks.{b}", keras.get("qkv_bias", True))
        if s < len(depths) - 1:
            merge = f"encoder.layers.{s}.downsample"
            entries += _norm(f"{stage}/downsample/norm", f"{merge}.norm")
            entries.append(Entry(f"{stage}/downsample/reduction/vars/0", f"{merge}.reduction.weight", "dense"))
    return tuple(entries)


SWIN = Family(
    backbone="SwinTransformerBackbone",
    model_type="swin",
    base_class="SwinModel",
    base_prefix="swin",
    layer="swin_transformer_stage",  # unused: every block is spelled out by the variant
    entries=(
        Entry("layers/patch_embedding/proj/vars/0", "embeddings.patch_embeddings.projection.weight", "conv2d"),
        Entry("layers/patch_embedding/proj/vars/1", "embeddings.patch_embeddings.projection.bias"),
        *_norm("layers/patch_embedding/norm", "embeddings.norm"),
        *_norm("layers/layer_normalization", "layernorm"),
    ),
    config=_to_transformers,
    writing=Writing(
        "keras_hub.src.models.swin_transformer",
        _to_keras,
        ("ImageClassifier",),
        files={"SwinTransformerBackbone": "swin_transformer_backbone"},
    ),
    variant=_variant,
    saved_names=True,  # transformers 5 renames them on loading (``attention.q_proj``, ``mlp.fc1``, ...)
)
