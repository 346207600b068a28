"""EfficientNet: ``EfficientNetBackbone`` <-> ``EfficientNetModel`` (the v1 MBConv blocks: expansion, depthwise
convolution, squeeze-excite, projection; then the 1x1 top convolution) and ``EfficientNetImageClassifier`` <->
``EfficientNetForImageClassification`` (pooled by mean or max, then one dense layer).

Only the configurations both libraries compute alike convert; the others are refused by the key that differs:
KerasHub's v2 blocks (``fused``, ``unfused``, ``cba``) and per-stage widths, depths or squeeze ratios (transformers
has one of each); the stem's padding (transformers pads the right and bottom by one before its stride-2 stem:
KerasHub's ``include_stem_padding`` false with ``stem_conv_padding`` ``same``, which pads alike on images of even
size); the depthwise padding of stride-2 blocks (KerasHub pads every side by ``kernel // 2``: transformers does
for the blocks ``depthwise_padding`` lists, so every stride-2 block is listed); a stage's first block with stride 1
and as many filters in as out (KerasHub adds its input back, transformers does not); KerasHub's and transformers'
rounding of the filter counts where they differ (``min_depth``, ``cap_round_filter_decrease``).  The stem has 32
and the top 1280 filters before the width scaling, as transformers' are.  Batch norms: one epsilon on both sides;
both configs keep the Keras-style momentum (0.99), read only in training, and transformers saves each norm's
``num_batches_tracked`` (zero on the way in, dropped on the way out).  Depthwise kernels use the ``depthwise2d``
kind; KerasHub's functional backbone numbers its layers per class in the order the blocks build them."""

from __future__ import annotations

from collections.abc import Callable

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_STEM_FILTERS = 32  # transformers' stem and top widths before the width scaling
_TOP_FILTERS = 1280
_ACTIVATIONS = ("swish", "silu")
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var")  # Keras' gamma, beta, moving mean and variance


def _refuse_keras(detail: str, hint: str) -> UsageError:
    return UsageError(
        "This EfficientNetBackbone has no transformers EfficientNetModel counterpart", detail=detail, hint=hint
    )


