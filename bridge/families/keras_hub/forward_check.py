"""The forward half of ``bridge verify`` for the ``keras-hub`` pack, either way of conversion: KerasHub's own model,
built by ``from_preset`` on whichever Keras backend is installed (``KERAS_BACKEND``), against the transformers model
of the other side, on one seeded batch of the inputs the backbone takes (token ids with a padded row, pixels, audio
features; the table below says which transformers argument carries each, channels-first there).  The last hidden
states (the encoder's too, for an encoder-decoder), and the logits where both sides have a head, are compared on the
real tokens.

Nothing here knows a family: the preset's ``config.json`` / ``task.json`` name KerasHub's classes, the transformers
directory's ``config.json`` names its class, and the inputs follow the names KerasHub's backbone takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import MissingDependency, UsageError
from bridge.core.keras_hub_preset import preset_facts
from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.forward_check import compare_outputs, load_or_skip, transformers_model


@dataclass(frozen=True)
class _Input:
    """A KerasHub backbone input and the transformers argument that carries the same values, in transformers'
    layout; ``to_keras`` permutes that layout's axes into KerasHub's (channels last); ``channel`` adds KerasHub's
    trailing channel axis of one (raw audio: transformers' ``[batch, samples]``, KerasHub's ``[batch, samples, 1]``)."""

    argument: str
    to_keras: tuple[int, ...] | None = None
    channel: bool = False


_INPUTS = {
    "token_ids": _Input("input_ids"),
    "padding_mask": _Input("attention_mask"),
    "segment_ids": _Input("token_type_ids"),
    "encoder_token_ids": _Input("input_ids"),
    "encoder_padding_mask": _Input("attention_mask"),
    "decoder_token_ids": _Input("decoder_input_ids"),
    "decoder_padding_mask": _Input("decoder_attention_mask"),
    "images": _Input("pixel_values", (0, 2, 3, 1)),  # NCHW -> NHWC
    "pixel_values": _Input("pixel_values", (0, 2, 3, 1)),  # images under transformers' name, NHWC
    "encoder_features": _Input("input_features", (0, 2, 1)),  # [batch, mels, frames] -> [batch, frames, mels]
    "encoder_input_values": _Input("input_values", channel=True),  # raw audio samples
    "position_ids": _Input("position_ids"),  # a backbone taking them as an input (Gemma 4): 0, 1, ... in each row
}
_ANY_IMAGE_SIZE = 64  # the images fed a convolutional network, which takes any size
_AUDIO_SAMPLES = 4000  # a quarter second at 16 kHz: a few frames after any raw-audio front end's strides
# KerasHub's per-token outputs -> the compared output of the same values
_KERAS_OUTPUTS = {
    "sequence_output": "hidden_states",
    "decoder_sequence_output": "hidden_states",
    "encoder_sequence_output": "encoder_hidden_states",
    "vision_logits": "logits_per_image",  # a dual-tower backbone's image-text similarities
    "text_logits": "logits_per_text",
    "depths": "predicted_depth",  # a depth estimator's map, channels last
}


@dataclass(frozen=True)
class _KerasSide:
    backbone: Any
    task: Any | None  # the preset's task (task.json), or the causal LM KerasHub builds on the backbone, or None
    described: str  # the classes run, in words
    backend: str
    convert_to_numpy: Any


def keras_hub_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """The pack's ``forward_check``: KerasHub's backbone (and task) against the transformers class, outputs compared
    at ``report.atol`` on the real tokens of a padded batch; the notes say what ran on which backend."""
    preset = _preset_folder(ctx)

    def load_transformers() -> Any:
        model, _ = transformers_model(ctx)  # torch first: it goes before a TensorFlow backend's import
        return model.float()

    model = load_or_skip(report, load_transformers)
    if model is None:
        return
    lm_head = model.get_output_embeddings() is not None  # a language model's head: logits for every token
    keras_side = _load_keras_side(report, ctx, preset, lm_head=lm_head)
    if keras_side is None:
        return
    names = _input_names(keras_side.backbone)
    unknown = sorted(set(names) - set(_INPUTS))
    if unknown:
        report.notes.append(
            f"forward check skipped: KerasHub's {keras_side.described} takes {', '.join(unknown)}; "
            f"this check feeds {', '.join(sorted(_INPUTS))} only"
        )
        return
    # a dual-tower model (CLIP's): its towers' configs size the inputs, and its image-text logits are compared; a
    # language model with a vision tower (its head over the vocabulary) is fed text as any language model
    towers = sum(hasattr(model.config, key) for key in ("text_config", "vision_config", "audio_config"))
    dual = towers > 1 and not lm_head
    inputs = _inputs(model, ctx, {_INPUTS[name].argument for name in names}, dual=dual)
    feed = {name: _keras_value(inputs[_INPUTS[name].argument], _INPUTS[name]) for name in names}
    keras_in = feed if isinstance(keras_side.backbone.input, dict) else feed[names[0]]
    pt_in = _normalized_for_transformers(keras_side.backbone, inputs)
    pt_out = _pair_forward(model, pt_in) if dual else _transformers_forward(model, pt_in)
    keras_out = _keras_outputs(keras_side.backbone(keras_in, training=False), keras_side.convert_to_numpy)
    if "predicted_depth" in pt_out:  # a depth estimator: the task's activation ends the head
        if keras_side.task is not None:
            keras_out = _keras_outputs(keras_side.task(keras_in, training=False), keras_side.convert_to_numpy)
        else:
            report.notes.append(
                f"predicted_depth not compared: the {keras_side.described} leaves the head's last activation to its "
                "depth estimator task"
            )
    elif keras_side.task is not None and "logits" in pt_out:
        keras_out["logits"] = keras_side.convert_to_numpy(keras_side.task(keras_in, training=False))
    elif "logits" in pt_out:
        report.notes.append(f"logits not compared: KerasHub has no head beside the {keras_side.described}")
    _align_maps(report, keras_out, pt_out)
    compared = [name for name in pt_out if name in keras_out]
    keras_out = {name: _real_tokens(keras_out[name], _real_mask(name, inputs)) for name in compared}
    pt_out = {name: _real_tokens(pt_out[name], _real_mask(name, inputs)) for name in compared}
    fed = ", ".join(f"{name} {'x'.join(map(str, feed[name].shape))}" for name in names)
    padded = "; the last row of token ids padded from half way" if any(n.endswith("_mask") for n in inputs) else ""
    report.notes.append(
        f"forward: KerasHub {keras_side.described} ({keras_side.backend} backend) against transformers "
        f"{type(model).__name__}, on seeded inputs ({fed}{padded}): "
        f"{', '.join(compared)} compared (per-token ones on the real tokens)"
    )
    for name, value in pt_out.items():
        if keras_out[name].shape != value.shape:
            report.fail_output(name, tuple(value.shape))
            report.notes.append(f"{name} shapes differ: KerasHub {keras_out[name].shape}, transformers {value.shape}")
            return
    compare_outputs(report, keras_out, pt_out)


def _normalized_for_transformers(backbone: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs transformers takes for the pixels KerasHub's backbone takes: normalized as the backbone's family
    says it normalizes them itself (transformers leaves that to its processor), else the same."""
    from bridge.families.keras_hub.families import family_of

    family = family_of(type(backbone).__name__, backbone.get_config())
    if family is None or family.normalizes_images is None or "pixel_values" not in inputs:
        return inputs
    mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in family.normalizes_images)  # NCHW
    return {**inputs, "pixel_values": ((inputs["pixel_values"] - mean) / std).astype(np.float32)}


