"""What the way back (PyTorch -> ``tf_model.h5``, :mod:`bridge.families.hf_tf.tf_back`) needs per family beyond the
forward rules: the head that saves the main layer's sublayer a second time, and the leaves the layer kind does not
tell (read in transformers 4.57's TF modeling code: which layers add their weight themselves)."""

from __future__ import annotations

import numpy as np

from bridge.core.packs import Fill
from bridge.families.hf_tf.data import BackFill
from bridge.families.hf_tf.data.vision import swin_relative_position_index

# model_type -> (head top layer, the main layer's sublayer it holds): a tied decoder's copy 4.57 saves
HEAD_COPIES: dict[str, tuple[tuple[str, str], ...]] = {
    **{t: (("lm_head", "embeddings"),) for t in ("camembert", "esm", "funnel", "longformer", "mpnet", "roberta",
                                                  "roberta-prelayernorm", "xlm-roberta")},
    **{t: (("cls", "embeddings"),) for t in ("deberta", "deberta-v2", "lxmert", "tapas")},
    **{t: (("mlm___cls", "embeddings"),) for t in ("layoutlm", "roformer")},
    **{t: (("generator_lm_head", "embeddings"),) for t in ("convbert", "electra")},
    **{t: (("pred_layer_._proj", "embeddings"),) for t in ("flaubert", "xlm")},
    "albert": (("predictions", "embeddings"),),
    "distilbert": (("vocab_projector", "embeddings"),),
    "xlnet": (("lm_loss", "word_embedding"),),
}  # fmt: skip

# model_type -> (regex over PyTorch names, TF leaf): GPT-2's Conv1D keeps `weight`, T5's layer norm adds `weight`
_CONV1D = (r".*\.(?:c_attn|c_fc|c_proj|q_attn)\.weight", "weight")
TF_LEAVES: dict[str, tuple[tuple[str, str], ...]] = {
    "gpt2": (_CONV1D,),
    # the composites proven with a GPT-2 decoder
    "encoder-decoder": (_CONV1D,),
    "vision-encoder-decoder": (_CONV1D,),
    "openai-gpt": (_CONV1D,),
    "t5": ((r".*layer_norm\.weight", "weight"), (r".*relative_attention_bias\.weight", "embeddings")),
    "mt5": ((r".*layer_norm\.weight", "weight"), (r".*relative_attention_bias\.weight", "embeddings")),
    # the word-embedding table a layer adds itself (`weight`) or a Keras Embedding (`embeddings`)
    "gptj": ((r"(?:transformer\.)?wte\.weight", "weight"),),
    "xlnet": ((r"(?:transformer\.)?word_embedding\.weight", "weight"),),
    "ctrl": ((r"(?:transformer\.)?w\.weight", "embeddings"),),
    "blip": ((r".*word_embeddings\.weight", "embeddings"),),
    "mpnet": ((r".*relative_attention_bias\.weight", "embeddings"),),
    "tapas": ((r".*token_type_embeddings_\d+\.weight", "embeddings"),),
    "layoutlmv3": ((r".*word_embeddings\.weight", "embeddings"),),
    "esm": ((r".*word_embeddings\.weight", "embeddings"),),
    "rembert": ((r".*predictions\.decoder\.weight", "weight"),),
    # NoNorm (the default `normalization_type`, the only one written back: BACK_CONSTRAINTS) adds `weight`, `bias`;
    # the MLM head's transform keeps a Keras LayerNormalization
    "mobilebert": (
        (r"(?:mobilebert\.)?(?:embeddings|encoder)\..*LayerNorm\.weight", "weight"),
        (r"cls\.predictions\.(?:decoder|dense)\.weight", "weight"),  # the MLM head's own variables
    ),
    "vit_mae": ((r"decoder\.decoder_embed\.weight", "kernel"),),  # a Dense named like a table
    "mistral": ((r".*embed_tokens\.weight", "embeddings"), (r".*norm\.weight", "weight")),
    "whisper": ((r".*embed_tokens\.weight", "embeddings"), (r".*embed_positions\.weight", "weight")),
    # variables the parent layer adds itself, named after the layer (`{module}`: its TF name, index included)
    "deberta": ((r".*rel_embeddings\.weight", "{module}.weight"),),
    "deberta-v2": ((r".*rel_embeddings\.weight", "{module}.weight"),),
    "convbert": ((r".*conv_attn_layer\.(?:depthwise|pointwise)\.weight", "{module}_kernel"),),
    "sam": (
        (r".*\.(?:iou_token|mask_tokens|no_mask_embed|not_a_point_embed|point_embed\.\d+)\.weight", "{module}.weight"),
        # its own channels-first layer norm (the neck's, the mask embedding's, the upscaling's) adds `weight`, `bias`;
        # the transformer layers' are Keras LayerNormalization (`gamma`, `beta`)
        (r".*(?:(?:neck|mask_embed)\.layer_norm\d|upscale_layer_norm)\.weight", "weight"),
        (r".*(?:(?:neck|mask_embed)\.layer_norm\d|upscale_layer_norm)\.bias", "bias"),
    ),
    # the decoder's RMS norms add `weight`; the LM head (a decoupled linear) adds `weight` as PyTorch's
    "idefics": (
        (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
        (r".*(?:input_layernorm|post_attention_layernorm)\.weight", "weight"),
        (r"(?:model\.)?norm\.weight", "weight"),
        (r"lm_head\.weight", "weight"),
    ),
    # TFAlbertMLMHead adds `decoder/bias` to the logits (PyTorch's `predictions.bias`, its decoder's tied bias)
    "albert": ((r"predictions\.bias", "decoder/bias"),),
}

# PyTorch classes whose TF class holds every part under its main layer, the parts its other classes hold as top
# layers (TFBlipModel's `blip/.../blip/vision_model`, TFBlipForConditionalGeneration's `vision_model`)
MAIN_ONLY = frozenset({"BlipModel"})

# model_type -> (top layer, config.json key of its sub-config): a composite's tower that PyTorch holds as a base model,
# which TF saves under its main layer (:attr:`Family.towers`)
TOWERS: dict[str, tuple[tuple[str, str], ...]] = {
    "encoder-decoder": (("encoder", "encoder"),),
    "vision-encoder-decoder": (("encoder", "encoder"),),
    "vision-text-dual-encoder": (("vision_model", "vision_config"), ("text_model", "text_config")),
}

# composite model_type -> (config key of a tower, the tower model_types whose way back the fixtures prove): a tower
# of another type could take a leaf of the wrong kind (a square kernel written untransposed), so it is refused by name
PROVEN_TOWERS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "encoder-decoder": (("encoder", ("bert",)), ("decoder", ("gpt2",))),
    "vision-encoder-decoder": (("encoder", ("vit",)), ("decoder", ("gpt2",))),
    "vision-text-dual-encoder": (("vision_config", ("vit",)), ("text_config", ("bert",))),
}

