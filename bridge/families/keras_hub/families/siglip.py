"""SigLIP: ``SigLIPBackbone`` <-> ``SiglipModel``, two towers in one preset (``sig_lip_vision_encoder`` and
``sig_lip_text_encoder`` nested in the backbone's config and variables).

Both libraries compute alike: the text pooled at its last token, the image by a multi-head attention pooling head
(transformers' ``nn.MultiheadAttention`` keeps its query, key and value projections in one ``in_proj_weight``,
KerasHub in three einsum kernels), the logits scaled by ``exp(logit_scale)`` plus ``logit_bias`` (a scalar in
KerasHub, one value in transformers).  KerasHub keeps both towers' ``position_ids`` as variables (0..n-1);
transformers rebuilds them as buffers.
"""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.clip import (
    dense_entries,
    encoder_layer,
    nested_encoder,
    norm_entries,
    tower_keys,
)
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, position_ids, refuse

# transformers' activation -> KerasHub's of the same math (Keras' gelu: the exact form)
_ACTIVATIONS = {"gelu_pytorch_tanh": "gelu_approximate", "gelu": "gelu", "relu": "relu", "silu": "silu"}
_MODULE = "keras_hub.src.models.siglip"
_TEXT, _VISION = "layers/sig_lip_text_encoder/layers", "layers/sig_lip_vision_encoder/layers"
_HEAD = f"{_VISION}/sig_lip_multi_head_attention_pooling"


def _tower(keras: Config, name: str) -> Config:
    inner = keras[name].get("config", keras[name])
    return inner if isinstance(inner, dict) else {}


def _to_transformers(c: Config) -> Config:
    text, vision = _tower(c, "text_encoder"), _tower(c, "vision_encoder")
    height, width, channels = vision["image_shape"]
    back = {k: t for t, k in _ACTIVATIONS.items()}
    acts = [t.get("intermediate_activation", "gelu_approximate") for t in (text, vision)]
    if height != width or text["embedding_dim"] != text["hidden_dim"] or not set(acts) <= set(back):
        raise UsageError(
            "This SigLIPBackbone has no transformers SiglipModel counterpart",
            detail=f"image_shape {vision['image_shape']}, text embedding_dim {text['embedding_dim']} hidden_dim "
            f"{text['hidden_dim']}, intermediate_activation {acts}",
            hint="transformers' SigLIP takes square images, a text embedding as wide as its layers and an "
            f"intermediate_activation of {', '.join(back)}",
        )

    def common(t: Config, act: str) -> Config:
        return {
            "hidden_size": t["hidden_dim"],
            "intermediate_size": t["intermediate_dim"],
            "num_hidden_layers": t["num_layers"],
            "num_attention_heads": t["num_heads"],
            "hidden_act": back[act],
            "layer_norm_eps": t.get("layer_norm_epsilon", 1e-6),
        }

    return {
        "model_type": "siglip",
        "text_config": {
            **common(text, acts[0]),
            "model_type": "siglip_text_model",
            "vocab_size": text["vocabulary_size"],
            "max_position_embeddings": text["max_sequence_length"],
            "projection_size": text.get("projection_dim") or text["hidden_dim"],
            "bos_token_id": None,
            "eos_token_id": None,
            "pad_token_id": None,
        },
        "vision_config": {
            **common(vision, acts[1]),
            "model_type": "siglip_vision_model",
            "image_size": height,
            "patch_size": vision["patch_size"],
            "num_channels": channels,
            "vision_use_head": True,
        },
    }


def _to_keras(c: Config) -> Config:
    text, vision = c.get("text_config") or {}, c.get("vision_config") or {}
    size = vision.get("image_size", 224)
    if not vision.get("vision_use_head", True) or not isinstance(size, int):
        raise refuse(
            c,
            f"vision_config.vision_use_head {vision.get('vision_use_head')}, vision_config.image_size {size}",
            "KerasHub's SigLIP pools images with the attention head and takes square images (one image_size)",
        )
    norms = {n: (c.get(n) or {}).get("layer_norm_eps", 1e-6) for n in ("text_config", "vision_config")}
    return {
        "vision_encoder": nested_encoder(
            f"{_MODULE}.siglip_vision_encoder",
            "SigLIPVisionEncoder",
            "sig_lip_vision_encoder",
            {
                "patch_size": vision["patch_size"],
                **tower_keys(c, "vision_config", _ACTIVATIONS),
                "layer_norm_epsilon": norms["vision_config"],
                "image_shape": [size, size, vision.get("num_channels", 3)],
            },
        ),
        "text_encoder": nested_encoder(
            f"{_MODULE}.siglip_text_encoder",
            "SigLIPTextEncoder",
            "sig_lip_text_encoder",
            {
                "vocabulary_size": text["vocab_size"],
                "embedding_dim": text["hidden_size"],
                **tower_keys(c, "text_config", _ACTIVATIONS),
                "layer_norm_epsilon": norms["text_config"],
                "max_sequence_length": text["max_position_embeddings"],
                "projection_dim": text.get("projection_size") or text["hidden_size"],
            },
        ),
    }


