"""Vision and audio models of transformers' TF layout.

What differs from the generic rules: convolution kernels are ``[kh, kw, in, out]`` (Conv1D ``[k, in, out]``) in TF
and ``[out, in, kh, kw]`` in PyTorch, a permutation (a grouped or depthwise kernel too: TF's ``Conv2D(groups=g)``
stores ``[kh, kw, in/g, out]``, PyTorch ``[out, in/g, kh, kw]``; batch norm's statistics and step counter are
generic, :mod:`bridge.families.hf_tf.generic_pack`); learned tokens and tables are variables named as the PyTorch
parameters (``cls_token``, ``relative_position_bias_table``); transformers 5 renamed the attention and MLP
modules of ViT, DeiT and Swin (``attention.attention.query`` -> ``attention.q_proj``) and dropped the tower prefix
of CLIP's one-tower classes.
"""

from __future__ import annotations

import numpy as np

from bridge.families.hf_tf.data import Family

_CONV2D = "permute(3,2,0,1)"  # [kh, kw, in, out] -> [out, in, kh, kw]
_CONV1D = "permute(2,1,0)"  # [k, in, out] -> [out, in, k]
_TOKENS = (r"(cls_token|distillation_token|mask_token|position_embeddings)", "{}", "identity")
_VIT_RULES = (_TOKENS, (r"(projection)/kernel", "{}.weight", _CONV2D))


# transformers 5's names for ViT/DeiT/Swin layers (its conversion_mapping.py renames 4.x checkpoints the same way)
# (ViT's self-attention module is `attention.attention`, Swin's `attention.self`: one each, so that the way back,
# which undoes the renames, writes the family's own name)
def _attention_5(inner: str) -> tuple[tuple[str, str, str], ...]:
    return (
        *((".*", rf"\.attention\.{inner}\.{x}\.", f".attention.{x[0]}_proj.") for x in ("query", "key", "value")),
        (".*", r"\.attention\.output\.dense\.", ".attention.o_proj."),
        (".*", r"\.intermediate\.dense\.", ".mlp.fc1."),
        (".*", r"\.output\.dense\.", ".mlp.fc2."),
    )


_VIT_5 = ((".*", r"(^|\.)encoder\.layer\.", r"\1layers."), *_attention_5("attention"))
_SWIN_5 = (
    (".*", r"\.attention\.self\.relative_position_bias_table$",
     ".attention.relative_position_bias.relative_position_bias_table"),
    *_attention_5("self"),
)  # fmt: skip