# model_type -> (TF path below the model scope, the TF path whose value it saves again): variables 4.57 saves that
# its forward never reads, written with the value 4.57's own PyTorch -> TF loader gives them (ALBERT's
# `predictions/bias`: PyTorch's `predictions.bias`, the one `predictions/decoder/bias` holds too)
UNREAD_COPIES: dict[str, tuple[tuple[str, str], ...]] = {
    "albert": (("predictions/bias", "predictions/decoder/bias"),),
}

# model_type -> (config.json key, its class default, the only value written back, why): a config whose layout the
# fixtures do not prove is refused by name on the way back (read as ever the other way)
BACK_CONSTRAINTS: dict[str, tuple[tuple[str, object, object, str], ...]] = {
    "mobilebert": (
        ("normalization_type", "no_norm", "no_norm", "its TF leaves are proven for NoNorm (`weight`, `bias`) only"),
    ),
}

# PyTorch class -> why its tf_model.h5 is not written: a variable the TF class builds and its forward reads that the
# PyTorch class has no value for (a value would be invented, never the one the TF model computed with)
NOT_WRITTEN: dict[str, str] = {
    **{
        f"Idefics{head}": "transformers 4.57's TFIdefics does not load even its own tf_model.h5: it reports the vision "
        "tower's encoder layers, the perceiver resampler and the additional embedding unexpected and leaves them "
        "random, so no file bridge writes (bit for bit 4.57's own) loads into the model it was saved from"
        for head in ("Model", "ForVisionText2Text")
    },
    **{
        f"Esm{head}": "TFEsm's embeddings always build and save `position_embeddings`, which a rotary ESM "
        "(position_embedding_type: rotary, the one proven) never reads and its PyTorch class lacks: its values would "
        "be invented"
        for head in ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification")
    },
    **{
        f"MPNet{head}": "TFMPNet's main layer always builds and saves a pooler, which this PyTorch class lacks: "
        "its values would be invented"
        for head in ("ForMaskedLM", "ForQuestionAnswering", "ForSequenceClassification", "ForTokenClassification")
    },
}


