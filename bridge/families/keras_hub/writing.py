"""transformers 5 -> KerasHub presets: the TF-side layout, class and preset JSON files of a transformers source.

The layout is the inverse of the per-family tables of :mod:`.families`: every entry's Keras variable path (a layer's
index as the ``_<k>`` suffix Keras 3 gives a model's later layers of one class), its shape computed from the
transformers tensor (the einsum kernels split by ``head_dim``), so :func:`bridge.families.keras_hub.pack.bind`
spells the same exact reshapes both ways and a round trip is bit-exact.  A family is written when its module gives
it a :class:`~bridge.families.keras_hub.table.Writing`: the backbone's Keras config from transformers' config, and
its module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bridge.core.errors import UsageError
from bridge.core.keras_hub_preset import TASK_PREFIX
from bridge.families.keras_hub.families import FAMILIES, family_for
from bridge.families.keras_hub.table import Config, Entry, Family, Writing, blocks_of, policy, scoped, snake
from bridge.families.keras_hub.tokenizer import preset_tokenizer, tokenizer_notes

Shapes = dict[str, tuple[int, ...]]

# The versions whose preset layout this module writes (metadata.json names them, as save_to_preset does).
KERAS_VERSION = "3.15.1"
KERAS_HUB_VERSION = "0.32.0"


WRITTEN_TYPES = tuple(dict.fromkeys(f.model_type for f in FAMILIES if f.writing is not None))


def writing_of(config: Config) -> tuple[Family, Writing]:
    family = family_for(config)
    if family is None or family.writing is None:
        raise UsageError(
            f"No KerasHub preset is written for the {config.get('model_type')} family",
            detail="config.json's model_type",
            hint=f"KerasHub presets are written for: {', '.join(WRITTEN_TYPES)}",
        )
    return family, family.writing


def task_class(family: Family, config: Config) -> str | None:
    """The KerasHub task class of the transformers class config.json names, or None (the backbone alone)."""
    saved = config.get("architectures")
    name = saved[0] if isinstance(saved, list) and saved else None
    return next((task for task, cls in family.tasks.items() if cls == name), None)


def _literal(entry: Entry) -> bool:
    """An entry whose source regex is a plain path: the one path written for it."""
    return re.escape(entry.source) == entry.source


def _part(row: int | None, entry: Entry, keras: Config) -> tuple[int, int] | None:
    return None if row is None else (row, len(entry.rows(keras)))


def _paths(
    family: Family, writing: Writing, config: Config, keras: Config
) -> Iterator[tuple[str, str, str, tuple[int, int] | None, Config]]:
    """(Keras variable path, transformers name without the base prefix, kind, ``(row, rows)`` where the name is
    one row of the variable's axis 0, else None, the Keras config sizing its heads) of every variable written that
    transformers has a tensor for."""
    own = scoped(keras, family.scope)  # what sizes the heads of the backbone's own layers (a tower's config)
    for entry in family.entries_for(keras):
        if "{i}" not in entry.target and _literal(entry) and entry.target:
            if entry.source == writing.tied_path and config.get("tie_word_embeddings"):
                continue
            for row in entry.rows(keras):
                yield entry.source, entry.named(row), entry.kind, _part(row, entry, keras), own
    for stack in family.layer_stacks(keras):
        for i in range(stack.count(keras, family.layers_key)):
            k = i + stack.start(keras)
            layer = f"layers/{stack.layer}" + (f"_{k}" if k else "")
            for entry in stack.entries_of(i, keras):
                if _literal(entry):
                    for row in entry.rows(keras):
                        part = _part(row, entry, keras)
                        yield (
                            f"{layer}/{entry.source}",
                            entry.named(row, i),
                            entry.kind,
                            part,
                            stack.config_of(keras, i),
                        )
    if task_class(family, config) is not None:
        for entry in family.task_entries:
            if _literal(entry):
                yield TASK_PREFIX + entry.source, entry.target, entry.kind, None, keras


def _tf_shape(kind: str, shape: tuple[int, ...], head_dim: int, keras: Config) -> tuple[int, ...]:
    """The Keras variable's shape for a transformers tensor of ``shape`` (:func:`pack._transform` inverted); a
    kind ending ``@...`` takes its block of the tensor first."""
    kind, _, part = kind.partition("@")
    kind, _, within = kind.partition("%")
    if within:  # the Keras variable holds n such blocks side by side along its last axis
        *lead, last = _tf_shape(kind, shape, head_dim, keras)
        return (*lead, last * int(within.split("/")[1]))
    if part:
        k, weights, axis, _ = blocks_of(part, keras, len(shape))
        shape = (*shape[:axis], shape[axis] * weights[k] // sum(weights), *shape[axis + 1 :])
    kind, _, per_head = kind.partition("*")
    head_dim *= int(per_head or 1)
    if kind.startswith("rows+"):
        return (shape[0] - int(kind.removeprefix("rows+")), *shape[1:])
    if kind == "dense":
        return shape[::-1]
    if kind == "heads_in":  # [heads * head_dim, hidden] -> [hidden, heads, head_dim]
        return (shape[1], shape[0] // head_dim, head_dim)
    if kind == "heads_out":  # [hidden, heads * head_dim] -> [heads, head_dim, hidden]
        return (shape[1] // head_dim, head_dim, shape[0])
    if kind == "heads_first_in":  # [heads * head_dim, hidden] -> [heads, hidden, head_dim]
        return (shape[0] // head_dim, shape[1], head_dim)
    if kind == "conv_heads_in":  # [hidden, heads * head_dim] -> [hidden, heads, head_dim]
        return (shape[0], shape[1] // head_dim, head_dim)
    if kind == "conv_heads_out":  # [heads * head_dim, hidden] -> [heads, head_dim, hidden]
        return (shape[0] // head_dim, head_dim, shape[1])
    if kind == "heads_bias":
        return (shape[0] // head_dim, head_dim)
    if kind == "conv1d":  # [out, in, width] -> [width, in, out]
        return shape[::-1]
    if kind == "conv2d":  # [out, in, h, w] -> [h, w, in, out]
        return (shape[2], shape[3], shape[1], shape[0])
    if kind == "depthwise2d":  # [channels, 1, h, w] -> [h, w, channels, 1]
        return (shape[2], shape[3], shape[0], shape[1])
    if kind == "lead1":
        return shape[1:]
    if kind == "axis1":
        return (shape[0], *shape[2:])
    return shape


def _head_dim(keras: Config) -> int:
    """The attention head size a backbone's Keras config gives (its own ``head_dim``, else hidden / heads); 0 for a
    backbone without attention heads of its own (FNet's Fourier mixing; heads only in its stacks; a list of head
    counts, one per stage: Swin's)."""
    heads = keras.get("num_query_heads") or keras.get("num_heads") or keras.get("num_attention_heads")
    return int(keras.get("head_dim") or (keras["hidden_dim"] // heads if isinstance(heads, int) else 0))


def preset_layout(shapes: Shapes, config: Config) -> Shapes:
    """The preset's variables (``task/`` for the task's head) and shapes, computed from the source's tensors."""
    family, writing = writing_of(config)
    keras = writing.keras_config(config)  # a config the backbone cannot express is refused before any plan
    prefix = family.base_prefix + "."
    by_name = {n.removeprefix(prefix): s for n, s in shapes.items()}
    layout: Shapes = {}
    missing: list[str] = []
    for path, name, kind, row, sizing in _paths(family, writing, config, keras):
        target = family.source_name(name, by_name)
        if target not in by_name:
            missing.append(target)
            continue
        head_dim = _head_dim(sizing) if "heads" in kind else 0  # of the layer's own (nested) config
        shape = _tf_shape(kind, by_name[target], head_dim, keras)
        layout[path] = shape if row is None else (row[1], *shape)  # the rows stacked along a new axis 0
    if missing:
        raise UsageError(
            f"The source lacks tensors the KerasHub {family.backbone} has",
            detail=f"{len(missing)} missing: " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""),
            hint=f"Convert from a class that has them ({family.base_class} or one of "
            + ", ".join(family.tasks.values())
            + ")",
        )
    for entry in family.keras_only(keras):  # zeros, with the shape the entry gives
        layout[entry.source] = entry.shape_for(keras)
    return layout


def preset_class(heads: object, config: Config) -> str:
    """The KerasHub class the preset is loaded as: the task's, else the backbone's."""
    family, _ = writing_of(config)
    return task_class(family, config) or family.backbone


def _serialized(module: str, class_name: str, config: Config) -> Config:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": f"keras_hub>{class_name}"}


def preset_files(config: Config, class_name: str) -> dict[str, Any]:
    """What the preset writer needs besides the tensors: the JSON files as ``save_to_preset`` writes them
    (``metadata.json`` less what the tensors give: ``parameter_count``, ``date_saved``) and the vocabulary."""
    family, writing = writing_of(config)
    backbone = family.backbone
    backbone_config = {
        "name": snake(backbone),
        "trainable": True,
        "dtype": policy("float32"),
        **writing.keras_config(config),
    }
    files: dict[str, Any] = {
        "config.json": _serialized(writing.module_of(backbone), backbone, backbone_config),
        "metadata.json": {
            "keras_version": KERAS_VERSION,
            "keras_hub_version": KERAS_HUB_VERSION,
            "tasks": list(writing.metadata_tasks),
        },
    }
    task = task_class(family, config)
    if task is not None:
        own = writing.task_configs.get(task)
        task_config = {
            "backbone": files["config.json"],
            "preprocessor": None,
            "name": snake(task),
            **(own(config) if own else {}),
        }
        files["task.json"] = _serialized(writing.module_of(task), task, task_config)
        if family.task_entries:  # a task with weights of its own is saved compiled (KerasHub's default)
            files["task_optimizer"] = {"name": "adam", "learning_rate": 5e-5}
    files |= preset_tokenizer(family, writing, config)
    return {"preset_files": files}


def preset_notes(config: Config) -> list[str]:
    """What a preset computes otherwise than the transformers source, for the plan."""
    family, writing = writing_of(config)
    return [*writing.notes(config), *tokenizer_notes(family, writing, config)]
