"""``bridge check``: resolve the rule pack, the config and the target, then build the plan.

Only metadata is read.  A transformers class known to a rule pack is laid out
from the pack's table (no torch import); any other class is built on torch's
``meta`` device; a path is read as a reference checkpoint.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bridge.api import load
from bridge.commands.plan_request import PlanRequest
from bridge.core.errors import BridgeError, CheckpointNotFound, UsageError
from bridge.core.factory import is_factory
from bridge.core.jsonio import load_json
from bridge.core.match import build_plan
from bridge.core.model import Checkpoint
from bridge.core.naming import closest
from bridge.core.pad_rows import pad_rows
from bridge.core.plan import Plan, TargetSpec, TargetTensor, UserRuleUse
from bridge.core.source import as_path
from bridge.quiet import quietly
from bridge.rules import Rule, RulePack, get_pack, packs
from bridge.rules.user import RuleFile, is_rule_file, load_rule_file

_CONFIG_NAME = "config.json"  # transformers' own; a pack names its family's others (``bert_config.json``)


def check(
    source: str | os.PathLike[str],
    *,
    to: str,
    target: str | None = None,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    rules: str | None = None,
    maps: tuple[str, ...] = (),
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    source_format: str | None = None,
) -> Plan:
    """Plan the conversion of ``source`` to the ``to`` side without moving a byte.

    Args:
        source: the checkpoint to convert (any readable format).
        to: ``"pytorch"`` or ``"tensorflow"``.
        target: a transformers class name (``BertForPreTraining``), a reference checkpoint
            path, or, for ``to="tensorflow"``, a layout name (``google-bert``, the default, or
            ``hf-tf``). Default: the class that keeps every head the source has.
        config: a config file or dict; default: ``config.json``/``bert_config.json`` beside
            the source, else inferred from shapes (the report says what was assumed).
        rules: a rule-pack name, or a rule file (``.yaml``/``.json``/``.py``, see
            :mod:`bridge.rules.user`) whose rules go before its pack's; default: detected.
        maps: one-off rules ``"SRC_REGEX=TARGET_TEMPLATE"`` tried before the pack's.
        strip_prefix: remove this prefix from PyTorch-side source names.
        add_prefix: add this prefix to PyTorch-side source names.
        source_format: skip format detection.

    Returns:
        The :class:`~bridge.core.plan.Plan`; ``plan.ok`` and ``plan.exit_code`` give the verdict.
    """
    request = PlanRequest.parse(
        to=to,
        target=target,
        config=config,
        rules=rules,
        maps=maps,
        strip_prefix=strip_prefix,
        add_prefix=add_prefix,
        source_format=source_format,
    )
    return run_check(source, request)


@quietly
def run_check(source: str | os.PathLike[str], request: PlanRequest) -> Plan:
    """:func:`check` of a parsed :class:`PlanRequest` (the CLI's)."""
    to, target, maps, rules = request.side(), request.target, request.maps, request.rules
    user = load_rule_file(rules) if rules and is_rule_file(rules) else None
    with load(source, format=request.source_format) as ckpt:
        pack = _choose_pack(ckpt, target, rules, user)
        cfg, notes = _resolve_config(ckpt, pack, request.config)
        _refuse_config(ckpt, pack, cfg)
        spec = _target_from_config(ckpt, pack, to, target, cfg, notes)
        if pack.matching.bind is not None:  # a structural pack turns this source + target into exact-name rules
            pack, bound_notes = pack.matching.bind(ckpt, spec)
            notes = bound_notes + notes
        mapped = list(request.map_rules)
        extra = mapped + list(user.rules if user else ())
        plan = build_plan(
            ckpt, spec, pack, extra_rules=extra, strip_prefix=request.strip_prefix, add_prefix=request.add_prefix
        )
        notes += _user_rule_uses(ckpt, spec, plan, list(zip(maps, mapped, strict=True)), user)
        plan.pad_rows = pad_rows(ckpt, [pack], sample=True)
    if user is not None:
        notes.append(f"rules: {len(user.rules)} from {user.path}" if user.pack is None else f"rules: {user.path}")
    plan.notes.extend(notes)
    plan.notes.extend(f"warning: {w}" for w in ckpt.warnings)
    return plan


def _refuse_config(ckpt: Checkpoint, pack: RulePack, cfg: dict[str, Any]) -> None:
    """The chosen pack's refusal of a source it maps but whose config it cannot convert faithfully."""
    names = [r.name for r in ckpt.values() if r.kind == "model"]
    reason = pack.detection.refuses(names, cfg) if pack.detection.refuses else None
    if reason is not None:
        raise UsageError(
            "This checkpoint's model config is not supported by its rules",
            path=ckpt.path,
            detail=reason,
            hint="Convert it with the tool that wrote it, or keep the model in the framework it was trained in",
        )


def _target_from_config(
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


def _choose_pack(ckpt: Checkpoint, target: str | None, rules: str | None, user: RuleFile | None) -> RulePack:
    """``--rules NAME``, a rule file's own pack or the pack it extends, else the best-fitting pack."""
    if user is None:
        return get_pack(rules) if rules else _detect_pack(ckpt, target)
    if user.pack is not None:
        return user.pack
    if user.extends:
        return get_pack(user.extends)
    return _detect_pack(ckpt, target, user.rules)


def _detect_pack(ckpt: Checkpoint, target: str | None, extra_rules: tuple[Rule, ...] = ()) -> RulePack:
    """The pack that maps most model tensors (with the user's rules counted for every pack); a source no rules
    map goes to a pack that claims it by structure (``detect``)."""
    names = [r.name for r in ckpt.values() if r.kind == "model"]
    if extra_rules:
        names = [n for n in names if not any(rule.apply(n) for rule in extra_rules)] or names
    if ckpt.framework == "pytorch" and target is not None:
        # A model built by the user's code (a Keras model to fill) is matched by structure; a target file may
        # be claimed by a pack (a Keras weights file).
        for pack in packs():
            if pack.detection.claims_target is not None and pack.detection.claims_target(target):
                return pack
    if ckpt.framework == "pytorch":
        # Rules are written over TF-side names, so a PyTorch source is placed by its TF side:
        # the layout asked for, else the names of a TF reference checkpoint, else the default layout.
        layouts = tf_layouts()
        if target in layouts:
            return layouts[target]
        names = _reference_tf_names(target) if target else []
        if not names:
            return next(p for p in layouts.values() if p.tf.default)
    # On a tie the pack whose signature matched is the more specific one (a shared-stack encoder-decoder's names
    # are all BERT names too).
    scored = sorted(((p.claims(names), p.detection.signature is not None, p.name, p) for p in packs()), reverse=True)
    if not scored or scored[0][0] == 0:
        for pack in packs():  # a family the pack knows it cannot map: refused by name, never paired by guesswork
            reason = (
                pack.detection.refuses(names, _given_config(ckpt, pack, None)[0] or {})
                if pack.detection.refuses
                else None
            )
            if reason is not None:
                raise UsageError(
                    "This checkpoint's model family is not supported",
                    path=ckpt.path,
                    detail=reason,
                    hint="Pass --rules FILE with rules for its names, or convert it with the tool that wrote it",
                )
        by_structure = [p for p in packs() if p.detection.detect is not None and p.detection.detect(ckpt)]
        if by_structure:
            return by_structure[0]
        raise UsageError(
            "No rule pack recognises this checkpoint",
            path=ckpt.path,
            detail=f"{len(names)} model tensors, e.g. `{names[0] if names else '-'}`",
            hint="Pass --rules NAME, or one-off --map 'SRC_REGEX=TARGET' rules",
        )
    return scored[0][3]


def tf_layouts() -> dict[str, RulePack]:
    """``--target`` layout name -> the pack that enumerates it (PyTorch -> TF)."""
    return {p.name: p for p in packs() if p.tf.layout is not None}


def _layout_not_reachable(ckpt: Checkpoint, pack: RulePack, target: str) -> UsageError:
    """``--target LAYOUT`` that this PyTorch source's rules cannot write: a layout of another pack, or no layout at
    all (a TF source asked for a TF layout is refused before, by :func:`_same_side`)."""
    if target not in tf_layouts():
        known = ", ".join(tf_layouts())
        return UsageError(f"Unknown TensorFlow layout '{target}'", hint=f"Known: {known}, or a reference path")
    return UsageError(
        f"The {target} layout does not fit this checkpoint",
        path=ckpt.path,
        detail=f"its names follow the {pack.name} rules",
        hint=f"Use --target {pack.name}, or a reference checkpoint of the {target} layout",
    )


def _is_reference(target: str) -> bool:
    """Whether ``--target`` names a checkpoint on disk (a path, or a TF prefix with files beside it)."""
    return Path(target).exists() or any(Path(target).parent.glob(Path(target).name + ".*"))


def _reference_tf_names(target: str) -> list[str]:
    if not _is_reference(target):
        return []
    with load(target) as ref:
        return [r.name for r in ref.values() if r.kind == "model"] if ref.framework != "pytorch" else []


def _resolve_config(
    ckpt: Checkpoint, pack: RulePack, config: str | os.PathLike[str] | dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """The model config: what the user gives (or a file beside the source) over what other files beside the source
    say (a vocabulary's special tokens, :attr:`ConfigHooks.from_files`) over what the shapes say."""
    cfg, notes = _config_from_shapes(ckpt, pack, config)
    if pack.config.from_files is None:
        return cfg, notes
    base = as_path(ckpt.path)
    found, found_notes = pack.config.from_files(base if base.is_dir() else base.parent)
    given = _given_config(ckpt, pack, config)[0] or {}
    kept = {k: v for k, v in found.items() if k not in given}
    if found and not kept:  # the given config sets every key: what the files say is not used
        return cfg, notes
    return {**cfg, **kept}, notes + found_notes


def _config_from_shapes(
    ckpt: Checkpoint, pack: RulePack, config: str | os.PathLike[str] | dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """What the user gives (or a config file beside the source) over what the shapes say.

    The inferred part still matters with a config file: structure facts that only the checkpoint
    knows (a name prefix, whether stacks are shared) come from it; the file decides every key it sets.
    """
    given, notes = _given_config(ckpt, pack, config)
    if pack.config.from_source is None:
        return given or {}, notes
    shapes = {r.name: r.shape for r in ckpt.values()}
    try:
        inferred, inferred_notes = pack.config.from_source(shapes)
    except (KeyError, ValueError) as e:
        if given is not None:
            return given, notes
        raise UsageError(
            "Cannot infer the model config from the checkpoint",
            path=ckpt.path,
            detail=f"missing {e}",
            hint="Pass --config config.json",
        ) from e
    if given is None:
        return inferred, inferred_notes
    if "model_type" in inferred and given.get("model_type") == inferred["model_type"]:
        return given, notes  # a transformers config of the very model the shapes describe is complete as it is
    kept = [n for n in inferred_notes if not n.startswith("config inferred from tensor shapes")]
    return {**given, **{k: v for k, v in inferred.items() if k not in given}}, notes + kept


def _given_config(
    ckpt: Checkpoint, pack: RulePack, config: str | os.PathLike[str] | dict[str, Any] | None
) -> tuple[dict[str, Any] | None, list[str]]:
    if isinstance(config, dict):
        return dict(config), []
    if config is not None:
        path = Path(config)
        if not path.is_file():
            names = " or ".join((_CONFIG_NAME, *pack.config.files))
            raise CheckpointNotFound("Config file not found", path=path, hint=f"Pass the model's config file ({names})")
        parser = next((f for pattern, f in pack.config.parsers.items() if fnmatch.fnmatch(path.name, pattern)), None)
        if parser is not None:
            return _parse_config(path, parser)
        return _read_json(path), [f"config: {path}"]
    base = as_path(ckpt.path)
    folder = base if base.is_dir() else base.parent
    for name in (_CONFIG_NAME, *pack.config.files):
        if (folder / name).is_file():
            return _read_json(folder / name), [f"config: {folder / name}"]
    for name, parser in pack.config.parsers.items():  # a family's own config format (a gin file)
        if not glob.has_magic(name) and (folder / name).is_file():
            return _parse_config(folder / name, parser)
    return None, []


def _parse_config(
    path: Path, parser: Callable[[str], tuple[dict[str, Any], list[str]]]
) -> tuple[dict[str, Any], list[str]]:
    """A config file in a pack's own format (not JSON), and what the parser notes about it."""
    try:
        config, notes = parser(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError("Unreadable config", path=path, detail=str(e), hint="Pass the run's config file") from e
    return dict(config), [f"config: {path}", *notes]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as e:
        raise UsageError("Unreadable config", path=path, detail=str(e), hint="Pass a JSON config file") from e
    data = load_json(text, path=path, what="config", hint="Pass a JSON config file", error=UsageError)
    if not isinstance(data, dict):
        raise UsageError("Unreadable config", path=path, detail="not a JSON object", hint="Pass a JSON config file")
    return data


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
        if pack.tf.layout is None:
            raise UsageError(f"The {pack.name} rules have no TensorFlow layout", hint="Pass --target REFERENCE_CKPT")
        if ckpt.framework != "pytorch" and (target is None or target in tf_layouts()):
            raise _same_side(ckpt, pack, target or pack.name)
        if target not in (None, pack.name):
            raise _layout_not_reachable(ckpt, pack, target)
        shapes = {r.name: r.shape for r in ckpt.values()}
        heads, labels = pack.tf.source_heads(shapes, config) if pack.tf.source_heads else ([], None)
        try:
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
            base_prefix=pack.pt.base_prefix,
            chosen=False,  # the heads are the source's: a head the layout has no place for is lost, not chosen
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
    spec = transformers_spec(name, config)
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


def _user_rule_uses(
    ckpt: Checkpoint, spec: TargetSpec, plan: Plan, maps: list[tuple[str, Rule]], user: RuleFile | None
) -> list[str]:
    """Count the TF-side names each user rule matches (into ``plan.user_rules``): a rule that matches
    none is a typo or a rule for another checkpoint, and would otherwise be ignored in silence."""
    labelled = [("--map", i, rule, f"--map '{text}'") for i, (text, rule) in enumerate(maps, 1)]
    if user is not None:
        labelled += [
            (str(user.path), i, rule, f"rule {i} of {user.path.name} (source '{rule.source}')")
            for i, rule in enumerate(user.rules, 1)
        ]
    if not labelled:
        return []
    # Rules are written over TF-side names: the source's going to PyTorch, the layout's going to TensorFlow.
    source_is_pt = ckpt.framework == "pytorch"
    if (spec.framework == "pytorch") == source_is_pt:
        return [
            f"--map/--rules rules are not used: both sides are {'PyTorch' if source_is_pt else 'TensorFlow'}, "
            "so names are compared as they are (--strip-prefix/--add-prefix align them)"
        ]
    names = list(spec.tensors) if source_is_pt else [r.name for r in ckpt.values() if r.kind == "model"]
    notes = []
    for origin, index, rule, label in labelled:
        count = sum(rule.apply(n) is not None for n in names)
        plan.user_rules.append(UserRuleUse(origin, index, rule.source, count))
        if not count:
            near = closest(rule.source, (), [(n, ()) for n in names], same_shape=lambda a, b: False)
            example = f"did you mean `{names[near]}`?" if near is not None else f"e.g. `{names[0] if names else '-'}`"
            side = "TensorFlow layout" if source_is_pt else "source"
            notes.append(f"{label} matched no tensor: its regex must match a whole {side} name ({example})")
    return notes
