"""The target of a plan: ``--target`` as a transformers class (laid out from the pack's table without torch, or by
transformers on torch's ``meta`` device), a TF layout name, a reference checkpoint or a ``FILE.py:FACTORY``; else
the class or layout bridge picks for the source (its saved class, the pack's default)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.api import load
from bridge.core.errors import BridgeError, CheckpointNotFound, UsageError
from bridge.core.factory import is_factory
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint
from bridge.core.naming import closest
from bridge.core.plan import TargetSpec, TargetTensor
from bridge.rules import RulePack, packs


def target_from_config(
    ckpt: Checkpoint, pack: RulePack, to: str, target: str | None, cfg: dict[str, Any], notes: list[str]
) -> TargetSpec:
    """:func:`resolve_target`, with a config whose values a pack's layout cannot use (a key missing, ``[]``,
    ``NaN``, ``1e308`` where a size goes) reported as bad input naming the config, not as a crash."""
    where = next((n.removeprefix("config: ") for n in notes if n.startswith("config: ")), None)
    try:
        spec = resolve_target(ckpt, pack, to, target, cfg)
        for tensor in spec.tensors.values():  # a size from the config must be a size
            if not all(type(d) is int and 0 <= d < 2**48 for d in tensor.shape):
                raise ValueError(f"it gives `{tensor.name}` the shape {list(tensor.shape)}")
        return spec
    except BridgeError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise UsageError(
            f"The model config does not fit the {pack.name} rules",
            path=where or ckpt.path,
            detail=detail,
            hint="Pass --config with the model's own config file (sizes as positive integers)",
        ) from None


def tf_layouts() -> dict[str, RulePack]:
    """``--target`` layout name -> the pack that enumerates it (PyTorch -> TF)."""
    return {p.name: p for p in packs() if p.tf.writes}


def layout_names() -> dict[str, RulePack]:
    """Every TF layout name the docs print -> its pack: the layouts packs read (TF -> PyTorch, ``docs.layout``) and
    those they write (PyTorch -> TF, ``tf.layout``)."""
    return {p.name: p for p in packs() if p.tf.writes or p.docs.layout}


def _written_for(model_type: str) -> list[RulePack]:
    return [p for p in tf_layouts().values() if model_type in written_types(p)]


def written_types(pack: RulePack) -> tuple[str, ...]:
    """The families a pack writes its TF layout for."""
    return pack.tf.model_types if pack.tf.model_types is not None else pack.docs.model_types


def _written_summary() -> str:
    """The layouts written today and the families each writes, for a refusal."""
    return "; ".join(f"{p.name}: {', '.join(dict.fromkeys(written_types(p))) or 'any'}" for p in tf_layouts().values())


def layout_for_family(ckpt: Checkpoint, model_type: str, target: str | None) -> RulePack:
    """The pack that writes the TF layout for a PyTorch source of the ``model_type`` family (its ``config.json``
    says which): ``--target LAYOUT``, else the family's default layout (its own original one), else the first in
    pack order (transformers' ``tf_model.h5`` before a KerasHub preset).  A layout that does not write this family
    is refused by name, with the layouts it has: never read with another family's rules."""
    writers = _written_for(model_type)
    chosen = next((p for p in writers if p.tf.answers(p.name, target)), None)
    if target is None and writers:
        chosen = next((p for p in writers if p.tf.default), writers[0])
    if chosen is not None:
        return chosen
    readers = [p.name for p in layout_names().values() if p.docs.layout and model_type in p.docs.model_types]
    other_way = (
        f"{model_type} goes the other way, TensorFlow -> PyTorch (--to pytorch), from the {' or '.join(readers)} layout"
        if readers
        else f"no pack converts {model_type} either way yet"
    )
    if writers:
        read_only = "" if target in tf_layouts() else f" ({target} is read, TensorFlow -> PyTorch, only)"
        title = f"The {target} layout is not written for the {model_type} family{read_only}"
        hint = f"Use --target {' or '.join(p.name for p in writers)} (`bridge layouts` lists every layout)"
    else:
        title = f"No TensorFlow layout is written for the {model_type} family"
        hint = f"Today {other_way}; `bridge layouts` lists what goes which way"
    raise UsageError(
        title,
        path=ckpt.path,
        detail=f"config.json's model_type is `{model_type}`; TensorFlow layouts written: {_written_summary()}",
        hint=hint,
    )


def _layout_not_reachable(ckpt: Checkpoint, pack: RulePack, target: str) -> UsageError:
    """``--target LAYOUT`` that this PyTorch source's rules cannot write: a layout of another pack, a layout packs
    only read, or no layout at all (a TF source asked for a TF layout is refused before, by :func:`_same_side`)."""
    if target not in layout_names():
        read_only = ", ".join(n for n in layout_names() if n not in tf_layouts())
        known = f"{', '.join(tf_layouts())} (written); {read_only} (read, TensorFlow -> PyTorch, only)"
        return UsageError(f"Unknown TensorFlow layout '{target}'", hint=f"Known: {known}; or a reference path")
    if target not in tf_layouts():
        return UsageError(
            f"The {target} layout is read, not written",
            path=ckpt.path,
            detail=f"{target} converts TensorFlow -> PyTorch only; TensorFlow layouts written: {_written_summary()}",
            hint=f"Use --target {' or '.join(tf_layouts())} (`bridge layouts` lists what goes which way)",
        )
    return UsageError(
        f"The {target} layout does not fit this checkpoint",
        path=ckpt.path,
        detail=f"its names follow the {pack.name} rules",
        hint=f"Use --target {pack.name}, or a reference checkpoint of the {target} layout",
    )


def _is_reference(target: str) -> bool:
    """Whether ``--target`` names a checkpoint on disk (a path, or a TF prefix with files beside it)."""
    return Path(target).exists() or any(Path(target).parent.glob(Path(target).name + ".*"))


def reference_tf_names(target: str) -> list[str]:
    if not _is_reference(target):
        return []
    with load(target) as ref:
        return [r.name for r in ref.values() if r.kind == "model"] if ref.framework != "pytorch" else []


def resolve_target(ckpt: Checkpoint, pack: RulePack, to: str, target: str | None, config: dict[str, Any]) -> TargetSpec:
    """The :class:`TargetSpec` for ``--target`` (class name, layout name, reference checkpoint, or a
    ``file.py:factory`` that builds the target model: a ``torch.nn.Module`` or, to TensorFlow, a Keras model)."""
    if target and is_factory(target):
        if to == "pytorch":
            from pt_side.targets import module_spec

            return module_spec(target)
        from tf_side.keras_target import keras_spec

        return keras_spec(target)
    if target and not _is_reference(target) and ("/" in target or os.sep in target or Path(target).suffix):
        hint = "Give an existing reference checkpoint, FILE.py:FACTORY or a class name"
        raise CheckpointNotFound("Target not found", path=target, detail="the file does not exist", hint=hint)
    if target and _is_reference(target):
        with load(target) as ref:
            model = {r.name: r for r in ref.values() if r.kind == "model"}
            tensors = {n: TargetTensor(n, r.shape, r.dtype, pack.copy_owner(n, model)) for n, r in model.items()}
            layout = ref.metadata.get("layout")
            return TargetSpec(
                ref.framework if ref.framework != "keras" else "tensorflow",
                f"reference checkpoint {target}",
                tensors,
                config=config,
                base_prefix=pack.pt.base_prefix or _saved_base_prefix(target),
                metadata=_keras3_layout(ref.metadata) if layout == "keras3" else {},
            )
    if to == "tensorflow":
        if not pack.tf.writes:
            raise UsageError(f"The {pack.name} rules have no TensorFlow layout", hint="Pass --target REFERENCE_CKPT")
        if ckpt.framework != "pytorch" and (target is None or target in tf_layouts()):
            raise _same_side(ckpt, pack, target or pack.name)
        if target is not None and not pack.tf.answers(pack.name, target):
            raise _layout_not_reachable(ckpt, pack, target)
        shapes = {r.name: r.shape for r in ckpt.values()}
        heads, labels = pack.tf.source_heads(shapes, config) if pack.tf.source_heads else ([], None)
        try:
            if pack.tf.source_layout is not None:
                model_shapes = {r.name: r.shape for r in ckpt.values() if r.kind == "model"}
                layout = pack.tf.source_layout(model_shapes, config)
            else:
                assert pack.tf.layout is not None  # noqa: S101 - `writes` says one of the two is there
                layout = pack.tf.layout(config if labels is None else {**config, "num_labels": labels}, heads)
        except KeyError as e:
            raise UsageError(
                f"The {pack.name} TF layout needs the model config",
                path=ckpt.path,
                detail=f"no {e} in it",
                hint="Pass --config config.json",
            ) from e
        # A layout may store a tensor twice (a layer shared by two Keras layers): the copy is tied.
        tensors = {n: TargetTensor(n, s, None, pack.copy_owner(n, layout)) for n, s in layout.items()}
        class_name = pack.tf.class_name(heads, config) if pack.tf.class_name else pack.name
        described = f" ({class_name})" if pack.tf.class_name else ""
        return TargetSpec(
            "tensorflow",
            f"{pack.name} TF layout{described}",
            tensors,
            class_name=class_name,
            config=config,
            base_prefix=pack.pt.base_prefix or _class_base_prefix(config),
            chosen=False,  # the heads are the source's: a head the layout has no place for is lost, not chosen
            metadata=pack.tf.metadata(config, class_name) if pack.tf.metadata else {},
        )
    name = target or _saved_class(ckpt, pack, config)
    # A TF source's own class, from its config (a tf_model.h5's `architectures`), is the source's choice: the heads
    # its PyTorch counterpart lacks are the ones transformers itself drops when it converts that file.
    chosen = target is not None
    if name is None and pack.pt.saved_class is not None:
        name = pack.pt.saved_class(config, [r.name for r in ckpt.values()])
        chosen = name is not None
    if name is None and pack.pt.default_target is not None:
        name = pack.pt.default_target([r.name for r in ckpt.values()])
        name = _class_of_saved_type(ckpt, pack, config, name) or name
    if name is None:
        hint = (
            "Pass --target FILE.py:FACTORY (a function returning your PyTorch twin, an nn.Module) or a reference "
            "state dict: Keras layers are paired with its modules"
            if pack.matching.bind is not None
            else "Pass --target CLASS_NAME or a reference checkpoint"
        )
        raise UsageError(f"No target given for the {pack.name} rules", path=ckpt.path, hint=hint)
    if name in pack.pt.targets:
        class_layout = pack.pt.targets[name](config)
        tensors = {n: TargetTensor(n, shape, None, tied) for n, (shape, tied) in class_layout.items()}
        return TargetSpec(
            "pytorch",
            f"transformers {name}",
            tensors,
            class_name=name,
            config=config,
            base_prefix=pack.pt.base_prefix,
            chosen=chosen,
        )
    from pt_side.targets import transformers_class_names, transformers_spec

    # Case alone never tells two transformers classes apart (BertForPretraining is BertForPreTraining
    # mistyped): say so without importing transformers.
    if name.lower() in {known.lower() for known in pack.pt.targets}:
        raise _unknown_class(name, pack, ())
    others = transformers_class_names()  # None without transformers: transformers_spec says what to install
    if others is not None and name not in others:
        raise _unknown_class(name, pack, others)
    spec = transformers_spec(name, config, saved=bool(pack.pt.saved_names and pack.pt.saved_names(config)))
    spec.chosen = chosen
    return spec


def _same_side(ckpt: Checkpoint, pack: RulePack, layout: str) -> UsageError:
    """A TensorFlow-side source asked for a TF layout: its own layout is a rewrite that changes nothing (and, before
    this refusal, lost the heads the layout was not told of), another layout is reached through PyTorch."""
    if layout == pack.name:
        return UsageError(
            f"The source is already a TensorFlow checkpoint in the {pack.name} layout: --to tensorflow has nothing "
            "to convert",
            path=ckpt.path,
            hint="Pass --to pytorch to convert it to PyTorch (another TF layout is made from that output with "
            "--to tensorflow --target LAYOUT)",
        )
    return UsageError(
        f"A TensorFlow checkpoint in the {pack.name} layout is not rewritten into the {layout} layout directly",
        path=ckpt.path,
        hint=f"Pass --to pytorch, then convert that output with --to tensorflow --target {layout}",
    )


def _unknown_class(name: str, pack: RulePack, others: Sequence[str]) -> UsageError:
    """An unknown ``--target`` class: a did-you-mean (the pack's classes first) and the pack's classes."""
    pool = list(dict.fromkeys([*pack.pt.targets, *others]))
    near = closest(name, (), [(c, ()) for c in pool], same_shape=lambda a, b: False)
    known = ", ".join(pack.pt.targets) or "none"
    return UsageError(
        f"Unknown --target class '{name}'",
        detail="transformers has no such class",
        hint=(f"Did you mean {pool[near]}? " if near is not None else "")
        + f"The {pack.name} rules know: {known}; or pass another transformers class, "
        "a reference checkpoint or FILE.py:FACTORY",
    )


def _saved_class(ckpt: Checkpoint, pack: RulePack, config: dict[str, Any]) -> str | None:
    """A PyTorch source's own class, as its ``config.json`` names it (``architectures``), when the pack lays it out:
    the class that loads every tensor the source has."""
    if ckpt.framework != "pytorch":
        return None
    saved = config.get("architectures")
    name = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
    return name if name in pack.pt.targets else None


def _class_of_saved_type(ckpt: Checkpoint, pack: RulePack, config: dict[str, Any], default: str | None) -> str | None:
    """A PyTorch source whose ``config.json`` names a ``model_type`` other than the pack's default class's (a
    family whose names the pack compares as they are): the class of that type that takes every tensor."""
    model_type = config.get("model_type")
    if ckpt.framework != "pytorch" or not isinstance(model_type, str) or default is None:
        return None
    if (
        model_type in pack.docs.model_types
    ):  # the pack's own family: its default stands (and transformers stays unloaded)
        return None
    from pt_side.targets import class_keeping_every_tensor, model_type_of

    if model_type_of(default) in (None, model_type):
        return None
    names = [r.name for r in ckpt.values() if r.kind == "model"]
    return class_keeping_every_tensor(model_type, names, config)


def _class_base_prefix(config: dict[str, Any]) -> str | None:
    """The base-model prefix of the class a config's ``architectures`` names (a base model's names lack it)."""
    saved = config.get("architectures")
    name = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
    if name is None:
        return None
    from pt_side.targets import base_model_prefix

    return base_model_prefix(name)


def _saved_base_prefix(target: str) -> str | None:
    """The base-model prefix of the transformers class a reference directory's ``config.json`` names (``convert``
    writes it), for a pack of several families with no one prefix (``verify`` of a DistilBertModel, a BartModel)."""
    path = Path(target) / "config.json"
    if not path.is_file():
        return None
    config = load_json(path.read_bytes(), path=path, what="config", hint="Pass a JSON config file")
    saved = config.get("architectures") if isinstance(config, dict) else None
    name = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
    if name is None:
        return None
    from pt_side.targets import base_model_prefix

    return base_model_prefix(name)


def _keras3_layout(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a Keras 3 writer needs besides the tensors: every object's ``vars`` group and name."""
    return {"layout": "keras3", "object_names": dict(metadata.get("object_names", {}))}
