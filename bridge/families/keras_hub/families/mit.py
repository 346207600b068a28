"""SegFormer's encoder: ``MiTBackbone`` (Mix Transformer) <-> ``SegformerModel`` (overlapping patch convolutions,
attention with a strided sequence-reduction convolution, a Mix-FFN with a depthwise convolution, a layer norm per
stage).

KerasHub numbers its blocks across stages (``hierarchical_transformer_encoder_<n>``), so the table is spelled per
stage and block from ``layerwise_depths``.  KerasHub's Mix-FFN computes the tanh form of gelu (Keras' default), so
a preset is written as ``gelu_pytorch_tanh`` and a model of another activation is refused.  KerasHub's
``SegFormerBackbone`` (the encoder with the decode head, less the classifier) has no transformers class of its own
converts as :mod:`.segformer`.  Names are those transformers 5's ``save_pretrained`` writes (``encoder.block``)."""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_ACTIVATION = "gelu_pytorch_tanh"  # Keras' ``ops.nn.gelu`` defaults to the tanh approximation
_BLOCK_EPSILON = 1e-6  # KerasHub's HierarchicalTransformerEncoder norms (the others are 1e-5 on both sides)
_MLP_RATIO = 4  # KerasHub's Mix-FFN widens by four


def mit_to_transformers(c: Config) -> Config:
    height, width, channels = c["image_shape"]
    stages = int(c["num_layers"])
    return {
        "model_type": "segformer",
        "num_channels": channels,
        "num_encoder_blocks": stages,
        "depths": list(c["layerwise_depths"]),
        "sr_ratios": list(c["layerwise_sr_ratios"]),
        "hidden_sizes": list(c["hidden_dims"]),
        "patch_sizes": list(c["layerwise_patch_sizes"]),
        "strides": list(c["layerwise_strides"]),
        "num_attention_heads": list(c["layerwise_num_heads"]),
        "mlp_ratios": [_MLP_RATIO] * stages,
        "hidden_act": _ACTIVATION,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": c.get("max_drop_path_rate", 0.1),
        "layer_norm_eps": _BLOCK_EPSILON,
        "image_size": height if height is not None and height == width else 224,
    }


def mit_to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("hidden_act", _ACTIVATION, "KerasHub's Mix-FFN computes the tanh approximation of gelu"),
            ("layer_norm_eps", _BLOCK_EPSILON, "KerasHub's MiT blocks normalize with epsilon 1e-6"),
        ),
    )
    stages = int(c.get("num_encoder_blocks", 4))
    ratios = list(c.get("mlp_ratios", [_MLP_RATIO] * stages))
    if any(r != _MLP_RATIO for r in ratios):
        raise refuse(c, f"mlp_ratios {ratios}", "KerasHub's Mix-FFN always widens by 4")
    if not c.get("reshape_last_stage", True):
        raise refuse(c, "reshape_last_stage False", "KerasHub's MiTBackbone returns the last stage as a feature map")
    size = c.get("image_size", 224)
    return {
        "layerwise_depths": list(c["depths"]),
        "num_layers": stages,
        "layerwise_num_heads": list(c["num_attention_heads"]),
        "layerwise_sr_ratios": list(c["sr_ratios"]),
        "max_drop_path_rate": c.get("drop_path_rate", 0.1),
        "layerwise_patch_sizes": list(c["patch_sizes"]),
        "layerwise_strides": list(c["strides"]),
        "image_shape": [size, size, c.get("num_channels", 3)],
        "hidden_dims": list(c["hidden_sizes"]),
    }


def _numbered(name: str, k: int) -> str:
    """Keras 3's name of a layer class's ``k``-th instance in its parent."""
    return f"{name}_{k}" if k else name


def _pair(source: str, target: str, kind: str = "same") -> tuple[Entry, ...]:
    return Entry(f"{source}/vars/0", f"{target}.weight", kind), Entry(f"{source}/vars/1", f"{target}.bias")


def _block(layer: str, stem: str, reduces: bool) -> tuple[Entry, ...]:
    attention = f"{stem}.attention.self"
    return (
        *_pair(f"{layer}/norm1", f"{stem}.layer_norm_1"),
        *(e for k, p in _QKV for e in _pair(f"{layer}/attn/{k}", f"{attention}.{p}", "dense")),
        *(
            (
                *_pair(f"{layer}/attn/sr", f"{attention}.sr", "conv2d"),
                *_pair(f"{layer}/attn/norm", f"{attention}.layer_norm"),
            )
            if reduces
            else ()
        ),
        *_pair(f"{layer}/attn/proj", f"{stem}.attention.output.dense", "dense"),
        *_pair(f"{layer}/norm2", f"{stem}.layer_norm_2"),
        *_pair(f"{layer}/mlp/fc1", f"{stem}.mlp.dense1", "dense"),
        *_pair(f"{layer}/mlp/dwconv", f"{stem}.mlp.dwconv.dwconv", "depthwise2d"),
        *_pair(f"{layer}/mlp/fc2", f"{stem}.mlp.dense2", "dense"),
    )


_QKV = (("q", "query"), ("k", "key"), ("v", "value"))


def mit_entries(keras: Config, root: str = "layers", stem: str = "encoder") -> tuple[Entry, ...]:
    """Every stage's patch embedding, blocks (numbered across stages) and layer norm, spelled out, of a MiT whose
    layers lie under ``root`` (a SegFormerBackbone nests its encoder) and whose transformers names begin ``stem``."""
    entries: list[Entry] = []
    n = 0
    for s, depth in enumerate(keras["layerwise_depths"]):
        embed = f"{root}/{_numbered('overlapping_patching_and_embedding', s)}"
        entries += _pair(f"{embed}/proj", f"{stem}.patch_embeddings.{s}.proj", "conv2d")
        entries += _pair(f"{embed}/norm", f"{stem}.patch_embeddings.{s}.layer_norm")
        for b in range(depth):
            layer = f"{root}/{_numbered('hierarchical_transformer_encoder', n)}"
            entries += _block(layer, f"{stem}.block.{s}.{b}", int(keras["layerwise_sr_ratios"][s]) > 1)
            n += 1
        entries += _pair(f"{root}/{_numbered('layer_normalization', s)}", f"{stem}.layer_norm.{s}")
    return tuple(entries)


MIT = Family(
    backbone="MiTBackbone",
    model_type="segformer",
    base_class="SegformerModel",
    base_prefix="segformer",
    layer="hierarchical_transformer_encoder",  # unused: every block is spelled out by the variant
    entries=(),
    config=mit_to_transformers,
    writing=Writing(
        "keras_hub.src.models.mit", mit_to_keras, ("ImageClassifier",), files={"MiTBackbone": "mit_backbone"}
    ),
    variant=mit_entries,
    saved_names=True,  # transformers 5 renames them on loading (``stages.{s}.blocks.{b}``)
)
