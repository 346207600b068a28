"""SegFormer: ``SegFormerBackbone`` (a MiT encoder, nested, and the all-MLP decode head less its classifier) with
``SegFormerImageSegmenter`` (the classifier) <-> ``SegformerForSemanticSegmentation``.

KerasHub saves the decode head's per-stage projections last stage first (``dense`` is the last stage's); the fuse
convolution has no bias, then batch norm (epsilon 1e-5 on both sides).  transformers saves the batch norm's
``num_batches_tracked``, which only training with momentum ``None`` reads: zero on the way in, dropped on the way
out.  KerasHub's segmenter resizes its logits to the image (bilinear), transformers' are a quarter of it: the
1x1 classifier and the resize commute, so the values agree where compared at one size."""

from __future__ import annotations

from bridge.families.keras_hub.families.clip import nested_encoder
from bridge.families.keras_hub.families.mit import mit_entries, mit_to_keras, mit_to_transformers
from bridge.families.keras_hub.table import Config, Entry, Family, Writing

_MODULE = "keras_hub.src.models.segformer"
_HEAD = "decode_head"
_ARCHITECTURE = "SegformerForSemanticSegmentation"


def _encoder(keras: Config) -> Config:
    encoder: Config = keras["image_encoder"]["config"]
    return encoder


def _to_transformers(c: Config) -> Config:
    return {**mit_to_transformers(_encoder(c)), "decoder_hidden_size": c["projection_filters"]}


def _to_keras(c: Config) -> Config:
    encoder = nested_encoder("keras_hub.src.models.mit.mit_backbone", "MiTBackbone", "mi_t_backbone", mit_to_keras(c))
    return {"projection_filters": c.get("decoder_hidden_size", 256), "image_encoder": encoder}


def _segmenter(c: Config) -> Config:
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    return {"num_classes": len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2)}


def _numbered(name: str, k: int) -> str:
    return f"{name}_{k}" if k else name


def _variant(keras: Config) -> tuple[Entry, ...]:
    """The nested encoder's variables, then the decode head's projections (KerasHub's ``dense_k`` is stage
    ``stages - 1 - k``)."""
    encoder = _encoder(keras)
    stages = len(encoder["layerwise_depths"])
    return (
        *mit_entries(encoder, "layers/functional/layers"),
        *(
            entry
            for k in range(stages)
            for entry in (
                Entry(
                    f"layers/{_numbered('dense', k)}/vars/0", f"{_HEAD}.linear_c.{stages - 1 - k}.proj.weight", "dense"
                ),
                Entry(f"layers/{_numbered('dense', k)}/vars/1", f"{_HEAD}.linear_c.{stages - 1 - k}.proj.bias"),
            )
        ),
    )


_FUSE = "layers/sequential/layers"
SEGFORMER = Family(
    backbone="SegFormerBackbone",
    model_type="segformer",
    base_class=_ARCHITECTURE,  # transformers has no class of the encoder with the decode head alone
    base_prefix="segformer",
    layer="hierarchical_transformer_encoder",  # unused: every variable is spelled out by the variant
    entries=(
        Entry(f"{_FUSE}/conv2d/vars/0", f"{_HEAD}.linear_fuse.weight", "conv2d"),
        *(
            Entry(f"{_FUSE}/batch_normalization/vars/{v}", f"{_HEAD}.batch_norm.{name}")
            for v, name in enumerate(("weight", "bias", "running_mean", "running_var"))
        ),
    ),
    config=_to_transformers,
    tasks={"SegFormerImageSegmenter": _ARCHITECTURE},
    task_entries=(
        Entry("layers/conv2d/vars/0", f"{_HEAD}.classifier.weight", "conv2d"),
        Entry("layers/conv2d/vars/1", f"{_HEAD}.classifier.bias"),
    ),
    writing=Writing(
        _MODULE,
        _to_keras,
        ("ImageSegmenter",),
        task_configs={"SegFormerImageSegmenter": _segmenter},
        files={"SegFormerBackbone": "segformer_backbone", "SegFormerImageSegmenter": "segformer_image_segmenter"},
    ),
    picks=lambda c: _ARCHITECTURE in (c.get("architectures") or ()),
    unkept=((rf"{_HEAD}\.batch_norm\.num_batches_tracked", "the batch norm's step count, read only in training"),),
    variant=_variant,
    saved_names=True,
)
