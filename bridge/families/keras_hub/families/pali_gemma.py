"""PaliGemma: ``PaliGemmaBackbone`` <-> ``PaliGemmaModel``, ``PaliGemmaCausalLM`` <->
``PaliGemmaForConditionalGeneration`` (transformers ``paligemma``).

The language model is Gemma 1's table under ``language_model.`` (transformers 5 saves it as ``language_model.model.``
and reads both spellings); the vision tower is the SigLIP ViT Gemma 3 shares (``vision_tower.``, without SigLIP's
attention-pooling head), projected by one linear layer (``multi_modal_projector.linear``).  KerasHub takes the image
and the token ids apart and puts the image embeddings first; transformers takes one sequence in which
``image_token_index`` marks the image's places (an id at or past ``vocab_size`` is looked up as 0, then replaced):
a preset's vocabulary keeps every transformers row and the image token is the first id past it.  Both attend
bidirectionally over the image and the prompt (KerasHub: ``response_mask`` 0; transformers: ``token_type_ids`` 0).
"""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.families.gemma import GEMMA, is_gemma1, notes
from bridge.families.keras_hub.families.gemma import to_keras as gemma_keras
from bridge.families.keras_hub.families.gemma import to_transformers as gemma_transformers
from bridge.families.keras_hub.families.gemma3_vision import UNKEPT_HEAD, VISION_LAYER, language, vision_tower
from bridge.families.keras_hub.table import Config, Entry, Family, Stack, Writing, refuse, require

_VIT = "layers/pali_gemma_vit/layers"
_ENCODER = f"{_VIT}/pali_gemma_vit_encoder"


def _to_transformers(c: Config) -> Config:
    if not is_gemma1(c) or c.get("vit_pooling") or c.get("vit_classifier_activation"):
        raise UsageError(
            "This PaliGemmaBackbone has no transformers PaliGemmaForConditionalGeneration counterpart here",
            detail="a Gemma 2 language model (PaliGemma 2), a pooled vision output or a projector activation",
            hint="bridge converts PaliGemma 1 backbones: a Gemma 1 language model and the vision tower's every patch",
        )
    text = gemma_transformers(c)
    vocab = c["vocabulary_size"]
    return {
        "model_type": "paligemma",
        "text_config": {**text, "model_type": "gemma", "vocab_size": vocab},
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": c["vit_hidden_dim"],
            "intermediate_size": c["vit_intermediate_dim"],
            "num_hidden_layers": c["vit_num_layers"],
            "num_attention_heads": c["vit_num_heads"],
            "image_size": c["image_size"],
            "patch_size": c["vit_patch_size"],
            "num_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
            "layer_norm_eps": 1e-6,
            "vision_use_head": False,  # PaliGemma reads the tower's every patch
        },
        "image_token_index": vocab,  # past the vocabulary: never a row of the embeddings
        "projection_dim": c["hidden_dim"],
        "tie_word_embeddings": True,
    }


def _to_keras(c: Config) -> Config:
    text, v = c.get("text_config") or {}, c.get("vision_config") or {}
    require(text, (("model_type", "gemma", "KerasHub's PaliGemma is converted with a Gemma 1 language model"),))
    require(
        v,
        (
            ("hidden_act", "gelu_pytorch_tanh", "KerasHub's PaliGemma vision MLP uses gelu(approximate=True)"),
            ("num_channels", 3, "KerasHub's PaliGemma vision tower takes RGB images"),
            ("layer_norm_eps", 1e-6, "KerasHub's PaliGemma vision layer norms have epsilon 1e-6"),
        ),
    )
    if c.get("projection_dim", text["hidden_size"]) != text["hidden_size"]:
        raise refuse(c, f"projection_dim {c['projection_dim']}", "the projector must map into the text width")
    keras = gemma_keras({**text, "tie_word_embeddings": c.get("tie_word_embeddings", True)})
    for key in ("use_post_ffw_norm", "use_post_attention_norm", "final_logit_soft_cap", "attention_logit_soft_cap"):
        keras.pop(key)
    keras.pop("sliding_window_size"), keras.pop("use_sliding_window_attention")
    return {
        **keras,
        "image_size": v["image_size"],
        "vit_patch_size": v["patch_size"],
        "vit_num_heads": v["num_attention_heads"],
        "vit_hidden_dim": v["hidden_size"],
        "vit_num_layers": v["num_hidden_layers"],
        "vit_intermediate_dim": v["intermediate_size"],
        "vit_pooling": None,
        "vit_classifier_activation": None,
        "vit_name": None,
    }


PALI_GEMMA = Family(
    backbone="PaliGemmaBackbone",
    model_type="paligemma",
    base_class="PaliGemmaModel",
    base_prefix="model",
    layer="pali_gemma_decoder_block",
    entries=(
        *(language(e) for e in GEMMA.entries),
        *vision_tower(_ENCODER),
        Entry(f"{_VIT}/dense/vars/0", "multi_modal_projector.linear.weight", "dense"),
        Entry(f"{_VIT}/dense/vars/1", "multi_modal_projector.linear.bias"),
    ),
    stacks=(Stack(f"{_ENCODER.removeprefix('layers/')}/resblocks/pali_gemma_vit_encoder_block", VISION_LAYER),),
    config=_to_transformers,
    tokenizer="GemmaTokenizer",
    vocabulary="sentencepiece",
    tasks={"PaliGemmaCausalLM": "PaliGemmaForConditionalGeneration"},
    generates=True,
    saved=((r"^language_model\.", "language_model.model."),),
    unkept=UNKEPT_HEAD,
    writing=Writing(
        "keras_hub.src.models.pali_gemma", _to_keras, ("CausalLM",), notes=notes, tokenizer="PaliGemmaTokenizer"
    ),
)
