"""What the commands share: the plan options declared once (one :class:`PlanRequest`), one way out for a report,
sizes and progress bars."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from bridge.quiet import bar_file, stderr_is_terminal

_TARGET_HELP = (
    "transformers class (BertForPreTraining), reference checkpoint, or TF layout (google-bert, hf-tf). "
    "Default: the class that keeps every head the source has."
)


def plan_request_options(
    *,
    side: bool = True,
    target: tuple[str, str] = ("CLASS|PATH|LAYOUT", _TARGET_HELP),
    source_format: tuple[str, ...] = ("--source-format", "--format"),
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The plan options (``--to`` where ``side``; ``--target`` as ``(metavar, help)``; the source format's option
    names), handed to the command as one parsed ``request`` instead of one argument each."""
    to = click.Choice(["pytorch", "tensorflow"])
    options = [click.option("--to", "to", type=to, required=True, help="The side to go to.")] if side else []
    options += [
        click.option("--target", metavar=target[0], help=target[1]),
        click.option(
            "--config",
            "config",
            type=click.Path(path_type=str, dir_okay=False),
            help="bert_config.json / config.json. Default: beside the source, else inferred.",
        ),
        click.option(
            "--rules",
            metavar="PACK|FILE",
            help="Rule pack name, or a rule file (.yaml/.json/.py) whose rules go before its pack's. "
            "Default: detected.",
        ),
        click.option(
            "--map",
            "maps",
            multiple=True,
            metavar="'SRC_REGEX=TARGET[@TRANSFORM]'",
            help="One-off rule tried first, e.g. --map 'bert/emb/(.*)=bert.embeddings.{1}'. Repeatable.",
        ),
        click.option("--strip-prefix", metavar="PREFIX", help="Remove PREFIX from PyTorch-side source names."),
        click.option("--add-prefix", metavar="PREFIX", help="Add PREFIX to PyTorch-side source names."),
        click.option(
            *source_format,
            "source_format",
            metavar="NAME",
            help="SOURCE's format; skip detection (see `bridge formats`).",
        ),
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_request(**kwargs: Any) -> None:
            from bridge.commands.plan_request import PlanRequest

            names = [f.name for f in dataclasses.fields(PlanRequest) if f.init]
            fields = {name: kwargs.pop(name) for name in names if name in kwargs}
            command(request=PlanRequest.parse(**fields), **kwargs)

        for option in reversed(options):
            with_request = option(with_request)
        return with_request

    return decorate


def emit(report: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """A command's one way out: the report as JSON (``--json``, for scripts) or as ``render`` writes it for people,
    then the report's exit code (1: it has gaps)."""
    click.echo(json.dumps(report.to_json(), indent=2, default=str) if as_json else render(report))
    if report.exit_code:
        sys.exit(report.exit_code)


def parse_size(text: str | None) -> int | None:
    """``500MB``, ``2GB``, ``1GiB`` or plain bytes -> bytes."""
    if text is None:
        return None
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    number = text.strip().upper().rstrip("B") + ("B" if text.strip().upper().endswith("B") else "")
    for unit in sorted(units, key=len, reverse=True):
        if unit and number.endswith(unit):
            return int(float(number[: -len(unit)]) * units[unit])
    try:
        return int(number)
    except ValueError:
        raise click.BadParameter(f"not a size: {text!r} (use e.g. 500MB, 2GB)") from None


def progress_bar(label: str) -> Any:
    """A progress-bar wrapper on a terminal, identity otherwise (pipes, CI, tests)."""

    def wrap(items: Any) -> Any:
        items = list(items)
        if not stderr_is_terminal() or len(items) < 2:
            yield from items
            return
        show = lambda r: r.name if r else ""  # noqa: E731
        with click.progressbar(items, label=label, file=bar_file(), item_show_func=show) as bar:
            yield from bar

    return wrap