def _preset_folder(ctx: ForwardContext) -> Path:
    side = ctx.source if ctx.to == "pytorch" else ctx.out
    return side if side.is_dir() else side.parent


def _inputs(model: Any, ctx: ForwardContext, arguments: set[str], *, dual: bool = False) -> dict[str, np.ndarray]:
    """Seeded values for the transformers ``arguments`` (an id argument brings its mask): token ids with the last
    row padded from half way with the padding id, which no real token takes (RoBERTa's positions count the tokens
    that are not it); segment ids of as many kinds as the model has; pixels and audio features in the shape the
    config sets.  A dual-tower model's towers' configs size them, its token ids unpadded (its KerasHub backbone
    takes no mask) and each row closed by the end token (what a text tower pools where it pools that token)."""
    if dual:
        return _pair_inputs(model, ctx, arguments)
    config = model.config
    rng = np.random.default_rng(ctx.seed)
    inputs: dict[str, np.ndarray] = {}
    for ids, mask, positions in (
        ("input_ids", "attention_mask", ("max_position_embeddings", "n_positions")),
        ("decoder_input_ids", "decoder_attention_mask", ("max_target_positions", "max_position_embeddings")),
    ):
        if ids in arguments:
            seq = _bounded(ctx.seq_len, config, positions)
            vocab = int(model.get_input_embeddings().weight.shape[0])  # a vision model's "embeddings" are patches
            inputs[ids], inputs[mask] = _padded_ids(rng, ctx.batch, seq, vocab, config)
    if "position_ids" in arguments:
        inputs["position_ids"] = np.broadcast_to(
            np.arange(inputs["input_ids"].shape[1]), inputs["input_ids"].shape
        ).copy()
    if "token_type_ids" in arguments:
        kinds = max(1, int(getattr(config, "type_vocab_size", 1) or 1))
        inputs["token_type_ids"] = rng.integers(0, kinds, inputs["input_ids"].shape).astype(np.int64)
    if "pixel_values" in arguments:
        # a head over a backbone's sizes its images by the backbone's config
        own = hasattr(config, "image_size") or not hasattr(config, "backbone_config")
        sizing = config if own else config.backbone_config
        side = getattr(sizing, "image_size", _ANY_IMAGE_SIZE)  # a convolutional network's: any size
        height, width = (side, side) if isinstance(side, int) else side
        inputs["pixel_values"] = rng.normal(size=(ctx.batch, sizing.num_channels, height, width)).astype(np.float32)
    if "input_features" in arguments:  # the frames the encoder takes: its positions before two stride-2 halvings
        frames = 2 * int(config.max_source_positions)
        inputs["input_features"] = rng.normal(size=(ctx.batch, config.num_mel_bins, frames)).astype(np.float32)
    if "input_values" in arguments:  # whole clips: every sample real (its mask is over samples, not tokens)
        inputs["input_values"] = rng.normal(size=(ctx.batch, _AUDIO_SAMPLES)).astype(np.float32)
        inputs["attention_mask"] = np.ones((ctx.batch, _AUDIO_SAMPLES), dtype=np.int64)
    return inputs


