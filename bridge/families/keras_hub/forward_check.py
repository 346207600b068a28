"""The forward half of ``bridge verify`` for the ``keras-hub`` pack, either way of conversion: KerasHub's own model,
built by ``from_preset`` on whichever Keras backend is installed (``KERAS_BACKEND``), against the transformers model
of the other side, on one seeded batch of token ids with a padded row.  The last hidden states, and the logits where
both sides have a head, are compared on the real tokens.

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

# A KerasHub text backbone's input -> the transformers argument that carries the same thing.
_TRANSFORMERS_ARGUMENT = {"token_ids": "input_ids", "padding_mask": "attention_mask", "segment_ids": "token_type_ids"}


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
    unknown = sorted(set(names) - set(_TRANSFORMERS_ARGUMENT))
    if unknown:
        report.notes.append(
            f"forward check skipped: KerasHub's {keras_side.described} takes {', '.join(unknown)}; "
            "this check feeds token ids only"
        )
        return
    inputs = _inputs(model, ctx, segments="segment_ids" in names)
    feed = {name: inputs[_TRANSFORMERS_ARGUMENT[name]].astype("int32") for name in names}
    pt_hidden, pt_logits = _transformers_forward(model, inputs)
    real = inputs["attention_mask"] == 1
    hidden = keras_side.backbone(feed, training=False)
    if isinstance(hidden, dict):  # an encoder's outputs: the per-token one is the hidden states
        hidden = hidden["sequence_output"]
    keras_out = {"hidden_states": _real_tokens(keras_side.convert_to_numpy(hidden), real)}
    pt_out = {"hidden_states": _real_tokens(pt_hidden, real)}
    compared = "last hidden states"
    if keras_side.task is not None and pt_logits is not None:
        logits = keras_side.convert_to_numpy(keras_side.task(feed, training=False))
        keras_out["logits"], pt_out["logits"] = _real_tokens(logits, real), _real_tokens(pt_logits, real)
        compared += " and logits"
    elif pt_logits is not None:
        report.notes.append(f"logits not compared: KerasHub has no head beside the {keras_side.described}")
    batch, seq = real.shape
    report.notes.append(
        f"forward: KerasHub {keras_side.described} ({keras_side.backend} backend) against transformers "
        f"{type(model).__name__}, on {batch}x{seq} seeded token ids ({', '.join(names)}), the last row padded "
        f"from position {int(real[-1].sum())}: {compared} compared (per-token ones on the {int(real.sum())} real "
        "tokens)"
    )
    for name, value in pt_out.items():
        if keras_out[name].shape != value.shape:
            report.fail_output(name, tuple(value.shape))
            report.notes.append(f"{name} shapes differ: KerasHub {keras_out[name].shape}, transformers {value.shape}")
            return
    compare_outputs(report, keras_out, pt_out)


def _preset_folder(ctx: ForwardContext) -> Path:
    side = ctx.source if ctx.to == "pytorch" else ctx.out
    return side if side.is_dir() else side.parent


def _inputs(model: Any, ctx: ForwardContext, *, segments: bool) -> dict[str, np.ndarray]:
    """Seeded token ids (and segment ids, if asked, as many kinds as the model has), the last row padded from
    half way with the padding id, which no real token takes (RoBERTa's positions count the tokens that are not
    it)."""
    config = model.config
    vocab = int(model.get_input_embeddings().weight.shape[0])
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    seq = min(ctx.seq_len, int(positions)) if positions else ctx.seq_len
    rng = np.random.default_rng(ctx.seed)
    mask = np.ones((ctx.batch, seq), dtype=np.int64)
    mask[-1, max(1, seq // 2) :] = 0
    pad = int(getattr(config, "pad_token_id", None) or 0)
    drawn = rng.integers(0, vocab - 1, (ctx.batch, seq))
    ids = np.where(mask == 1, drawn + (drawn >= pad), pad).astype(np.int64)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if segments:
        kinds = max(1, int(getattr(config, "type_vocab_size", 1) or 1))
        inputs["token_type_ids"] = rng.integers(0, kinds, (ctx.batch, seq)).astype(np.int64)
    return inputs


def _transformers_forward(model: Any, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """The base model's last hidden state, and the head's logits when the class has a head."""
    import torch

    feed = {name: torch.from_numpy(value) for name, value in inputs.items()}
    with torch.no_grad():
        hidden = model.base_model(**feed).last_hidden_state.numpy()
        if model.base_model is model:
            return hidden, None
        logits = getattr(model(**feed), "logits", None)
    return hidden, None if logits is None else logits.numpy()


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
            task = getattr(keras_hub.models, str(task_class)).from_preset(str(preset), preprocessor=None)
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
    structure = backbone.input
    return sorted(structure) if isinstance(structure, dict) else [t.name for t in backbone.inputs]


def _real_tokens(value: Any, real: np.ndarray) -> np.ndarray:
    """Per-token outputs at the real tokens only (what a padded position computes is nobody's output); others whole."""
    array = np.asarray(value)
    return array[real] if array.shape[: real.ndim] == real.shape else array
