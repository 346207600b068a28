"""CLIP: ``CLIPBackbone`` <-> ``CLIPModel``, two towers in one preset (``clip_text_encoder`` and
``clip_vision_encoder`` nested in the backbone's config and variables).

What changes the math, and how it is kept: KerasHub pools the text at the highest token id (``argmax``), which
transformers 5 does only for ``eos_token_id == 2`` (its legacy rule); the preset's transformers config says 2 so both
pool the same token for every input.  KerasHub's vision output is the post layer norm applied to every token
(transformers applies it to the class token alone); its text tower's final layer norm has epsilon 1e-6 where
transformers' one ``layer_norm_eps`` says 1e-5 (a difference below 1e-5 on the outputs, noted).  The vision
embedding's ``position_ids`` variable transformers rebuilds as a buffer (written 0..n-1 from transformers).
Written from transformers, a text tower whose end token is neither 2 nor the highest id is refused (KerasHub's argmax
would pool another token), as are layer norms of another epsilon than KerasHub's fixed 1e-5.  The towers may differ
in width, depth and head size (each counted and sized by its own nested config: ``scope``).
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, policy, position_ids, refuse

# KerasHub activations transformers computes alike under the same name (Keras' gelu: the exact form)
_ACTIVATIONS = ("quick_gelu", "gelu", "relu", "silu")


def _tower(c: Config) -> Config:
    """A nested encoder's own config (``{"class_name": ..., "config": {...}}`` as ``config.json`` holds it)."""
    inner = c.get("config", c)
    return inner if isinstance(inner, dict) else {}


def to_transformers(c: Config) -> Config:
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


def nested_encoder(module: str, class_name: str, name: str, config: Config) -> Config:
    """A tower as ``save_to_preset`` nests it in a dual-tower backbone's config (``module``: its module file)."""
    own = {"name": name, "trainable": True, "dtype": policy("float32"), **config}
    return {"module": module, "class_name": class_name, "config": own, "registered_name": f"keras_hub>{class_name}"}


def tower_keys(c: Config, tower: str, activations: Mapping[str, str], eps: float | None = None) -> Config:
    """The Keras keys both encoders of a dual-tower backbone share, from transformers' ``tower`` config (its
    ``hidden_act`` by ``activations``: transformers' name -> Keras'); refused where KerasHub cannot compute it
    (another activation, heads not of ``hidden_size / num_attention_heads``, a layer norm epsilon not ``eps``)."""
    t = c.get(tower) or {}
    act, norm = str(t.get("hidden_act")), t.get("layer_norm_eps", eps)
    if act not in activations or (eps is not None and norm != eps) or t["hidden_size"] % t["num_attention_heads"]:
        raise refuse(
            c,
            f"{tower}.hidden_act {act}, {tower}.layer_norm_eps {norm}, "
            f"{tower}.hidden_size {t['hidden_size']} over {t['num_attention_heads']} heads",
            f"KerasHub's encoders take heads of hidden_size / num_attention_heads, a hidden_act of "
            f"{', '.join(activations)}" + (f" and layer norms of epsilon {eps}" if eps is not None else ""),
        )
    return {
        "hidden_dim": t["hidden_size"],
        "num_layers": t["num_hidden_layers"],
        "num_heads": t["num_attention_heads"],
        "intermediate_dim": t["intermediate_size"],
        "intermediate_activation": activations[act],
    }