def _positions(tower: str) -> Entry:
    """A tower embedding's ``position_ids`` variable (transformers' buffer): 0..n-1, as many as its table rows."""

    def shape(keras: Config) -> tuple[int, ...]:
        t = _tower(keras, f"{tower}_encoder")
        n = t["max_sequence_length"] if tower == "text" else (t["image_shape"][0] // t["patch_size"]) ** 2
        return (1, int(n))

    return Entry(
        f"layers/sig_lip_{tower}_encoder/layers/sig_lip_{tower}_embedding/vars/0",
        "",
        shape=shape,
        computed=position_ids,
    )


def _pooling_head(stem: str) -> tuple[Entry, ...]:
    """KerasHub's attention pooling head: the three einsum kernels are blocks of transformers' ``in_proj``."""
    return (
        Entry(f"{_HEAD}/vars/0", f"{stem}.probe"),
        *(
            Entry(f"{_HEAD}/attention/{k}_dense/vars/{v}", f"{stem}.attention.in_proj_{p}", f"{kind}@{n}/3/0")
            for n, k in enumerate(("query", "key", "value"))
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_HEAD}/attention/output_dense/vars/0", f"{stem}.attention.out_proj.weight", "heads_out"),
        Entry(f"{_HEAD}/attention/output_dense/vars/1", f"{stem}.attention.out_proj.bias"),
        *norm_entries(f"{_HEAD}/layer_norm", f"{stem}.layernorm"),
        *(e for n in (1, 2) for e in dense_entries(f"{_HEAD}/mlp/fc{n}", f"{stem}.mlp.fc{n}")),
    )


_ENTRIES: tuple[Entry, ...] = (
    Entry(f"{_TEXT}/sig_lip_text_embedding/token_embedding/vars/0", "text_model.embeddings.token_embedding.weight"),
    Entry(
        f"{_TEXT}/sig_lip_text_embedding/position_embedding/vars/0", "text_model.embeddings.position_embedding.weight"
    ),
    _positions("text"),
    *norm_entries(f"{_TEXT}/layer_normalization", "text_model.final_layer_norm"),
    *dense_entries(f"{_TEXT}/dense", "text_model.head"),
    Entry(
        f"{_VISION}/sig_lip_vision_embedding/patch_embedding/vars/0",
        "vision_model.embeddings.patch_embedding.weight",
        "conv2d",
    ),
    Entry(f"{_VISION}/sig_lip_vision_embedding/patch_embedding/vars/1", "vision_model.embeddings.patch_embedding.bias"),
    Entry(
        f"{_VISION}/sig_lip_vision_embedding/position_embedding/vars/0",
        "vision_model.embeddings.position_embedding.weight",
    ),
    _positions("vision"),
    *norm_entries(f"{_VISION}/layer_normalization", "vision_model.post_layernorm"),
    *_pooling_head("vision_model.head"),
    Entry("layers/sig_lip_head/vars/0", "logit_scale", "lead1"),
    Entry("layers/sig_lip_head/vars/1", "logit_bias", "lead1"),
    *encoder_layer("vision_model.encoder.layers.{i}", "self_attn", "layer_norm{n}", "mlp/fc{n}"),
)


SIGLIP = Family(
    backbone="SigLIPBackbone",
    model_type="siglip",
    base_class="SiglipModel",
    base_prefix="siglip",
    layer="sig_lip_vision_encoder/layers/sig_lip_encoder_layer",
    entries=_ENTRIES,
    config=_to_transformers,
    scope="vision_encoder/config",  # the pooling head's attention is sized by the vision tower
    stacks=(
        Stack(
            "sig_lip_text_encoder/layers/sig_lip_encoder_layer",
            encoder_layer("text_model.encoder.layers.{i}", "self_attn", "layer_norm{n}", "mlp/fc{n}"),
            scope="text_encoder/config",
        ),
    ),
    writing=Writing(_MODULE, _to_keras, (), files={"SigLIPBackbone": "siglip_backbone"}),
)
