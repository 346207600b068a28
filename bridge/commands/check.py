"""``bridge check``: resolve the rule pack, the config and the target, then build the plan.

Only metadata is read.  A transformers class known to a rule pack is laid out
from the pack's table (no torch import); any other class is built on torch's
``meta`` device; a path is read as a reference checkpoint.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.api import load
from bridge.commands.plan_request import PlanRequest
from bridge.commands.target import layout_for_family, layout_names, reference_tf_names, target_from_config, tf_layouts
from bridge.core.errors import CheckpointNotFound, UsageError
from bridge.core.jsonio import load_json
from bridge.core.match import build_plan
from bridge.core.model import Checkpoint
from bridge.core.naming import closest
from bridge.core.pad_rows import pad_rows
from bridge.core.plan import Plan, TargetSpec, UserRuleUse
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
    with load(source, format=request.source_format) as ckpt:
        return plan_checkpoint(ckpt, request)


@quietly
def plan_checkpoint(ckpt: Checkpoint, request: PlanRequest) -> Plan:
    """:func:`run_check` of a checkpoint already open (``convert`` plans and then reads the one it opened)."""
    to, target, maps, rules = request.side(), request.target, request.maps, request.rules
    user = load_rule_file(rules) if rules and is_rule_file(rules) else None
    pack = _choose_pack(ckpt, to, target, rules, user, _source_model_type(ckpt, request.config))
    cfg, notes = _resolve_config(ckpt, pack, request.config)
    _refuse_config(ckpt, pack, cfg)
    spec = target_from_config(ckpt, pack, to, target, cfg, notes)
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


def _choose_pack(
    ckpt: Checkpoint,
    to: str,
    target: str | None,
    rules: str | None,
    user: RuleFile | None,
    model_type: str | None,
) -> RulePack:
    """``--rules NAME``, a rule file's own pack or the pack it extends, else the best-fitting pack."""
    if user is None:
        return get_pack(rules) if rules else _detect_pack(ckpt, to, target, model_type)
    if user.pack is not None:
        return user.pack
    if user.extends:
        return get_pack(user.extends)
    return _detect_pack(ckpt, to, target, model_type, user.rules)


def _source_model_type(ckpt: Checkpoint, config: str | os.PathLike[str] | dict[str, Any] | None) -> str | None:
    """The source's family as its transformers config names it (``model_type`` of ``--config`` or of the
    ``config.json`` beside it), or None: detection never reads a source with another family's rules."""
    if isinstance(config, dict):
        given: dict[str, Any] = config
    else:
        base = as_path(ckpt.path)
        path = Path(config) if config is not None else (base if base.is_dir() else base.parent) / _CONFIG_NAME
        if path.suffix == ".json" and path.is_file():
            given = _read_json(path)
        elif config is None and isinstance(ckpt.metadata.get("config"), dict):
            given = ckpt.metadata["config"]  # a source whose reader assembles its config (a companion folder)
        else:
            return None
    model_type = given.get("model_type")
    return model_type if isinstance(model_type, str) and model_type else None


def _of_family(candidates: list[RulePack], model_type: str | None) -> list[RulePack]:
    """The packs that convert the ``model_type`` family (a pack naming no family, structural, stays); all of them when
    no pack names it (a family no pack knows is refused by its names below)."""
    if model_type is None or not any(model_type in p.docs.model_types for p in candidates):
        return candidates
    return [p for p in candidates if not p.docs.model_types or model_type in p.docs.model_types]


def _detect_pack(
    ckpt: Checkpoint, to: str, target: str | None, model_type: str | None, extra_rules: tuple[Rule, ...] = ()
) -> RulePack:
    """The pack that maps most model tensors (with the user's rules counted for every pack) among the packs of the
    source's family (``model_type``); a source no rules map goes to a pack that claims it by structure
    (``detect``)."""
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
        if to == "tensorflow" and model_type is not None and (target is None or target in layout_names()):
            return layout_for_family(ckpt, model_type, target)
        if target in layouts:
            return layouts[target]
        names = reference_tf_names(target) if target else []
        if not names:
            return next(p for p in layouts.values() if p.tf.default)
    # On a tie the pack whose signature matched is the more specific one (a shared-stack encoder-decoder's names
    # are all BERT names too).
    candidates = _of_family(packs(), model_type)
    scored = sorted(((p.claims(names), p.detection.signature is not None, p.name, p) for p in candidates), reverse=True)
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
    assembled = ckpt.metadata.get("config")  # a reader's own, where no file lies beside (a companion folder's)
    if isinstance(assembled, dict):
        return dict(assembled), [f"config: {ckpt.path} (its networks' config files, as its reader joined them)"]
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