def to_keras(c: Config) -> Config:
    text, vision = c.get("text_config") or {}, c.get("vision_config") or {}
    vocab, eos = text["vocab_size"], text.get("eos_token_id", 2)
    if eos not in (2, vocab - 1):  # argmax pools the end token only where it is the highest id
        raise refuse(
            c,
            f"text_config.eos_token_id {eos} (vocab_size {vocab})",
            "KerasHub's CLIP pools the text at its highest token id: the end token must be the last id "
            "(vocab_size - 1), or eos_token_id 2 (transformers' argmax rule)",
        )
    same = {a: a for a in _ACTIVATIONS}
    text_keys, vision_keys = tower_keys(c, "text_config", same, 1e-5), tower_keys(c, "vision_config", same, 1e-5)
    size, channels = vision.get("image_size", 224), vision.get("num_channels", 3)
    return {
        "vision_encoder": nested_encoder(
            f"{_MODULE}.clip_vision_encoder",
            "CLIPVisionEncoder",
            "clip_vision_encoder",
            {
                "patch_size": vision["patch_size"],
                **vision_keys,
                "intermediate_output_index": None,
                "image_shape": [size, size, channels],
            },
        ),
        "text_encoder": nested_encoder(
            f"{_MODULE}.clip_text_encoder",
            "CLIPTextEncoder",
            "clip_text_encoder",
            {
                "vocabulary_size": vocab,
                "embedding_dim": text["hidden_size"],
                **text_keys,
                "intermediate_output_index": None,
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


def encoder_layer(
    stem: str, attention: str = "attention", norm: str = "layer_norm_{n}", mlp: str = "dense_{n}"
) -> tuple[Entry, ...]:
    """One pre-norm encoder layer (CLIP's, SigLIP's) under transformers' names of its tower's layer ``{i}``; the
    Keras names of its attention layer, its two norms and its two feed-forward layers (``{n}``: 1 or 2)."""
    projections = tuple(
        Entry(f"{attention}/{k}_dense/vars/{v}", f"{stem}.self_attn.{k[0]}_proj.{p}", kind)
        for k in ("query", "key", "value")
        for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
    )
    return (
        *projections,
        Entry(f"{attention}/output_dense/vars/0", f"{stem}.self_attn.out_proj.weight", "heads_out"),
        Entry(f"{attention}/output_dense/vars/1", f"{stem}.self_attn.out_proj.bias"),
        *(e for n in (1, 2) for e in norm_entries(norm.format(n=n), f"{stem}.layer_norm{n}")),
        *(e for n in (1, 2) for e in dense_entries(mlp.format(n=n), f"{stem}.mlp.fc{n}")),
    )


def dense_entries(path: str, name: str) -> tuple[Entry, ...]:
    """A Keras ``Dense`` with a bias as a torch ``Linear``."""
    return (Entry(f"{path}/vars/0", f"{name}.weight", "dense"), Entry(f"{path}/vars/1", f"{name}.bias"))


_NORM = ((0, "weight"), (1, "bias"))
_TEXT, _VISION = "layers/clip_text_encoder/layers", "layers/clip_vision_encoder/layers"


def norm_entries(path: str, name: str) -> tuple[Entry, ...]:
    return tuple(Entry(f"{path}/vars/{v}", f"{name}.{p}") for v, p in _NORM)


ENTRIES: tuple[Entry, ...] = (
    Entry(
        f"{_TEXT}/token_and_position_embedding/token_embedding/vars/0", "text_model.embeddings.token_embedding.weight"
    ),
    Entry(
        f"{_TEXT}/token_and_position_embedding/position_embedding/vars/0",
        "text_model.embeddings.position_embedding.weight",
    ),
    *norm_entries(f"{_TEXT}/layer_normalization", "text_model.final_layer_norm"),
    Entry(f"{_VISION}/clip_vision_embedding/vars/0", "vision_model.embeddings.class_embedding"),
    # position_ids: transformers' buffer
    Entry(f"{_VISION}/clip_vision_embedding/vars/1", "", shape=_positions, computed=position_ids),
    Entry(
        f"{_VISION}/clip_vision_embedding/patch_embedding/vars/0",
        "vision_model.embeddings.patch_embedding.weight",
        "conv2d",
    ),
    Entry(
        f"{_VISION}/clip_vision_embedding/position_embedding/vars/0",
        "vision_model.embeddings.position_embedding.weight",
    ),
    *norm_entries(f"{_VISION}/layer_normalization", "vision_model.pre_layrnorm"),
    *norm_entries(f"{_VISION}/layer_normalization_1", "vision_model.post_layernorm"),
    Entry("layers/dense/vars/0", "visual_projection.weight", "dense"),
    Entry("layers/dense_1/vars/0", "text_projection.weight", "dense"),
    Entry("layers/clip_head/vars/0", "logit_scale"),
    *encoder_layer("text_model.encoder.layers.{i}"),
)


CLIP = Family(
    backbone="CLIPBackbone",
    model_type="clip",
    base_class="CLIPModel",
    base_prefix="clip",
    layer="clip_text_encoder/layers/clip_encoder_layer",
    entries=ENTRIES,
    config=to_transformers,
    scope="text_encoder/config",
    stacks=(
        Stack(
            "clip_vision_encoder/layers/clip_encoder_layer",
            encoder_layer("vision_model.encoder.layers.{i}"),
            scope="vision_encoder/config",
        ),
    ),
    tokenizer="CLIPTokenizer",
    vocabulary="bpe",
    writing=Writing(
        _MODULE,
        to_keras,
        (),
        notes=_notes,
        tokenizer="CLIPTokenizer",
        tokenizer_config={"pad_with_end_token": False, "unsplittable_tokens": None},
    ),
)