def _keras_rounding(c: Config) -> Callable[[int], int]:
    width, divisor = float(c["stackwise_width_coefficients"][0]), int(c.get("depth_divisor", 8))
    floor = divisor if c.get("use_depth_divisor_as_min_depth", False) else int(c.get("min_depth", 8))

    def rounded(filters: int) -> int:
        scaled = filters * width
        new = max(floor, int(scaled + divisor / 2) // divisor * divisor)
        return int(new + divisor if c.get("cap_round_filter_decrease", False) and new < 0.9 * scaled else new)

    return rounded


def _transformers_rounding(width: float, divisor: int) -> Callable[[int], int]:
    def rounded(filters: int) -> int:
        scaled = filters * width
        new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
        return int(new + divisor if new < 0.9 * scaled else new)

    return rounded


def _one(c: Config, key: str) -> float:
    values = {float(v) for v in c[key]}
    if len(values) != 1:
        raise _refuse_keras(f"{key} {c[key]}", "transformers' EfficientNet has one value for every stage")
    return values.pop()


def _repeats(coefficient: float, repeats: list[int]) -> list[int]:
    import math

    return [int(math.ceil(coefficient * r)) for r in repeats]


def _stride2_blocks(repeats: list[int], strides: list[int]) -> list[int]:
    """The indices (counted over every block) of the blocks that stride by 2: each stage's first, where it does."""
    starts = [sum(repeats[:i]) for i in range(len(repeats))]
    return [start for start, stride in zip(starts, strides, strict=True) if int(stride) == 2]


def _refuse_first_residual(
    ins: list[int], outs: list[int], strides: list[int], why: Callable[[str], Exception]
) -> None:
    for i, (a, b, s) in enumerate(zip(ins, outs, strides, strict=True)):
        if int(s) == 1 and a == b:
            raise why(f"stage {i}: stride 1 and {a} filters in and out")


def _to_transformers(c: Config) -> Config:
    if any(t != "v1" for t in c["stackwise_block_types"]):
        raise _refuse_keras(f"stackwise_block_types {c['stackwise_block_types']}", "transformers has the v1 blocks")
    if any(int(f) for f in c.get("stackwise_force_input_filters", [])):
        raise _refuse_keras("stackwise_force_input_filters", "transformers' stages take the last one's filters")
    if c.get("include_stem_padding", True) or c.get("stem_conv_padding", "valid") != "same":
        raise _refuse_keras(
            f"include_stem_padding {c.get('include_stem_padding', True)}, stem_conv_padding "
            f"{c.get('stem_conv_padding', 'valid')}",
            "transformers pads the stem's right and bottom by one: include_stem_padding false, stem_conv_padding same",
        )
    if c.get("activation", "swish") not in _ACTIVATIONS or c.get("projection_activation"):
        raise _refuse_keras(
            f"activation {c.get('activation')}, projection_activation {c.get('projection_activation')}",
            "transformers' EfficientNet activates with swish and leaves the projection linear",
        )
    if c.get("data_format", "channels_last") != "channels_last":
        raise _refuse_keras(f"data_format {c['data_format']}", "save the preset channels last")
    width, depth = _one(c, "stackwise_width_coefficients"), _one(c, "stackwise_depth_coefficients")
    se_ratio = _one(c, "stackwise_squeeze_and_excite_ratios")
    if not 0 < se_ratio <= 1:
        raise _refuse_keras(f"stackwise_squeeze_and_excite_ratios {se_ratio}", "transformers always squeezes")
    divisor = int(c.get("depth_divisor", 8))
    keras_round, pt_round = _keras_rounding(c), _transformers_rounding(width, divisor)
    ins, outs = list(c["stackwise_input_filters"]), list(c["stackwise_output_filters"])
    if ins[0] != _STEM_FILTERS or int(c.get("num_features", _TOP_FILTERS)) != _TOP_FILTERS:
        raise _refuse_keras(
            f"stackwise_input_filters[0] {ins[0]}, num_features {c.get('num_features')}",
            "transformers' stem has 32 and its top 1280 filters before the width scaling",
        )
    if any(keras_round(f) != pt_round(f) for f in (*ins, *outs, _TOP_FILTERS)):
        raise _refuse_keras(
            f"min_depth {c.get('min_depth')}, use_depth_divisor_as_min_depth "
            f"{c.get('use_depth_divisor_as_min_depth')}, "
            f"cap_round_filter_decrease {c.get('cap_round_filter_decrease')}",
            "KerasHub rounds these filter counts otherwise than transformers",
        )
    strides = [int(s) for s in c["stackwise_strides"]]
    _refuse_first_residual(
        [keras_round(f) for f in ins], [keras_round(f) for f in outs], strides, lambda d: _refuse_keras(d, _NO_ADD)
    )
    repeats = _repeats(depth, list(c["stackwise_num_repeats"]))
    return {
        "model_type": "efficientnet",
        "num_channels": c.get("input_shape", (None, None, 3))[-1],
        "image_size": 224,  # any even size: the backbone takes images of any size
        "width_coefficient": width,
        "depth_coefficient": depth,
        "depth_divisor": divisor,
        "kernel_sizes": list(c["stackwise_kernel_sizes"]),
        "in_channels": ins,
        "out_channels": outs,
        "depthwise_padding": _stride2_blocks(repeats, strides),
        "strides": strides,
        "num_block_repeats": list(c["stackwise_num_repeats"]),
        "expand_ratios": list(c["stackwise_expansion_ratios"]),
        "squeeze_expansion_ratio": se_ratio,
        "hidden_act": "swish",
        "hidden_dim": pt_round(_TOP_FILTERS),
        "batch_norm_eps": c.get("batch_norm_epsilon", 1e-5),
        "batch_norm_momentum": c.get("batch_norm_momentum", 0.9),
        "dropout_rate": c.get("dropout", 0.2),
        "drop_connect_rate": c.get("dropout", 0.2),
    }


_NO_ADD = "KerasHub adds a stage's first block's input back where transformers does not"


def _to_keras(c: Config) -> Config:
    require(c, (("hidden_act", "swish", "KerasHub's EfficientNet activates with swish"),))
    width, depth, divisor = float(c["width_coefficient"]), float(c["depth_coefficient"]), int(c["depth_divisor"])
    stages = len(c["in_channels"])
    strides = [int(s) for s in c["strides"]]
    repeats = _repeats(depth, list(c["num_block_repeats"]))
    needed = _stride2_blocks(repeats, strides)
    if not set(needed) <= set(c.get("depthwise_padding", [])):
        raise refuse(
            c,
            f"depthwise_padding {c.get('depthwise_padding')}",
            f"KerasHub pads a stride-2 depthwise convolution on every side: blocks {needed} must be listed",
        )
    pt_round = _transformers_rounding(width, divisor)
    _refuse_first_residual(
        [pt_round(f) for f in c["in_channels"]],
        [pt_round(f) for f in c["out_channels"]],
        strides,
        lambda d: refuse(c, f"in_channels/out_channels {d}", _NO_ADD),
    )
    if int(c["hidden_dim"]) != pt_round(_TOP_FILTERS):
        raise refuse(c, f"hidden_dim {c['hidden_dim']}", "the top convolution's width: 1280 scaled by the width")
    return {
        "stackwise_width_coefficients": [width] * stages,
        "stackwise_depth_coefficients": [depth] * stages,
        "stackwise_kernel_sizes": list(c["kernel_sizes"]),
        "stackwise_num_repeats": list(c["num_block_repeats"]),
        "stackwise_input_filters": list(c["in_channels"]),
        "stackwise_output_filters": list(c["out_channels"]),
        "stackwise_expansion_ratios": list(c["expand_ratios"]),
        "stackwise_squeeze_and_excite_ratios": [float(c.get("squeeze_expansion_ratio", 0.25))] * stages,
        "stackwise_strides": strides,
        "stackwise_block_types": ["v1"] * stages,
        "stackwise_force_input_filters": [0] * stages,
        "stackwise_nores_option": [False] * stages,
        "dropout": c.get("drop_connect_rate", 0.2),
        "depth_divisor": divisor,
        "min_depth": divisor,
        "input_shape": [None, None, c.get("num_channels", 3)],
        "data_format": "channels_last",
        "activation": "swish",
        "include_stem_padding": False,
        "use_depth_divisor_as_min_depth": True,
        "cap_round_filter_decrease": True,
        "stem_conv_padding": "same",
        "batch_norm_momentum": c.get("batch_norm_momentum", 0.99),
        "batch_norm_epsilon": c.get("batch_norm_eps", 1e-3),
        "projection_activation": None,
        "num_features": _TOP_FILTERS,
    }


def _classifier(c: Config) -> Config:
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    pooling = {"mean": "avg", "max": "max"}.get(c.get("pooling_type", "mean"))
    if pooling is None:
        raise refuse(c, f"pooling_type {c['pooling_type']}", "KerasHub's classifier pools by mean or max")
    return {
        "num_classes": len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2),
        "pooling": pooling,
        "activation": None,
        "dropout": c.get("dropout_rate", 0.5),
    }


