"""Gemma 3 with its vision tower: ``Gemma3Backbone`` with a ``Gemma3VisionEncoder`` <-> ``Gemma3Model``,
``Gemma3CausalLM`` <-> ``Gemma3ForConditionalGeneration`` (transformers ``gemma3``).

The language model is text-only Gemma 3's table under ``language_model.``; the vision encoder is a SigLIP ViT
(``vision_tower.``, without SigLIP's attention-pooling head, which Gemma 3 does not compute) and the projector
(``multi_modal_projector.``: average pooling, an RMS norm, one projection matrix kept in Keras' ``[in, out]``
order).  KerasHub pools ``pool_size`` patches a side; transformers derives its kernel from ``mm_tokens_per_image``.
transformers 5 saves the language model under its legacy ``language_model.model.`` names and reads both spellings.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.gemma import notes
from bridge.families.keras_hub.families.gemma3 import GEMMA3, keras_text, text_config
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, policy, refuse, require

_VISION = "layers/gemma3_vision_encoder/layers"
_BLOCK = f"{_VISION}/gemma3_vision_encoder_block"
_ENCODER_NAME = "gemma3_vision_encoder"


def _vision(c: Config) -> Config:
    """The nested ``Gemma3VisionEncoder``'s own config."""
    encoder: Any = c.get("vision_encoder") or {}
    inner = encoder.get("config", encoder)
    return inner if isinstance(inner, dict) else {}


def _multimodal(c: Config) -> bool:
    return c.get("vision_encoder") is not None