def _pair_inputs(model: Any, ctx: ForwardContext, arguments: set[str]) -> dict[str, np.ndarray]:
    text, vision = model.config.text_config, model.config.vision_config
    rng = np.random.default_rng(ctx.seed)
    inputs: dict[str, np.ndarray] = {}
    if "input_ids" in arguments:
        seq, vocab = _bounded(ctx.seq_len, text, ("max_position_embeddings",)), int(text.vocab_size)
        ids = rng.integers(0, vocab, (ctx.batch, seq))
        end = getattr(text, "eos_token_id", None)
        if isinstance(end, int) and 0 <= end < vocab:
            ids[:, -1] = end
        inputs["input_ids"] = ids.astype(np.int64)
    if "pixel_values" in arguments:
        side = vision.image_size
        height, width = (side, side) if isinstance(side, int) else side
        inputs["pixel_values"] = rng.normal(size=(ctx.batch, vision.num_channels, height, width)).astype(np.float32)
    return inputs


def _pair_forward(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A dual-tower model's image-text logits (the names :data:`_KERAS_OUTPUTS` gives KerasHub's)."""
    import torch

    with torch.no_grad():
        out = model(**{name: torch.from_numpy(value) for name, value in inputs.items()})
    return {name: getattr(out, name).numpy() for name in ("logits_per_image", "logits_per_text")}


def _bounded(seq_len: int, config: Any, attributes: tuple[str, ...]) -> int:
    # a model without a position limit says so by a non-positive one (XLNet's -1)
    positions = next((getattr(config, a) for a in attributes if (getattr(config, a, None) or 0) > 0), None)
    return min(seq_len, int(positions)) if positions else seq_len


def _padded_ids(rng: Any, batch: int, seq: int, vocab: int, config: Any) -> tuple[np.ndarray, np.ndarray]:
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[-1, max(1, seq // 2) :] = 0
    pad = int(getattr(config, "pad_token_id", None) or 0)
    drawn = rng.integers(0, vocab - 1, (batch, seq))
    fill = pad if pad < vocab else 0  # a padding id past a tiny vocabulary cannot be looked up, even masked
    return np.where(mask == 1, drawn + (drawn >= pad), fill).astype(np.int64), mask


def _align_maps(report: VerifyReport, keras_out: dict[str, np.ndarray], pt_out: dict[str, np.ndarray]) -> None:
    """A segmentation map KerasHub's task resizes to the image (channels last) and transformers leaves smaller
    (channels first): transformers' resized bilinearly (half-pixel centres, as Keras' ``Resizing``) to compare.
    Where those logits are compared, a backbone output of another shape than transformers' base model's (a backbone
    that ends in a decode head) is left out, said in a note."""
    keras_map, pt_map = keras_out.get("logits"), pt_out.get("logits")
    if (
        keras_map is None
        or pt_map is None
        or keras_map.ndim != 4
        or pt_map.ndim != 4
        or keras_map.shape == pt_map.shape
    ):
        return
    if keras_map.shape[3] != pt_map.shape[1]:
        return
    import torch

    size = keras_map.shape[1:3]
    resized = torch.nn.functional.interpolate(torch.from_numpy(pt_map), size=size, mode="bilinear", align_corners=False)
    pt_out["logits"] = resized.permute(0, 2, 3, 1).numpy()
    report.notes.append(
        f"logits: transformers' {'x'.join(map(str, pt_map.shape[2:]))} map resized to KerasHub's "
        f"{'x'.join(map(str, size))} (bilinear) before comparing"
    )
    hidden, base = keras_out.get("hidden_states"), pt_out.get("hidden_states")
    if hidden is not None and base is not None and hidden.shape != base.shape:
        del keras_out["hidden_states"]
        report.notes.append(
            f"hidden_states not compared: KerasHub's backbone output {hidden.shape} is not transformers' base "
            f"model's last hidden state {base.shape}; the logits cover it"
        )


def _keras_value(value: np.ndarray, spec: _Input) -> np.ndarray:
    if spec.channel:
        return np.ascontiguousarray(value[..., None])
    if spec.to_keras is not None:
        return np.ascontiguousarray(value.transpose(spec.to_keras))
    return value.astype("int32")


def _keras_outputs(outputs: Any, convert_to_numpy: Any) -> dict[str, np.ndarray]:
    """KerasHub's per-token outputs under the compared names (a single tensor is the hidden states)."""
    if not isinstance(outputs, dict):
        return {"hidden_states": np.asarray(convert_to_numpy(outputs))}
    return {_KERAS_OUTPUTS[k]: np.asarray(convert_to_numpy(v)) for k, v in outputs.items() if k in _KERAS_OUTPUTS}


