"""ResNet: ``ResNetBackbone`` with ``ResNetImageClassifier`` <-> ``ResNetModel`` / ``ResNetForImageClassification``.

transformers' ResNet is KerasHub's v1 (post-activation) ResNet with one 7x7 stem convolution: basic blocks, or
bottleneck blocks striding in their 3x3 convolution (``downsample_in_bottleneck`` false); its first stage strides
where ``downsample_in_first_stage`` says, every later stage by 2.  KerasHub's v2 (pre-activation) and vd variants
(a three-convolution stem, an average-pooled shortcut) compute otherwise and are refused by name.  KerasHub
zero-pads before the stem's max pool where torch pads with minus infinity: the same after the ReLU.  Both sides'
batch norms take epsilon 1e-5, neither configurable.  transformers saves each batch norm's
``num_batches_tracked``, which only training with momentum ``None`` reads: zeros on the way in, dropped on the way
out.  The functional backbone numbers its layers by depth: a block's shortcut convolution and norm come beside
its last convolution and norm, not first."""

from __future__ import annotations

from bridge.core.errors import UsageError
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_MODULE = "keras_hub.src.models.resnet"
_BLOCKS = {"basic_block": "basic", "bottleneck_block": "bottleneck"}
_EXPANSION = {"basic": 1, "bottleneck": 4}  # transformers' bottleneck reduction: its output is 4x its 3x3's width
_NORM = ("weight", "bias", "running_mean", "running_var")


def _to_transformers(c: Config) -> Config:
    block, strides = c["block_type"], list(c["stackwise_num_strides"])
    why = ""
    if c.get("use_pre_activation"):
        why = "use_pre_activation true (ResNet v2)"
    elif block not in _BLOCKS:
        why = f"block_type {block}"
    elif list(c["input_conv_kernel_sizes"]) != [7]:
        why = f"input_conv_kernel_sizes {c['input_conv_kernel_sizes']}"
    elif any(s != 2 for s in strides[1:]) or strides[0] not in (1, 2):
        why = f"stackwise_num_strides {strides}"
    if why:
        raise UsageError(
            "This ResNetBackbone has no transformers ResNetModel counterpart",
            detail=why,
            hint="transformers' ResNet is v1 with basic or bottleneck blocks, one 7x7 stem convolution, and every "
            "stage after the first striding by 2",
        )
    layer_type = _BLOCKS[block]
    return {
        "model_type": "resnet",
        "num_channels": c["image_shape"][-1],
        "embedding_size": c["input_conv_filters"][0],
        "hidden_sizes": [f * _EXPANSION[layer_type] for f in c["stackwise_num_filters"]],
        "depths": list(c["stackwise_num_blocks"]),
        "layer_type": layer_type,
        "hidden_act": "relu",
        "downsample_in_first_stage": strides[0] == 2,
        "downsample_in_bottleneck": False,
    }


def _to_keras(c: Config) -> Config:
    layer_type = c.get("layer_type", "bottleneck")
    require(
        c,
        (
            ("hidden_act", "relu", "KerasHub's ResNet activates with ReLU"),
            ("downsample_in_bottleneck", False, "KerasHub's bottleneck strides in its 3x3 convolution"),
        ),
    )
    if layer_type not in _EXPANSION:
        raise refuse(c, f"layer_type {layer_type}", "KerasHub's ResNet has basic and bottleneck blocks")
    hidden = list(c.get("hidden_sizes", [256, 512, 1024, 2048]))
    embedding, first_stride = c.get("embedding_size", 64), c.get("downsample_in_first_stage", False)
    expansion = _EXPANSION[layer_type]
    if hidden[0] != 64 * expansion or any(h % expansion for h in hidden):
        raise refuse(c, f"hidden_sizes {hidden}", f"KerasHub's ResNet's first stage is {64 * expansion} wide")
    # KerasHub projects the first stage's shortcut in a bottleneck, never in a basic stage; transformers only
    # where the width or the stride changes
    projected = embedding != hidden[0] or first_stride
    if projected != (layer_type == "bottleneck"):
        raise refuse(
            c,
            f"embedding_size {embedding}, downsample_in_first_stage {first_stride}",
            "KerasHub's first stage projects its shortcut exactly in a bottleneck ResNet",
        )
    return {
        "input_conv_filters": [embedding],
        "input_conv_kernel_sizes": [7],
        "stackwise_num_filters": [h // expansion for h in hidden],
        "stackwise_num_blocks": list(c.get("depths", [3, 4, 6, 3])),
        "stackwise_num_strides": [2 if first_stride else 1] + [2] * (len(hidden) - 1),
        "block_type": f"{layer_type}_block",
        "use_pre_activation": False,
        "image_shape": [None, None, c.get("num_channels", 3)],
    }


def _classifier(c: Config) -> Config:
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    count = len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2)
    return {"num_classes": count, "pooling": "avg", "activation": None, "dropout": 0.0}


def _numbered(name: str, k: int) -> str:
    return f"{name}_{k}" if k else name


def _convolutions(keras: Config) -> list[str]:
    """The transformers module of each convolution (its norm follows it) in the functional model's layer order."""
    bottleneck = keras["block_type"] == "bottleneck_block"
    order = ["embedder.embedder"]
    for s, blocks in enumerate(keras["stackwise_num_blocks"]):
        for b in range(blocks):
            stem = f"encoder.stages.{s}.layers.{b}"
            inner = [f"{stem}.layer.{k}" for k in range(3 if bottleneck else 2)]
            if b or not (bottleneck or s):  # no projected shortcut
                order += inner
            else:  # the shortcut sits at the depth of the block's last convolution, created before it
                order += [*inner[:-1], f"{stem}.shortcut", inner[-1]]
    return order


def _variant(keras: Config) -> tuple[Entry, ...]:
    """Each convolution's kernel and its batch norm's four variables, numbered as Keras numbers them (a block's
    shortcut convolution and its last one side by side, then their two norms)."""
    modules = _convolutions(keras)
    layers: list[tuple[str, str]] = []
    pending: list[str] = []
    for module in modules:
        if module.endswith(".shortcut"):
            pending.append(module)
            continue
        if pending:
            layers += [("conv", pending[0]), ("conv", module), ("norm", pending[0]), ("norm", module)]
            pending = []
        else:
            layers += [("conv", module), ("norm", module)]
    counts = {"conv": 0, "norm": 0}
    entries: list[Entry] = []
    for kind, module in layers:
        k = counts[kind]
        counts[kind] += 1
        if kind == "conv":
            entries.append(Entry(f"layers/{_numbered('conv2d', k)}/vars/0", f"{module}.convolution.weight", "conv2d"))
        else:
            path = f"layers/{_numbered('batch_normalization', k)}/vars"
            entries += [Entry(f"{path}/{v}", f"{module}.normalization.{n}") for v, n in enumerate(_NORM)]
    return tuple(entries)


RESNET = Family(
    backbone="ResNetBackbone",
    model_type="resnet",
    base_class="ResNetModel",
    base_prefix="resnet",
    layer="res_net_block",  # unused: every variable is spelled out by the variant
    entries=(),
    config=_to_transformers,
    tasks={"ResNetImageClassifier": "ResNetForImageClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.1.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.1.bias"),
    ),
    writing=Writing(
        _MODULE,
        _to_keras,
        ("ImageClassifier",),
        task_configs={"ResNetImageClassifier": _classifier},
        files={"ResNetBackbone": "resnet_backbone", "ResNetImageClassifier": "resnet_image_classifier"},
    ),
    unkept=((r".*normalization\.num_batches_tracked", "each batch norm's step count, read only in training"),),
    variant=_variant,
)
