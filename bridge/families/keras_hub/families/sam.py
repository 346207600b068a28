"""SAM: ``SAMBackbone`` (a ``ViTDetBackbone`` image encoder, the prompt encoder, the mask decoder its
``SAMImageSegmenter`` runs) <-> transformers 5 ``SamModel``.

The image encoder is ViTDet's table (families/vit_det.py), flattened into the backbone's own layers.  The prompt
encoder's random Fourier features are one table on both sides (transformers ties its prompt encoder's to
``shared_image_embedding``); its point embeddings are background, foreground, the two box corners in
``point_embed.0-3``'s order.  KerasHub's two-way transformer norms with epsilon 1e-5 (the original SAM's), as
transformers' final norm does; transformers' block norms take ``mask_decoder_config.layer_norm_eps`` (its published
models 1e-6): only 1e-5 is written.  Transposed convolutions turn as convolutions do."""

from __future__ import annotations

from bridge.families.keras_hub.families.vit_det import VIT_DET, vit_det_entries, vit_det_keras_config
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require, scoped

_PROMPT = "layers/sam_prompt_encoder"
_DECODER = "mask_decoder"
_EPS = 1e-5  # KerasHub's two-way transformer norms


def _numbered(name: str, k: int) -> str:
    return f"{name}_{k}" if k else name


def _pair(source: str, target: str, kind: str = "dense") -> tuple[Entry, Entry]:
    return Entry(f"{source}/vars/0", f"{target}.weight", kind), Entry(f"{source}/vars/1", f"{target}.bias")


def _mlp(source: str, target: str, depth: int) -> tuple[Entry, ...]:
    """KerasHub's MLP (``dense``, ``dense_1``, ...) as transformers' ``SamFeedForward`` (proj_in, layers, proj_out)."""
    names = ["proj_in", *(f"layers.{k}" for k in range(depth - 2)), "proj_out"]
    return tuple(
        e for k, name in enumerate(names) for e in _pair(f"{source}/{_numbered('dense', k)}", f"{target}.{name}")
    )


def _attention(source: str, target: str) -> tuple[Entry, ...]:
    return tuple(
        e
        for k, t in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out"))
        for e in _pair(f"{source}/{k}_proj", f"{target}.{t}_proj")
    )


def _variant(keras: Config) -> tuple[Entry, ...]:
    encoder = scoped(keras, "image_encoder/config")
    decoder = scoped(keras, "mask_decoder/config")
    layers = tuple(
        Entry(
            e.source if "{i}" not in e.target else f"layers/{_numbered('windowed_transformer_encoder', i)}/{e.source}",
            e.target.format(i=i),
            e.kind,
        )
        for e in vit_det_entries()
        for i in (range(int(encoder["num_layers"])) if "{i}" in e.target else (0,))
    )
    prompt = (
        Entry(f"{_PROMPT}/positional_embedding_layer/vars/0", "shared_image_embedding.positional_embedding"),
        *(
            Entry(f"{_PROMPT}/{name}_embed/vars/0", f"prompt_encoder.point_embed.{k}.weight")
            for k, name in enumerate(("background_point", "foreground_point", "top_left_corner", "bottom_right_corner"))
        ),
        Entry(f"{_PROMPT}/not_a_point_embed/vars/0", "prompt_encoder.not_a_point_embed.weight"),
        Entry(f"{_PROMPT}/no_mask_embed/vars/0", "prompt_encoder.no_mask_embed.weight"),
        *(
            e
            for k in range(3)
            for e in _pair(
                f"{_PROMPT}/mask_downscaler/layers/{_numbered('conv2d', k)}",
                f"prompt_encoder.mask_embed.conv{k + 1}",
                "conv2d",
            )
        ),
        *(
            e
            for k in range(2)
            for e in _pair(
                f"{_PROMPT}/mask_downscaler/layers/{_numbered('layer_normalization', k)}",
                f"prompt_encoder.mask_embed.layer_norm{k + 1}",
                "same",
            )
        ),
    )
    two_way = f"{_DECODER}/transformer"
    blocks = tuple(
        e
        for i in range(int(decoder["num_layers"]))
        for block, stem in (
            (
                f"{two_way}/layers/{_numbered('two_way_multi_head_attention', i)}",
                f"mask_decoder.transformer.layers.{i}",
            ),
        )
        for e in (
            *_attention(f"{block}/self_attention", f"{stem}.self_attn"),
            *_attention(f"{block}/cross_attention_token_to_image", f"{stem}.cross_attn_token_to_image"),
            *_attention(f"{block}/cross_attention_image_to_token", f"{stem}.cross_attn_image_to_token"),
            *(e for n in (1, 2, 3, 4) for e in _pair(f"{block}/layer_norm{n}", f"{stem}.layer_norm{n}", "same")),
            *_pair(f"{block}/mlp_block/mlp_block/layers/dense", f"{stem}.mlp.lin1"),
            *_pair(f"{block}/mlp_block/mlp_block/layers/dense_1", f"{stem}.mlp.lin2"),
        )
    )
    masks = int(decoder["num_multimask_outputs"]) + 1
    head = (
        *_attention(f"{two_way}/final_attention_token_to_image", "mask_decoder.transformer.final_attn_token_to_image"),
        *_pair(f"{two_way}/final_layer_norm", "mask_decoder.transformer.layer_norm_final_attn", "same"),
        Entry(f"{_DECODER}/iou_token/vars/0", "mask_decoder.iou_token.weight"),
        Entry(f"{_DECODER}/mask_tokens/vars/0", "mask_decoder.mask_tokens.weight"),
        *_pair(f"{_DECODER}/output_upscaling/layers/conv2d_transpose", "mask_decoder.upscale_conv1", "conv2d"),
        *_pair(f"{_DECODER}/output_upscaling/layers/layer_normalization", "mask_decoder.upscale_layer_norm", "same"),
        *_pair(f"{_DECODER}/output_upscaling/layers/conv2d_transpose_1", "mask_decoder.upscale_conv2", "conv2d"),
        *(
            e
            for k in range(masks)
            for e in _mlp(
                f"{_DECODER}/output_hypernetworks_mlps/{_numbered('mlp', k)}/mlp_block/layers",
                f"mask_decoder.output_hypernetworks_mlps.{k}",
                3,
            )
        ),
        *_mlp(
            f"{_DECODER}/iou_prediction_head/mlp_block/layers",
            "mask_decoder.iou_prediction_head",
            int(decoder["iou_head_depth"]),
        ),
    )
    return layers + prompt + blocks + head


