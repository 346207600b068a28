"""CLIP: ``CLIPBackbone`` <-> ``CLIPModel``, two towers in one preset (``clip_text_encoder`` and
``clip_vision_encoder`` nested in the backbone's config and variables).

What changes the math, and how it is kept: KerasHub pools the text at the highest token id (``argmax``), which
transformers 5 does only for ``eos_token_id == 2`` (its legacy rule); the preset's transformers config says 2 so both
pool the same token for every input.  KerasHub's vision output is the post layer norm applied to every token
(transformers applies it to the class token alone); its text tower's final layer norm has epsilon 1e-6 where
transformers' one ``layer_norm_eps`` says 1e-5 (a difference below 1e-5 on the outputs, noted).  The vision
embedding's ``position_ids`` variable transformers rebuilds as a buffer.
"""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, policy, refuse

# KerasHub activations transformers computes alike under the same name (Keras' gelu: the exact form)
_ACTIVATIONS = ("quick_gelu", "gelu", "relu", "silu")


def _tower(c: Config) -> Config:
    """A nested encoder's own config (``{"class_name": ..., "config": {...}}`` as ``config.json`` holds it)."""
    inner = c.get("config", c)
    return inner if isinstance(inner, dict) else {}


def _to_transformers(c: Config) -> Config:
    text, vision = _tower(c["text_encoder"]), _tower(c["vision_encoder"])
    height, width, channels = vision["image_shape"]
    activations = {t.get("intermediate_activation", "quick_gelu") for t in (text, vision)}
    if height != width or text["embedding_dim"] != text["hidden_dim"] or not activations <= set(_ACTIVATIONS):
        raise UsageError(
            "This CLIPBackbone has no transformers CLIPModel counterpart",
            detail=f"image_shape {vision['image_shape']}, text embedding_dim {text['embedding_dim']} "
            f"hidden_dim {text['hidden_dim']}, intermediate_activation {sorted(activations)}",
            hint="transformers' CLIP takes square images, a text embedding as wide as its layers and an "
            f"intermediate_activation of {', '.join(_ACTIVATIONS)}",
        )

    def common(t: Config) -> Config:
        return {
            "hidden_size": t["hidden_dim"],
            "intermediate_size": t["intermediate_dim"],
            "num_hidden_layers": t["num_layers"],
            "num_attention_heads": t["num_heads"],
            "hidden_act": t.get("intermediate_activation", "quick_gelu"),
            "layer_norm_eps": 1e-5,
            "projection_dim": c["projection_dim"],
        }

    return {
        "model_type": "clip",
        "projection_dim": c["projection_dim"],
        "text_config": {
            **common(text),
            "model_type": "clip_text_model",
            "vocab_size": text["vocabulary_size"],
            "max_position_embeddings": text["max_sequence_length"],
            "bos_token_id": None,
            "pad_token_id": None,
            "eos_token_id": 2,  # transformers' argmax pooling: KerasHub's
        },
        "vision_config": {
            **common(vision),
            "model_type": "clip_vision_model",
            "image_size": height,
            "patch_size": vision["patch_size"],
            "num_channels": channels,
        },
    }


_MODULE = "keras_hub.src.models.clip"


def _encoder(class_name: str, file: str, config: Config) -> Config:
    """A tower as ``save_to_preset`` nests it in the backbone's config."""
    name = file.removeprefix("clip_")
    own = {"name": f"clip_{name}", "trainable": True, "dtype": policy("float32"), **config}
    own["intermediate_output_index"] = None
    registered = f"keras_hub>{class_name}"
    return {"module": f"{_MODULE}.{file}", "class_name": class_name, "config": own, "registered_name": registered}


def _checked_tower(c: Config, tower: Config, name: str) -> Config:
    """The Keras keys both encoders share, of a transformers tower config KerasHub's encoder can compute."""
    act, eps = tower.get("hidden_act", "quick_gelu"), tower.get("layer_norm_eps", 1e-5)
    if act not in _ACTIVATIONS or eps != 1e-5 or tower["hidden_size"] % tower["num_attention_heads"]:
        raise refuse(
            c,
            f"{name}.hidden_act {act}, {name}.layer_norm_eps {eps}, "
            f"{name}.hidden_size {tower['hidden_size']} over {tower['num_attention_heads']} heads",
            "KerasHub's CLIP encoders use layer norms of epsilon 1e-5, heads of hidden_size / num_attention_heads "
            f"and an activation of {', '.join(_ACTIVATIONS)}",
        )
    return {
        "hidden_dim": tower["hidden_size"],
        "num_layers": tower["num_hidden_layers"],
        "num_heads": tower["num_attention_heads"],
        "intermediate_dim": tower["intermediate_size"],
        "intermediate_activation": act,
    }