def _to_transformers(c: Config) -> Config:
    v = _vision(c)
    side = v["image_size"] // v["patch_size"]
    if side % v["pool_size"] or v["output_dim"] != c["hidden_dim"]:
        raise UsageError(
            "This Gemma3Backbone has no transformers Gemma3ForConditionalGeneration counterpart",
            detail=f"vision_encoder pool_size {v['pool_size']} over {side} patches a side, "
            f"output_dim {v['output_dim']} (hidden_dim {c['hidden_dim']})",
            hint="transformers pools a whole number of patches a side into the language model's width",
        )
    text = {k: v_ for k, v_ in text_config(c).items() if k != "tie_word_embeddings"}
    return {
        "model_type": "gemma3",
        "text_config": text,
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": v["hidden_dim"],
            "intermediate_size": v["intermediate_dim"],
            "num_hidden_layers": v["num_layers"],
            "num_attention_heads": v["num_heads"],
            "image_size": v["image_size"],
            "patch_size": v["patch_size"],
            "num_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
            "layer_norm_eps": v.get("layer_norm_epsilon", 1e-6),
            "vision_use_head": False,  # Gemma 3 reads the tower's last hidden state
        },
        "mm_tokens_per_image": (side // v["pool_size"]) ** 2,
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    require(c, (("tie_word_embeddings", True, "KerasHub Gemma 3's output projection is its embeddings"),))
    text, v = c.get("text_config") or {}, c.get("vision_config") or {}
    require(
        v,
        (
            ("hidden_act", "gelu_pytorch_tanh", "KerasHub's Gemma 3 vision MLP uses gelu(approximate=True)"),
            ("num_channels", 3, "KerasHub's Gemma 3 vision encoder takes RGB images"),
        ),
    )
    side = v["image_size"] // v["patch_size"]
    tokens = int(c.get("mm_tokens_per_image", 256))
    per_side = math.isqrt(tokens)
    if per_side * per_side != tokens or side % per_side:
        raise refuse(
            c,
            f"mm_tokens_per_image {tokens} over {side} patches a side",
            "KerasHub pools a square of whole patches: mm_tokens_per_image must be a square dividing the patch grid",
        )
    keras = keras_text({**text, "model_type": c.get("model_type")})
    encoder = {
        "name": _ENCODER_NAME,
        "trainable": True,
        "dtype": policy("float32"),
        "num_heads": v["num_attention_heads"],
        "hidden_dim": v["hidden_size"],
        "num_layers": v["num_hidden_layers"],
        "intermediate_dim": v["intermediate_size"],
        "output_dim": text["hidden_size"],
        "pool_size": side // per_side,
        "image_size": v["image_size"],
        "patch_size": v["patch_size"],
        "layer_norm_epsilon": v.get("layer_norm_eps", 1e-6),
    }
    keras["image_size"] = v["image_size"]
    keras["vision_encoder"] = {
        "module": "keras_hub.src.models.gemma3.gemma3_vision_encoder",
        "class_name": "Gemma3VisionEncoder",
        "config": encoder,
        "registered_name": "keras_hub>Gemma3VisionEncoder",
    }
    return keras


def language(entry: Entry) -> Entry:
    return Entry(entry.source, "language_model." + entry.target, entry.kind)


_NORM = ((0, "weight"), (1, "bias"))


def _dense(path: str, name: str) -> tuple[Entry, ...]:
    return (Entry(f"{path}/vars/0", f"{name}.weight", "dense"), Entry(f"{path}/vars/1", f"{name}.bias"))


_TOWER = "vision_tower.encoder.layers.{i}"
# one SigLIP ViT layer of KerasHub's Gemma vision towers (Gemma 3's, PaliGemma's) under ``vision_tower.``
VISION_LAYER = (
    *(
        e
        for k, t in (("query", "q"), ("key", "k"), ("value", "v"))
        for e in _dense(f"attn/{k}_proj", f"{_TOWER}.self_attn.{t}_proj")
    ),
    *_dense("attn/out_proj", f"{_TOWER}.self_attn.out_proj"),
    *(Entry(f"layer_norm_{n}/vars/{v}", f"{_TOWER}.layer_norm{n}.{p}") for n in (1, 2) for v, p in _NORM),
    *(e for n in (1, 2) for e in _dense(f"mlp_dense_{n}", f"{_TOWER}.mlp.fc{n}")),
)


def vision_tower(block: str) -> tuple[Entry, ...]:
    """A KerasHub Gemma vision tower's embeddings and final norm (``block``: its encoder's variable path) under
    transformers' SigLIP ``vision_tower.`` names."""
    return (
        *(Entry(f"{block}/encoder_layer_norm/vars/{v}", f"vision_tower.post_layernorm.{p}") for v, p in _NORM),
        Entry(
            f"{block}/vision_embeddings/patch_embedding/vars/0",
            "vision_tower.embeddings.patch_embedding.weight",
            "conv2d",
        ),
        Entry(f"{block}/vision_embeddings/patch_embedding/vars/1", "vision_tower.embeddings.patch_embedding.bias"),
        Entry(
            f"{block}/vision_embeddings/position_embedding/vars/0", "vision_tower.embeddings.position_embedding.weight"
        ),
    )


# transformers' SigLIP attention-pooling head, which the Gemma vision towers do not compute
UNKEPT_HEAD = ((r"vision_tower\.head\..*", "SigLIP's attention-pooling head, which the vision tower does not compute"),)

GEMMA3_VISION = Family(
    backbone="Gemma3Backbone",
    model_type="gemma3",
    base_class="Gemma3Model",
    base_prefix="model",
    layer="gemma3_decoder_block",
    entries=(
        *(language(e) for e in GEMMA3.entries),
        *vision_tower(_BLOCK),
        Entry(
            f"{_VISION}/gemma3_vision_output/vision_input_projection/vars/0",
            "multi_modal_projector.mm_input_projection_weight",
        ),
        Entry(
            f"{_VISION}/gemma3_vision_output/vision_soft_embedding_norm/vars/0",
            "multi_modal_projector.mm_soft_emb_norm.weight",
        ),
    ),
    stacks=(Stack(f"{_BLOCK.removeprefix('layers/')}/resblocks/gemma3_vision_encoder_layer", VISION_LAYER),),
    config=_to_transformers,
    claims=_multimodal,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"Gemma3CausalLM": "Gemma3ForConditionalGeneration"},
    generates=True,
    saved=((r"^language_model\.", "language_model.model."),),
    unkept=UNKEPT_HEAD,
    writing=Writing("keras_hub.src.models.gemma3", _to_keras, ("CausalLM",), notes=notes, tokenizer="Gemma3Tokenizer"),
)