def _to_transformers(c: Config) -> Config:
    prompt, decoder = scoped(c, "prompt_encoder/config"), scoped(c, "mask_decoder/config")
    vision = {**VIT_DET.config(scoped(c, "image_encoder/config")), "num_pos_feats": prompt["hidden_size"] // 2}
    del vision["model_type"]
    return {
        "model_type": "sam",
        "vision_config": vision,
        "prompt_encoder_config": {
            "hidden_size": prompt["hidden_size"],
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "mask_input_channels": prompt["mask_in_channels"],
            "hidden_act": prompt.get("activation", "gelu"),
            "layer_norm_eps": 1e-6,
        },
        "mask_decoder_config": {
            "hidden_size": decoder["hidden_size"],
            "mlp_dim": decoder["intermediate_dim"],
            "num_hidden_layers": decoder["num_layers"],
            "num_attention_heads": decoder["num_heads"],
            "num_multimask_outputs": decoder["num_multimask_outputs"],
            "iou_head_depth": decoder["iou_head_depth"],
            "iou_head_hidden_dim": decoder["iou_head_hidden_dim"],
            "attention_downsample_rate": 2,
            "hidden_act": "relu",
            "layer_norm_eps": _EPS,
        },
    }


def _nested(module: str, name: str, registered: str, config: Config) -> Config:
    return {"module": module, "class_name": name, "config": config, "registered_name": f"keras_hub>{registered}"}


def _to_keras(c: Config) -> Config:
    vision, prompt, decoder = (
        c.get(k) or {} for k in ("vision_config", "prompt_encoder_config", "mask_decoder_config")
    )
    require(
        decoder,
        (
            ("layer_norm_eps", _EPS, "KerasHub's two-way transformer norms with epsilon 1e-5"),
            ("attention_downsample_rate", 2, "KerasHub's cross attention halves its width"),
            ("hidden_act", "relu", "KerasHub's two-way MLP is ReLU"),
        ),
    )
    require(prompt, (("layer_norm_eps", 1e-6, "KerasHub's mask downscaler norms with epsilon 1e-6"),))
    hidden = prompt.get("hidden_size", 256)
    if vision.get("num_pos_feats", 128) * 2 != hidden:
        raise refuse(
            c,
            f"vision_config.num_pos_feats {vision.get('num_pos_feats')}",
            "KerasHub's Fourier features are half the prompt width",
        )
    encoder = vit_det_keras_config(vision)
    size = encoder["image_shape"][0]
    grid = size // encoder["patch_size"]
    return {
        "image_encoder": _nested(
            "keras_hub.src.models.vit_det.vit_det_backbone", "ViTDetBackbone", "ViTDetBackbone", encoder
        ),
        "prompt_encoder": _nested(
            "keras_hub.src.models.sam.sam_prompt_encoder",
            "SAMPromptEncoder",
            "SAMPromptEncoder",
            {
                "hidden_size": hidden,
                "image_embedding_size": [grid, grid],
                "input_image_size": [size, size],
                "mask_in_channels": prompt.get("mask_input_channels", 16),
                "activation": prompt.get("hidden_act", "gelu"),
            },
        ),
        "mask_decoder": _nested(
            "keras_hub.src.models.sam.sam_mask_decoder",
            "SAMMaskDecoder",
            "SAMMaskDecoder",
            {
                "hidden_size": decoder.get("hidden_size", 256),
                "num_layers": decoder.get("num_hidden_layers", 2),
                "intermediate_dim": decoder.get("mlp_dim", 2048),
                "num_heads": decoder.get("num_attention_heads", 8),
                "embedding_dim": decoder.get("hidden_size", 256),
                "num_multimask_outputs": decoder.get("num_multimask_outputs", 3),
                "iou_head_depth": decoder.get("iou_head_depth", 3),
                "iou_head_hidden_dim": decoder.get("iou_head_hidden_dim", 256),
                "activation": "gelu",
            },
        ),
    }


SAM = Family(
    backbone="SAMBackbone",
    model_type="sam",
    base_class="SamModel",
    base_prefix="sam",  # SamModel's own names carry none
    layer="windowed_transformer_encoder",  # unused: every variable is spelled out by the variant
    entries=(),
    config=_to_transformers,
    tasks={"SAMImageSegmenter": "SamModel"},
    writing=Writing(
        "keras_hub.src.models.sam",
        _to_keras,
        ("ImageSegmenter",),
        task_configs={"SAMImageSegmenter": lambda c: {}},
        files={"SAMBackbone": "sam_backbone", "SAMImageSegmenter": "sam_image_segmenter"},
    ),
    variant=_variant,
    saved_names=True,
    normalizes_images=VIT_DET.normalizes_images,
)