def _to_keras(c: Config) -> Config:
    text, vision = c.get("text_config") or {}, c.get("vision_config") or {}
    vocab, eos = text["vocab_size"], text.get("eos_token_id", 2)
    if eos not in (2, vocab - 1):  # argmax pools the end token only where it is the highest id
        raise refuse(
            c,
            f"text_config.eos_token_id {eos} (vocab_size {vocab})",
            "KerasHub's CLIP pools the text at its highest token id: the end token must be the last id "
            "(vocab_size - 1), or eos_token_id 2 (transformers' argmax rule)",
        )
    text_keys, vision_keys = _checked_tower(c, text, "text_config"), _checked_tower(c, vision, "vision_config")
    size, channels = vision.get("image_size", 224), vision.get("num_channels", 3)
    return {
        "vision_encoder": _encoder(
            "CLIPVisionEncoder",
            "clip_vision_encoder",
            {"patch_size": vision["patch_size"], **vision_keys, "image_shape": [size, size, channels]},
        ),
        "text_encoder": _encoder(
            "CLIPTextEncoder",
            "clip_text_encoder",
            {
                "vocabulary_size": vocab,
                "embedding_dim": text["hidden_size"],
                **text_keys,
                "max_sequence_length": text["max_position_embeddings"],
            },
        ),
        "projection_dim": c.get("projection_dim", 512),
    }


def _notes(c: Config) -> list[str]:
    return [
        "KerasHub's CLIP text encoder ends with a layer norm of epsilon 1e-6 (transformers': 1e-5): the text "
        "hidden states differ by about 1e-5",
        "KerasHub's CLIP pools the text at the highest token id (the end token)",
    ]


def _positions(keras: Config) -> tuple[int, ...]:
    """The vision embedding's ``position_ids``: one per patch and the class token."""
    vision = keras["vision_encoder"]["config"]
    return (1, (vision["image_shape"][0] // vision["patch_size"]) ** 2 + 1)


def _layer(stem: str) -> tuple[Entry, ...]:
    """One ``CLIPEncoderLayer`` under transformers' names of its tower's layer ``{i}``."""
    attention = tuple(
        Entry(f"attention/{k}_dense/vars/{v}", f"{stem}.self_attn.{k[0]}_proj.{p}", kind)
        for k in ("query", "key", "value")
        for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
    )
    return (
        *attention,
        Entry("attention/output_dense/vars/0", f"{stem}.self_attn.out_proj.weight", "heads_out"),
        Entry("attention/output_dense/vars/1", f"{stem}.self_attn.out_proj.bias"),
        *(Entry(f"layer_norm_{n}/vars/{v}", f"{stem}.layer_norm{n}.{p}") for n in (1, 2) for v, p in _NORM),
        *(
            Entry(f"dense_{n}/vars/{v}", f"{stem}.mlp.fc{n}.{p}", kind)
            for n in (1, 2)
            for v, p, kind in ((0, "weight", "dense"), (1, "bias", "same"))
        ),
    )


_NORM = ((0, "weight"), (1, "bias"))
_TEXT, _VISION = "layers/clip_text_encoder/layers", "layers/clip_vision_encoder/layers"


def _norm(path: str, name: str) -> tuple[Entry, ...]:
    return tuple(Entry(f"{path}/vars/{v}", f"{name}.{p}") for v, p in _NORM)


_ENTRIES: tuple[Entry, ...] = (
    Entry(
        f"{_TEXT}/token_and_position_embedding/token_embedding/vars/0", "text_model.embeddings.token_embedding.weight"
    ),
    Entry(
        f"{_TEXT}/token_and_position_embedding/position_embedding/vars/0",
        "text_model.embeddings.position_embedding.weight",
    ),
    *_norm(f"{_TEXT}/layer_normalization", "text_model.final_layer_norm"),
    Entry(f"{_VISION}/clip_vision_embedding/vars/0", "vision_model.embeddings.class_embedding"),
    # position_ids: transformers' buffer
    Entry(f"{_VISION}/clip_vision_embedding/vars/1", "", shape=_positions, arange=True),
    Entry(
        f"{_VISION}/clip_vision_embedding/patch_embedding/vars/0",
        "vision_model.embeddings.patch_embedding.weight",
        "conv2d",
    ),
    Entry(
        f"{_VISION}/clip_vision_embedding/position_embedding/vars/0",
        "vision_model.embeddings.position_embedding.weight",
    ),
    *_norm(f"{_VISION}/layer_normalization", "vision_model.pre_layrnorm"),
    *_norm(f"{_VISION}/layer_normalization_1", "vision_model.post_layernorm"),
    Entry("layers/dense/vars/0", "visual_projection.weight", "dense"),
    Entry("layers/dense_1/vars/0", "text_projection.weight", "dense"),
    Entry("layers/clip_head/vars/0", "logit_scale"),
    *_layer("text_model.encoder.layers.{i}"),
)


CLIP = Family(
    backbone="CLIPBackbone",
    model_type="clip",
    base_class="CLIPModel",
    base_prefix="clip",
    layer="clip_text_encoder/layers/clip_encoder_layer",
    entries=_ENTRIES,
    config=_to_transformers,
    scope="text_encoder/config",
    stacks=(
        Stack(
            "clip_vision_encoder/layers/clip_encoder_layer",
            _layer("vision_model.encoder.layers.{i}"),
            scope="vision_encoder/config",
        ),
    ),
    writing=Writing(_MODULE, _to_keras, (), notes=_notes),
)