# model_type -> (regex over the TF layer path, replacement): 4.57's layer names that are not transformers' `_._N`
# list convention, read in its TF modeling code (BART's `layers.{i}` Keras names, CTRL's Sequential `ffn/0`)
_DOTTED = ((r"_\._(\d+)", r".\1"),)  # `name=f"layers.{i}"`: the index after a dot
TF_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    **{
        t: _DOTTED
        for t in (
            "bart",
            "blenderbot",
            "blenderbot-small",
            "led",
            "marian",
            "mbart",
            "pegasus",
            "opt",
            "xglm",
            "speech_to_text",
            "whisper",
            "mistral",
            "convnext",
            "convnextv2",
            "layoutlmv3",
            "segformer",
            "swin",
            "idefics",
            "resnet",
            "regnet",
            "mobilevit",
            "wav2vec2",
            "hubert",
        )
    },
    "ctrl": ((r"ffn_\._(\d+)", r"ffn/\1"),),  # a Keras Sequential's layers: `ffn/0`, `ffn/2`
    "lxmert": ((r"decoder_dict/", "decoder_dict."),),  # a dict of Dense layers named `decoder_dict.{key}`
    "vit_mae": ((r"decoder_layers_\._(\d+)", r"decoder_layers.\1"),),  # the decoder's `name=f"decoder_layers.{j}"`
    # the segmentation heads' `name=f"convs.{i}"` (and fpn_, lateral_), the PSP blocks' `name=f"{i}.1"` below
    # `psp_modules`; the encoder keeps `layer_._N`
    "data2vec-vision": ((r"convs_\._(\d+)", r"convs.\1"), (r"psp_modules_\._(\d+)_\._(\d+)", r"psp_modules/\1.\2")),
    # `name=f"text_projection.{i}"`, `name=f"group_projector.{i}"`
    "groupvit": ((r"(text_projection|visual_projection|group_projector)_\._(\d+)", r"\1.\2"),),
    "mobilebert": ((r"ffn_\._(\d+)", r"ffn.\1"),),  # the bottleneck's `name=f"ffn.{i}"`
    "swiftformer": ((r"patch_embedding_\._(\d+)", r"patch_embedding/\1"),),  # a Keras Sequential's layers
}


def _window_index_shape(table: tuple[int, ...]) -> tuple[int, ...]:
    """A relative position index's shape ``(w*w, w*w)`` from its bias table's ``((2w-1)**2, heads)``."""
    w = (round(table[0] ** 0.5) + 1) // 2
    return (w * w, w * w)


def _tied_kernel(table: str, kernel: str, scope: str, why: str) -> BackFill:
    """A decoder's Dense kernel 4.57 saves, the transposed word embeddings a tied PyTorch source stores once: the
    names with ``{scope}`` for the model scope (``scope`` the regex of the scopes it is saved under)."""
    return BackFill(
        table.format(scope=f"({scope})"),
        kernel.format(scope=r"\1"),
        lambda shape: shape[::-1],
        kernel.format(scope=f"({scope})"),
        why,
        Fill(owner=table.format(scope=r"\1"), transform="transpose"),
    )


def _tied_lm_head(scope: str, embeddings: str) -> BackFill:
    """The LM head's kernel, tied to the word embeddings."""
    return _tied_kernel(
        f"model/{{scope}}/model/{embeddings}/weight:0",
        "lm_head/{scope}/lm_head/kernel:0",
        scope,
        "the LM head's kernel, tied to the word embeddings that the PyTorch model stores once",
    )


_BLIP_TIED = "BLIP's text decoder's kernel, tied to its word embeddings that the PyTorch model stores once"


# model_type -> variables 4.57 saves that the PyTorch source holds no tensor for, computed beside a placed one
BACK_FILLS: dict[str, tuple[BackFill, ...]] = {
    "swin": (
        BackFill(
            r"(.*)/relative_position_bias_table:0",
            r"\1/relative_position_index:0",
            _window_index_shape,
            r".*/relative_position_index:0",
            "Swin's relative position index, a buffer PyTorch rebuilds from the window size",
            Fill(value=lambda shape: swin_relative_position_index(shape).astype(np.int32)),  # TF's int32
        ),
    ),
    "xglm": (_tied_lm_head("tfxglm_for_causal_lm", "embed_tokens"),),
    "blip": (
        _tied_kernel(
            "text_decoder/{scope}/text_decoder/bert/embeddings/word_embeddings/embeddings:0",
            "text_decoder/{scope}/text_decoder/cls/predictions/decoder/kernel:0",
            r"tf_blip_[a-z_]+",
            _BLIP_TIED,
        ),
        _tied_kernel(
            "bert/{scope}/bert/embeddings/word_embeddings/embeddings:0",
            "cls/{scope}/cls/predictions/decoder/kernel:0",
            "tf_blip_text_lm_head_model",
            _BLIP_TIED,
        ),
    ),
    "speech_to_text": (_tied_lm_head("tf_speech2_text_for_conditional_generation", "decoder/embed_tokens"),),
}