# transformers 5's SegFormer: stages of blocks, and the attention and MLP names of ViT (its conversion_mapping.py)
_SEGFORMER_5 = (
    (".*", r"\.encoder\.patch_embeddings\.(\d+)\.", r".stages.\1.patch_embeddings."),
    (".*", r"\.encoder\.block\.(\d+)\.", r".stages.\1.blocks."),
    (".*", r"\.encoder\.layer_norm\.(\d+)\.", r".stages.\1.layer_norm."),
    (".*", r"\.attention\.self\.query\.", ".attention.q_proj."),
    (".*", r"\.attention\.self\.key\.", ".attention.k_proj."),
    (".*", r"\.attention\.self\.value\.", ".attention.v_proj."),
    (".*", r"\.attention\.self\.sr\.", ".attention.sequence_reduction.sequence_reduction."),
    (".*", r"\.attention\.self\.layer_norm\.", ".attention.sequence_reduction.layer_norm."),
    (".*", r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (".*", r"\.mlp\.dense([12])\.", r".mlp.fc\1."),
    (".*", r"\.layer_norm_1\.", ".layernorm_before."),
    (".*", r"\.layer_norm_2\.", ".layernorm_after."),
    (".*", r"^decode_head\.linear_c\.", "decode_head.linear_projections."),
)

# transformers 5's Data2VecVision segmentation heads: BEiT's conv modules (its conversion_mapping.py
# "BeitForSemanticSegmentation"), in order: the PSP blocks are renamed after their conv/bn
_DATA2VEC_VISION_5 = (
    (".*", r"\.bn\.", ".normalization."),
    (".*", r"\.conv\.weight$", ".convolution.weight"),
    (".*", r"^decode_head\.bottleneck\.", "decode_head.psp_bottleneck."),
    (".*", r"^decode_head\.psp_modules\.(\d+)\.1\.", r"decode_head.psp_modules.blocks.\1.conv."),
)

# the leaves of a biased layer or batch norm, TF -> PyTorch, for rules that spell the layer out
_NORM_LEAVES = (
    ("bias", "bias"),
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)


def swin_relative_position_index(shape: tuple[int, ...]) -> np.ndarray:
    """Swin's ``relative_position_index`` for a window of ``w x w`` (shape ``(w*w, w*w)``), as both frameworks
    compute it: for each pair of window positions, their row and column offsets, as one index into the table."""
    w = int(round(shape[0] ** 0.5)) if shape else 0
    if len(shape) != 2 or shape[0] != shape[1] or w * w != shape[0]:
        return np.zeros(0, dtype=np.int64)
    coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
    return (rel[..., 0] * (2 * w - 1) + rel[..., 1]).astype(np.int64)


# a vision-text dual encoder's towers are base models: TF names them under their main layer (`vision_model/vit/...`,
# `text_model/bert/...`), PyTorch not; its ViT tower takes transformers 5's ViT names, only there (a BERT tower
# keeps `encoder.layer.N.attention.self.query`)
_TOWERS_ALONE = (".*", r"^(vision_model|text_model)\.[^.]+\.", r"\1.")
_VISION_TOWER_5 = (
    (".*", r"^vision_model\.encoder\.layer\.", "vision_model.layers."),
    *((".*", rf"^(vision_model\.layers\.\d+)\.{tf}\.", rf"\1.{pt}.")
      for tf, pt in ((r"attention\.attention\.query", "attention.q_proj"),
                     (r"attention\.attention\.key", "attention.k_proj"),
                     (r"attention\.attention\.value", "attention.v_proj"),
                     (r"attention\.output\.dense", "attention.o_proj"),
                     (r"intermediate\.dense", "mlp.fc1"),
                     (r"output\.dense", "mlp.fc2"))),
)  # fmt: skip


FAMILIES = (
    Family(
        "vit",
        "vit",
        ("ViTModel", "ViTForImageClassification"),
        heads=("classifier",),
        rules=_VIT_RULES,
        renames=_VIT_5,
    ),
    Family(
        "deit",
        "deit",
        ("DeiTModel", "DeiTForImageClassification", "DeiTForImageClassificationWithTeacher",
         "DeiTForMaskedImageModeling"),
        heads=("classifier", "cls_classifier", "distillation_classifier", "decoder"),
        # the masked-image-modeling decoder is a Sequential (Conv2d, PixelShuffle): its conv is ``decoder.0``
        rules=(_TOKENS, (r"(projection|0)/kernel", "{}.weight", _CONV2D)),
        renames=_VIT_5,
    ),
    Family(
        "convnext",
        "convnext",
        ("ConvNextModel", "ConvNextForImageClassification"),
        heads=("classifier",),
        # dwconv is a depthwise Conv2D(groups=channels): [7, 7, 1, c] -> [c, 1, 7, 7], the same permutation
        rules=(
            (r"(layer_scale_parameter)", "{}", "identity"),
            (r"(patch_embeddings|dwconv|downsampling_layer\.1)/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "resnet",
        "resnet",
        ("ResNetModel", "ResNetForImageClassification"),
        heads=("classifier.1",),  # PyTorch's classifier is Sequential(Flatten, Linear)
        rules=(
            (r"(convolution)/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "swin",
        "swin",
        ("SwinModel", "SwinForImageClassification", "SwinForMaskedImageModeling"),
        heads=("classifier", "decoder"),
        rules=(
            _TOKENS,
            (r"(relative_position_bias_table)", "{}", "identity"),
            (r"(projection|0)/kernel", "{}.weight", _CONV2D),
        ),
        renames=_SWIN_5,
        buffers=(
            (r"/relative_position_index:0$", "Swin's relative position index, rebuilt from the window size",
             swin_relative_position_index),
        ),
    ),
    Family(
        "clip",
        "clip",
        ("CLIPModel", "CLIPTextModel", "CLIPVisionModel"),
        rules=(
            (r"(class_embedding)", "{}", "identity"),
            (r"(patch_embedding)/kernel", "{}.weight", _CONV2D),
            (r"(logit_scale)", "{}", "squeeze(0)"),  # TF stores the scalar as [1]
        ),
        # transformers 5's one-tower classes hold the tower itself (4.x: text_model., vision_model.)
        renames=(
            ("CLIPTextModel", r"^clip\.text_model\.", ""),
            ("CLIPVisionModel", r"^clip\.vision_model\.", ""),
        ),
        also=("clip_text_model", "clip_vision_model"),  # the one-tower classes' config.json (CLIPTextConfig...)
    ),
    Family(
        "wav2vec2",
        "wav2vec2",
        ("Wav2Vec2Model", "Wav2Vec2ForCTC", "Wav2Vec2ForSequenceClassification"),
        heads=("lm_head", "projector", "classifier"),
        rules=(
            (r"(masked_spec_embed)", "{}", "identity"),
            (r"(conv)/kernel", "{}.weight", _CONV1D),
            # the weight-normed positional conv: torch's parametrizations (g: [1, 1, k] stored [k, 1, 1]; v as is)
            (r"(conv)/weight_g", "{}.parametrizations.weight.original0", _CONV1D),
            (r"(conv)/weight_v", "{}.parametrizations.weight.original1", "identity"),
        ),
    ),
    Family(
        "segformer",
        "segformer",
        ("SegformerModel", "SegformerForImageClassification", "SegformerForSemanticSegmentation"),
        heads=("classifier", "decode_head"),
        # patch embeddings, attention reduction, the depthwise MLP conv and the decode head's 1x1 convolutions;
        # the decode head's `linear_c.N/proj` and the image classifier (a top layer: no path prefix) are Dense
        rules=(
            (r"((?<=patch_embeddings\.\d/)proj|sr|dwconv|linear_fuse|classifier)/kernel", "{}.weight", _CONV2D),
        ),
        renames=_SEGFORMER_5,
    ),
    Family(
        "regnet",
        "regnet",
        ("RegNetModel", "RegNetForImageClassification"),
        heads=("classifier.1",),  # PyTorch's classifier is Sequential(Flatten, Linear)
        rules=(
            # the squeeze-and-excitation block's 1x1 convolutions are `attention.0` and `attention.2`
            (r"(convolution|attention\.[02])/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "hubert",
        "hubert",
        ("HubertModel", "HubertForCTC"),
        heads=("lm_head",),
        rules=(
            (r"(masked_spec_embed)", "{}", "identity"),
            (r"(conv)/kernel", "{}.weight", _CONV1D),
            (r"(conv)/weight_g", "{}.parametrizations.weight.original0", _CONV1D),
            (r"(conv)/weight_v", "{}.parametrizations.weight.original1", "identity"),
        ),
    ),
    Family(
        "convnextv2",
        "convnextv2",
        ("ConvNextV2Model", "ConvNextV2ForImageClassification"),
        heads=("classifier",),
        rules=((r"(patch_embeddings|dwconv|downsampling_layer\.1)/kernel", "{}.weight", _CONV2D),),
    ),
    Family(
        "data2vec-vision",
        "data2vec_vision",
        ("Data2VecVisionModel", "Data2VecVisionForImageClassification", "Data2VecVisionForSemanticSegmentation"),
        heads=("classifier", "decode_head", "auxiliary_head", "fpn1.0", "fpn1.1", "fpn1.3", "fpn2.0"),
        rules=(
            _TOKENS,
            # layer scales sit right below the indexed layer (`layer_._0/lambda_1`), where no generic path reaches
            (r"layer_\._(\d+)/(lambda_[12])", "layer.{}.{}", "identity"),
            (r"(relative_position_bias_table)", "{}", "identity"),
            (r"(projection|conv|classifier)/kernel", "{}.weight", _CONV2D),
            # the top layers fpn1.0, fpn1.3, fpn2.0 are ConvTranspose2d: TF [kh, kw, out, in] -> [in, out, kh, kw]
            (r"(?<=fpn\d\.\d/)kernel", "weight", _CONV2D),
        ),
        renames=_DATA2VEC_VISION_5,
    ),
    Family(
        "mobilevit",
        "mobilevit",
        ("MobileViTModel", "MobileViTForImageClassification", "MobileViTForSemanticSegmentation"),
        heads=("classifier", "segmentation_head"),
        rules=(
            (r"(convolution)/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "vit_mae",
        "vit",
        ("ViTMAEModel", "ViTMAEForPreTraining"),
        heads=("decoder",),
        rules=(
            _TOKENS,
            (r"(decoder_pos_embed)", "{}", "identity"),
            (r"(projection)/kernel", "{}.weight", _CONV2D),
        ),
        renames=_VIT_5,
    ),
    Family(
        "swiftformer",
        "swiftformer",
        ("SwiftFormerModel", "SwiftFormerForImageClassification"),
        heads=("norm", "head", "dist_head"),
        rules=(
            # right below an indexed layer (`network_._1/proj`, `blocks_._0/layer_scale_1`), where no generic path
            # reaches; layer scales are [c] in TF, [c, 1, 1] in PyTorch
            (r"network_\._(\d+)/blocks_\._(\d+)/(layer_scale_[12])", "network.{}.blocks.{}.{}",
             "unsqueeze(1)|unsqueeze(2)"),
            (r"network_\._(\d+)/(proj)/kernel", "network.{}.{}.weight", _CONV2D),
            *((rf"network_\._(\d+)/(proj|norm)/{tf}", f"network.{{}}.{{}}.{pt}", "identity")
              for tf, pt in _NORM_LEAVES),
            (r"(layer_scale)", "{}", "unsqueeze(1)|unsqueeze(2)"),
            (r"(w_g)", "{}", "identity"),
            # the other kernels but the attention's Dense layers (attn/proj, to_query, to_key, final) are Conv2D
            (r"(fc[12]|depth_wise_conv|point_wise_conv[12]|(?<=patch_embedding/)\d)/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "groupvit",
        "groupvit",
        ("GroupViTModel", "GroupViTTextModel", "GroupViTVisionModel"),
        rules=(
            # a stage's group tokens sit right below the indexed stage (`stages_._0/group_token`)
            (r"stages_\._(\d+)/(group_token)", "stages.{}.{}", "identity"),
            (r"(position_embeddings)", "{}", "identity"),
            (r"(projection)/kernel", "{}.weight", _CONV2D),
            (r"(logit_scale)", "{}", "squeeze(0)"),  # TF stores the scalar as [1]
        ),
        also=("groupvit_text_model", "groupvit_vision_model"),  # the one-tower classes' config.json
    ),
    Family(
        "layoutlmv3",
        "layoutlmv3",
        ("LayoutLMv3Model", "LayoutLMv3ForQuestionAnswering", "LayoutLMv3ForSequenceClassification",
         "LayoutLMv3ForTokenClassification"),
        heads=("qa_outputs", "classifier"),
        rules=(
            (r"(cls_token|pos_embed)", "{}", "identity"),
            (r"(patch_embed/proj)/kernel", "{}.weight", _CONV2D),
        ),
    ),
    Family(
        "lxmert",
        "lxmert",
        ("LxmertModel", "LxmertForPreTraining"),
        heads=("cls", "obj_predict_head", "answer_head"),
        # the answer head's Sequential saves its layers' variables right below the index (`logit_fc_._0/kernel`)
        rules=(
            (r"(logit_fc)_\._(\d+)/kernel", "{}.{}.weight", "transpose"),
            *((rf"(logit_fc)_\._(\d+)/{tf}", f"{{}}.{{}}.{pt}", "identity") for tf, pt in _NORM_LEAVES),
        ),
    ),
    Family(
        "blip",
        "blip",
        ("BlipModel", "BlipForConditionalGeneration", "BlipForQuestionAnswering", "BlipForImageTextRetrieval",
         "BlipVisionModel", "BlipTextModel", "BlipTextLMHeadModel"),
        # BLIP's task classes hold their towers as top layers (no `blip` main layer), the one-tower classes their
        # parts: each is a top layer named as in PyTorch
        heads=("vision_model", "text_encoder", "text_decoder", "itm_head", "vision_proj", "text_proj",
               "embeddings", "encoder", "post_layernorm", "pooler", "bert", "cls"),
        rules=(
            (r"(class_embedding|position_embedding)", "{}", "identity"),
            (r"(patch_embedding)/kernel", "{}.weight", _CONV2D),
            (r"(logit_scale)", "{}", "identity"),
        ),
        also=("blip_text_model", "blip_vision_model"),  # the one-tower classes' config.json (their sub-configs)
    ),
    # round 3
    Family(
        "sam",
        "sam",
        ("SamModel", "SamVisionModel"),
        # SAM's classes hold their parts as top layers (no `sam` main layer), named as in PyTorch
        heads=("vision_encoder", "prompt_encoder", "mask_decoder", "shared_image_embedding"),
        rules=(
            (r"(pos_embed|rel_pos_h|rel_pos_w|positional_embedding)", "{}", "identity"),
            # embeddings saved as one variable each, named after the PyTorch Embedding (`iou_token.weight:0`)
            (r"(iou_token|mask_tokens|no_mask_embed|not_a_point_embed)\.weight", "{}.weight", "identity"),
            (r"point_embed_\._(\d+)\.weight", "point_embed.{}.weight", "identity"),
            # the neck's and the mask embedding's Conv2D, the mask decoder's Conv2DTranspose ([kh, kw, out, in] ->
            # [in, out, kh, kw]: the same permutation)
            (r"(projection|conv[123]|upscale_conv[12])/kernel", "{}.weight", _CONV2D),
        ),
        unscoped_copies=(
            (r"prompt_encoder/tf_sam_model/shared_image_embedding/positional_embedding:0",
             "shared_image_embedding/tf_sam_model/shared_image_embedding/positional_embedding:0",
             "the prompt encoder's reference to the shared positional embedding: the same variable, stored once"),
        ),
        also=("sam_vision_model",),  # TFSamVisionModel's config.json (SamVisionConfig)
    ),
    # two towers of other families and their projections: proven with a ViT vision tower and a BERT text tower;
    # the rules are those of these families, so another pair's names the target lacks are gaps in the plan
    Family(
        "vision-text-dual-encoder",
        "vision_text_dual_encoder",
        ("VisionTextDualEncoderModel",),
        # the towers and projections are top layers named as in PyTorch (no main layer)
        heads=("vision_model", "text_model", "visual_projection", "text_projection"),
        rules=_VIT_RULES,
        renames=(_TOWERS_ALONE, *_VISION_TOWER_5),
        # the model's own weight, saved under Keras' `top_level_model_weights` (TF stores the scalar as [1])
        unscoped=((r"top_level_model_weights/tf_vision_text_dual_encoder_model/logit_scale:0", "logit_scale",
                   "squeeze(0)"),),
    ),
    Family(
        "idefics",
        "model",
        ("IdeficsModel", "IdeficsForVisionText2Text"),
        heads=("lm_head",),
        rules=(
            # the cross attention's gates, the resampler's latents, the vision tower's class token: as in PyTorch
            (r"(alpha_cross_attn|alpha_dense|latents|class_embedding)", "{}", "identity"),
            (r"(patch_embedding)/kernel", "{}.weight", _CONV2D),
        ),
    ),
)  # fmt: skip
