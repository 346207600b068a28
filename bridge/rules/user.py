"""User rule files (``--rules my_rules.yaml|.json|.py``): rules tried before a pack's own.

A rule file extends a pack: its rules come first, so they can rename what the pack
does not know or override what it maps differently.  The format is the same data a
pack is made of (``bridge/rules/__init__.py``)::

    extends: google-bert          # optional: the pack to extend (default: detected)
    rules:
      - source: 'model/emb/(.*)'  # regex, matched in full against the TF-side name
        target: 'bert.embeddings.{1}'
        transform: transpose      # optional, default identity

A ``.py`` file defines ``RULES`` (a list of :class:`~bridge.rules.Rule` or of dicts as
above) and optionally ``EXTENDS``, or ``PACK``, a whole :class:`~bridge.rules.RulePack`.
A ``.py`` file is the user's own code and runs; a checkpoint's never does.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.core.errors import CheckpointNotFound, UsageError
from bridge.rules import Rule, RulePack

RULE_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".py")


@dataclass(frozen=True)
class RuleFile:
    """What a rule file brings: extra rules, the pack they extend, or a whole pack."""

    path: Path
    rules: tuple[Rule, ...] = ()
    extends: str | None = None
    pack: RulePack | None = None


def is_rule_file(value: str) -> bool:
    """``--rules`` names a file (rather than a pack) when it ends like one or exists."""
    return value.endswith(RULE_FILE_SUFFIXES) or Path(value).is_file()


def load_rule_file(value: str) -> RuleFile:
    path = Path(value)
    if not path.is_file():
        raise CheckpointNotFound("Rule file not found", path=path, hint="Pass a .yaml, .json or .py rule file")
    if path.suffix == ".py":
        return _from_python(path)
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml  # small, and only for YAML rule files

            data = yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise UsageError(
            "Unreadable rule file",
            path=path,
            detail=str(e).splitlines()[0],
            hint="See `bridge check --help` for the format",
        ) from e
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise UsageError(
            "Unreadable rule file",
            path=path,
            detail="expected a mapping with a `rules` list",
            hint="rules: [{source: REGEX, target: TEMPLATE, transform: NAME}]",
        )
    unknown = set(data) - {"extends", "rules"}
    if unknown:
        raise UsageError(
            "Unknown keys in rule file", path=path, detail=", ".join(sorted(unknown)), hint="Use `extends` and `rules`"
        )
    rules = tuple(_rule(item, path, i) for i, item in enumerate(data.get("rules") or []))
    return _checked(RuleFile(path, rules, _extends(data.get("extends"), path)))


def _from_python(path: Path) -> RuleFile:
    spec = importlib.util.spec_from_file_location(f"bridge_user_rules_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError("Cannot import rule file", path=path, hint="Pass a Python file defining RULES or PACK")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise UsageError(
            "The rule file raised an error on import",
            path=path,
            detail=f"{type(e).__name__}: {e}",
            hint="Fix the file; run it with python to see the traceback",
        ) from e
    pack = getattr(module, "PACK", None)
    if pack is not None:
        if not isinstance(pack, RulePack):
            raise UsageError("PACK is not a RulePack", path=path, hint="from bridge.rules import RulePack")
        return _checked(RuleFile(path, pack=pack))
    items = getattr(module, "RULES", None)
    if not isinstance(items, (list, tuple)):
        raise UsageError(
            "The rule file defines neither RULES nor PACK",
            path=path,
            hint="RULES = [Rule(source, target, transform), ...], Rule from bridge.rules",
        )
    rules = tuple(item if isinstance(item, Rule) else _rule(item, path, i) for i, item in enumerate(items))
    return _checked(RuleFile(path, rules, _extends(getattr(module, "EXTENDS", None), path)))


def _checked(found: RuleFile) -> RuleFile:
    """Every regex of the file compiled now (rules compile lazily): a bad pattern is refused before any work."""
    rules = (*found.rules, *(found.pack.matching.rules if found.pack else ()))
    for i, rule in enumerate(rules):
        try:
            rule.compiled()
        except re.error as e:
            raise UsageError(
                f"Bad rule #{i + 1} in rule file", path=found.path, detail=f"{rule.source!r}: {e}", hint="Fix the regex"
            ) from e
    return found


def _rule(item: Any, path: Path, index: int) -> Rule:
    if (
        not isinstance(item, dict)
        or not {"source", "target"} <= set(item)
        or set(item) - {"source", "target", "transform"}
    ):
        raise UsageError(
            f"Bad rule #{index + 1} in rule file",
            path=path,
            detail=repr(item),
            hint="Each rule has `source` (regex), `target` (template), optional `transform`",
        )
    try:
        return Rule(str(item["source"]), str(item["target"]), str(item.get("transform", "identity")))
    except (re.error, ValueError) as e:
        raise UsageError(f"Bad rule #{index + 1} in rule file", path=path, detail=str(e), hint=repr(item)) from e


def _extends(value: Any, path: Path) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(
            "`extends` must be a pack name", path=path, detail=repr(value), hint="e.g. extends: google-bert"
        )
    return value
