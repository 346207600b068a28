"""The options that shape a plan, parsed and validated once, as ``check``, ``convert`` and ``verify`` all take them.

The CLI builds one :class:`PlanRequest` from its shared option group, the Python API from its keyword arguments;
:meth:`PlanRequest.cli_options` writes it back as command-line options (convert's ``next:`` and ``check`` lines).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.core.errors import UsageError
from bridge.rules import Rule

SIDES = ("pytorch", "tensorflow")


@dataclass(frozen=True)
class PlanRequest:
    """What decides a plan besides the source.

    Attributes:
        to: ``"pytorch"`` or ``"tensorflow"``; None where the side follows from elsewhere (``verify``: the output's).
        target: a transformers class name, a reference checkpoint, a TF layout name or ``file.py:factory``.
        config: a config file (a path) or the config itself (a dict, which has no command-line form).
        rules: a rule-pack name or a rule file.
        maps: one-off rules ``"SRC_REGEX=TARGET[@TRANSFORM]"``, as given; :attr:`map_rules` holds them parsed.
        strip_prefix, add_prefix: what to remove from / add to PyTorch-side source names.
        source_format: a format name that skips detection.
    """

    to: str | None = None
    target: str | None = None
    config: str | dict[str, Any] | None = None
    rules: str | None = None
    maps: tuple[str, ...] = ()
    strip_prefix: str | None = None
    add_prefix: str | None = None
    source_format: str | None = None
    map_rules: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.to is not None and self.to not in SIDES:
            raise UsageError("Unknown --to side", hint=f"Use pytorch or tensorflow. Received: {self.to!r}")
        object.__setattr__(self, "map_rules", tuple(_parse_map(text) for text in self.maps))

    @classmethod
    def parse(
        cls,
        *,
        to: str | None = None,
        target: str | None = None,
        config: str | os.PathLike[str] | dict[str, Any] | None = None,
        rules: str | None = None,
        maps: Iterable[str] = (),
        strip_prefix: str | None = None,
        add_prefix: str | None = None,
        source_format: str | None = None,
    ) -> PlanRequest:
        """The request for these options, as the API and the CLI take them (a config path of any kind)."""
        return cls(
            to=to,
            target=target,
            config=config if config is None or isinstance(config, dict) else os.fspath(config),
            rules=rules,
            maps=tuple(maps),
            strip_prefix=strip_prefix,
            add_prefix=add_prefix,
            source_format=source_format,
        )

    def side(self) -> str:
        """:attr:`to`, which a plan needs."""
        if self.to is None:
            raise UsageError("No --to side given", hint="Pass --to pytorch or --to tensorflow")
        return self.to

    def cli_options(self) -> list[str]:
        """The command-line options that give this request, in the order the commands list them (a config given
        as a dict has no command-line form and is left out)."""
        args = ["--to", self.to] if self.to else []
        args += ["--target", self.target] if self.target else []
        args += ["--config", self.config] if isinstance(self.config, str) else []
        args += ["--rules", self.rules] if self.rules else []
        args += [arg for m in self.maps for arg in ("--map", m)]
        args += ["--strip-prefix", self.strip_prefix] if self.strip_prefix else []
        args += ["--add-prefix", self.add_prefix] if self.add_prefix else []
        return args + (["--source-format", self.source_format] if self.source_format else [])


def _parse_map(spec: str) -> Rule:
    source, sep, target = spec.partition("=")
    if not sep or not source or not target:
        raise UsageError("Bad --map", hint=f"Use --map 'SRC_REGEX=TARGET_TEMPLATE'. Received: {spec!r}")
    transform = "identity"
    if "@" in target:
        target, transform = target.rsplit("@", 1)
    try:
        return Rule(source, target, transform)
    except (ValueError, Exception) as e:  # re.error and bad transform specs
        raise UsageError("Bad --map", detail=str(e), hint=f"Received: {spec!r}") from e