def _task_settings(task: Config) -> Config:
    """transformers' pooling of the classifier's own config."""
    return {"pooling_type": "max" if task.get("pooling") == "max" else "mean", "dropout_rate": task.get("dropout", 0.0)}


class _Numbering:
    """Keras' names of the backbone's weighted layers, numbered per class in the order the blocks build them."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.entries: list[Entry] = []

    def _name(self, layer: str) -> str:
        k = self.seen.get(layer, 0)
        self.seen[layer] = k + 1
        return f"layers/{layer}_{k}" if k else f"layers/{layer}"

    def conv(self, target: str, kind: str = "conv2d", bias: bool = False) -> None:
        name = self._name("depthwise_conv2d" if kind == "depthwise2d" else "conv2d")
        self.entries.append(Entry(f"{name}/vars/0", f"{target}.weight", kind))
        if bias:
            self.entries.append(Entry(f"{name}/vars/1", f"{target}.bias"))

    def norm(self, target: str) -> None:
        name = self._name("batch_normalization")
        self.entries += (Entry(f"{name}/vars/{v}", f"{target}.{p}") for v, p in enumerate(_BATCH_NORM))


def _variant(keras: Config) -> tuple[Entry, ...]:
    numbering = _Numbering()
    numbering.conv("embeddings.convolution")
    numbering.norm("embeddings.batchnorm")
    repeats = _repeats(float(keras["stackwise_depth_coefficients"][0]), list(keras["stackwise_num_repeats"]))
    n = 0
    for stage, count in enumerate(repeats):
        for _ in range(count):
            block = f"encoder.blocks.{n}"
            if int(keras["stackwise_expansion_ratios"][stage]) != 1:
                numbering.conv(f"{block}.expansion.expand_conv")
                numbering.norm(f"{block}.expansion.expand_bn")
            numbering.conv(f"{block}.depthwise_conv.depthwise_conv", "depthwise2d")
            numbering.norm(f"{block}.depthwise_conv.depthwise_norm")
            numbering.conv(f"{block}.squeeze_excite.reduce", bias=True)
            numbering.conv(f"{block}.squeeze_excite.expand", bias=True)
            numbering.conv(f"{block}.projection.project_conv")
            numbering.norm(f"{block}.projection.project_bn")
            n += 1
    numbering.conv("encoder.top_conv")
    numbering.norm("encoder.top_bn")
    return tuple(numbering.entries)


EFFICIENTNET = Family(
    backbone="EfficientNetBackbone",
    model_type="efficientnet",
    base_class="EfficientNetModel",
    base_prefix="efficientnet",
    layer="efficient_net_block",  # unused: every layer is spelled out by the variant
    entries=(),
    config=_to_transformers,
    tasks={"EfficientNetImageClassifier": "EfficientNetForImageClassification"},
    task_settings=_task_settings,
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
    writing=Writing(
        "keras_hub.src.models.efficientnet",
        _to_keras,
        ("ImageClassifier",),
        task_configs={"EfficientNetImageClassifier": _classifier},
        files={
            "EfficientNetBackbone": "efficientnet_backbone",
            "EfficientNetImageClassifier": "efficientnet_image_classifier",
        },
    ),
    variant=_variant,
    unkept=((r".*(norm|bn|batchnorm)\.num_batches_tracked", "a batch norm's step count, read only in training"),),
)