def _real_mask(name: str, inputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The mask of the tokens an output is per-token over: the decoder's where there is one, else the encoder's."""
    if name == "encoder_hidden_states" and "input_values" in inputs:  # frames of whole clips: all real
        return None
    masks = ("attention_mask",) if name == "encoder_hidden_states" else ("decoder_attention_mask", "attention_mask")
    found = next((inputs[m] for m in masks if m in inputs), None)
    return None if found is None else found == 1


def _transformers_forward(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The base model's last hidden state (and the encoder's, for an encoder-decoder), and the head's logits when
    the class has a head."""
    import torch

    feed = {name: torch.from_numpy(value) for name, value in inputs.items()}
    with torch.no_grad():
        if type(model).__name__.endswith("ForDepthEstimation"):  # its one output, [batch, height, width]
            return {"predicted_depth": model(**feed).predicted_depth[..., None].numpy()}  # channels last as KerasHub's
        base = _base_of(model)(**feed)
        hidden = getattr(base, "last_hidden_state", None)
        if hidden is None:  # a head class that is its own base (T5's): the last of its decoder's states
            base = model(**feed, output_hidden_states=True)
            hidden = (getattr(base, "decoder_hidden_states", None) or base.hidden_states)[-1]
        # a feature map (a convolutional encoder's last stage) is channels first in torch, last in KerasHub
        out = {"hidden_states": (hidden.permute(0, 2, 3, 1) if hidden.dim() == 4 else hidden).numpy()}
        encoded = getattr(base, "encoder_last_hidden_state", None)
        if encoded is not None:
            out["encoder_hidden_states"] = encoded.numpy()
        logits = getattr(base if model.base_model is model else model(**feed), "logits", None)
        if logits is not None:
            out["logits"] = logits.numpy()
    return out


def _base_of(model: Any) -> Any:
    """The model's base model, where that takes the model's main input: a base class whose ``base_model_prefix``
    names a part of it (DINOv3ViTModel's encoder is its ``model``) is its own base."""
    import inspect

    base = model.base_model
    return base if model.main_input_name in inspect.signature(base.forward).parameters else model


def _load_keras_side(report: VerifyReport, ctx: ForwardContext, preset: Path, *, lm_head: bool) -> _KerasSide | None:
    """KerasHub's task (``task.json``'s class; for a backbone alone beside a transformers LM head, the causal LM
    KerasHub builds on it, which adds no weights) or backbone, from the preset.  A preset KerasHub cannot load is a
    failure when it is the output, a skipped check when it is the source."""

    def imported() -> Any:
        try:
            import keras_hub
        except ImportError as e:
            raise MissingDependency(
                "keras-hub is needed for the forward check of a KerasHub preset",
                hint="pip install 'ckpt-bridge[keras-hub]'",
            ) from e
        return keras_hub

    keras_hub = load_or_skip(report, imported)
    if keras_hub is None:
        return None
    import keras

    facts = preset_facts(preset)
    task_class = facts.get("task_class")
    try:
        if task_class is not None:
            task = _task(keras_hub, preset, str(task_class))
            backbone, described = task.backbone, f"{facts['backbone_class']} + {task_class}"
        elif lm_head:
            task, described = _causal_lm(keras_hub, preset, facts["backbone_class"])
            backbone = task.backbone if task is not None else keras_hub.models.Backbone.from_preset(str(preset))
        else:
            task, described = None, str(facts["backbone_class"])
            backbone = keras_hub.models.Backbone.from_preset(str(preset))
    except Exception as e:  # KerasHub refuses the preset: its own first line says why (the rest dumps values)
        said = (str(e).strip().splitlines() or [""])[0][:300]
        refused = UsageError(f"KerasHub cannot load the preset: {type(e).__name__}: {said}", path=preset)
        if ctx.to == "pytorch":
            report.notes.append(f"forward check skipped: {refused}")
        else:
            report.fail_output("keras_hub_from_preset", ())
            report.notes.append(f"{refused}; the output is not a preset KerasHub loads")
        return None
    return _KerasSide(backbone, task, described, keras.backend.backend(), keras.ops.convert_to_numpy)


def _task(keras_hub: Any, preset: Path, task_class: str) -> Any:
    """The preset's task; where KerasHub's own task loading fails (a backbone whose config it cannot read back as a
    task's part) and the task holds no weights of its own, the task built on the backbone KerasHub does load."""
    cls = getattr(keras_hub.models, task_class)
    try:
        return cls.from_preset(str(preset), preprocessor=None)
    except (TypeError, AttributeError):  # what KerasHub raises reading such a config back
        if (preset / "task.weights.h5").exists():
            raise
    return cls(backbone=keras_hub.models.Backbone.from_preset(str(preset)), preprocessor=None)


def _causal_lm(keras_hub: Any, preset: Path, backbone_class: str) -> tuple[Any | None, str]:
    """The causal LM KerasHub has for this backbone, when it adds no weights of its own; else (None, backbone)."""
    try:
        task = keras_hub.models.CausalLM.from_preset(str(preset), preprocessor=None)
    except ValueError:  # KerasHub has no causal LM for this backbone
        return None, backbone_class
    if len(task.weights) != len(task.backbone.weights):
        return None, backbone_class
    return task, f"{backbone_class} + {type(task).__name__}"


def _input_names(backbone: Any) -> list[str]:
    """The backbone's input names; a single unnamed input of rank 4 (KerasHub leaves some image backbones'
    ``Input`` unnamed, Keras then calls it ``keras_tensor_N``) is the images."""
    structure = backbone.input
    if isinstance(structure, dict):
        return sorted(structure)
    names = [t.name for t in backbone.inputs]
    if len(names) == 1 and names[0] not in _INPUTS and len(backbone.inputs[0].shape) == 4:
        return ["images"]
    return names


def _real_tokens(value: Any, real: np.ndarray | None) -> np.ndarray:
    """Per-token outputs at the real tokens only (what a padded position computes is nobody's output); others, and
    outputs of inputs without a mask, whole."""
    array = np.asarray(value)
    return array[real] if real is not None and array.shape[: real.ndim] == real.shape else array
