"""The ``bridge`` command line: thin shells over the Python API.

Each command imports its implementation inside the callback, so ``bridge --help``
loads click and this file only.  One error boundary: a :class:`BridgeError`
becomes one paragraph on stderr and exit code 2 (1 is kept for "the report has
gaps"); ``--debug`` or ``BRIDGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from bridge.errors import BridgeError


class _BridgeGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BridgeError as e:
            if ctx.meta.get("bridge.debug") or os.environ.get("BRIDGE_DEBUG") == "1":
                raise
            click.echo(click.style("error: ", fg="red", bold=True) + str(e), err=True)
            ctx.exit(e.exit_code)


@click.group(cls=_BridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ckpt-bridge", prog_name="bridge")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-paragraph errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Read TensorFlow, Keras and PyTorch checkpoints without the frameworks,
    and see what they hold.

    \b
    Examples:
      bridge inspect bert_model.ckpt            # a TF1 checkpoint (prefix, .index or its directory)
      bridge inspect model.safetensors --json   # one JSON object for scripts
      bridge inspect tf_model.h5 --filter pooler --stats
      bridge formats                            # what can be read

    \b
    Exit codes: 0 success, 1 the report has gaps, 2 bad input (the message names
    the file, the tensor and the fix).
    """
    ctx.meta["bridge.debug"] = debug


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--format", "format_name", metavar="NAME", help="Skip detection; see `bridge formats`.")
@click.option("--filter", "pattern", metavar="REGEX", help="Keep tensors whose name (or readable path) matches.")
@click.option("--depth", default=3, show_default=True, help="Scope components per row of the scope table.")
@click.option("--all", "every_tensor", is_flag=True, help="List every tensor instead of scopes.")
@click.option("--stats", is_flag=True, help="Read every value: min/max/mean/std, NaN/Inf counts (checks checksums).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def inspect(
    path: str,
    format_name: str | None,
    pattern: str | None,
    depth: int,
    every_tensor: bool,
    stats: bool,
    as_json: bool,
) -> None:
    """Show what a checkpoint holds: tensors by scope, optimizer slots apart.

    PATH is a file, a directory, or a TF checkpoint prefix (model.ckpt-1000).
    Only the index is read unless --stats is given. Names are exactly the keys
    the owning framework lists (tf.train.list_variables, the h5 dataset path,
    the state-dict key).

    \b
    Examples:
      bridge inspect uncased_L-12_H-768_A-12/
      bridge inspect ckpt-5 --filter 'OPTIMIZER_SLOT' --all
      bridge inspect pytorch_model.bin --json | jq '.tensors[].name'
    """
    from bridge.api import load
    from bridge.inspect import inspect_checkpoint, render_text

    with load(path, format=format_name) as ckpt:
        report = inspect_checkpoint(
            ckpt, pattern=pattern, depth=depth, stats=stats, progress=_progress("reading values")
        )
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2, default=str))
        else:
            click.echo(render_text(report, every_tensor=every_tensor))


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.option("--to", "to", type=click.Choice(["pytorch", "tensorflow"]), required=True, help="The side to go to.")
@click.option("--target", metavar="CLASS|PATH|LAYOUT",
              help="transformers class (BertForPreTraining), reference checkpoint, or TF layout (google-bert). "
              "Default: the class that keeps every head the source has.")  # fmt: skip
@click.option("--config", "config", type=click.Path(path_type=str, dir_okay=False),
              help="bert_config.json / config.json. Default: beside the source, else inferred.")  # fmt: skip
@click.option("--rules", metavar="PACK", help="Rule pack name (default: detected).")
@click.option("--map", "maps", multiple=True, metavar="'SRC_REGEX=TARGET[@TRANSFORM]'",
              help="One-off rule tried first, e.g. --map 'bert/emb/(.*)=bert.embeddings.{1}'. Repeatable.")  # fmt: skip
@click.option("--strip-prefix", metavar="PREFIX", help="Remove PREFIX from PyTorch-side source names.")
@click.option("--add-prefix", metavar="PREFIX", help="Add PREFIX to PyTorch-side source names.")
@click.option("--format", "format_name", metavar="NAME", help="Source format; skip detection.")
@click.option("-v", "--verbose", is_flag=True, help="Every row instead of folded scopes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: matched, unused, missing, mismatched, tied.")
def check(
    source: str,
    to: str,
    target: str | None,
    config: str | None,
    rules: str | None,
    maps: tuple[str, ...],
    strip_prefix: str | None,
    add_prefix: str | None,
    format_name: str | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Plan a conversion without moving a byte: which source tensor becomes which
    target tensor and how, what is left over and why, what the target still lacks.

    Only metadata is read. Exit code 0 when every target tensor that needs a
    source has one and nothing is mismatched, 1 when the plan has gaps, 2 on bad input.

    \b
    Examples:
      bridge check uncased_L-12_H-768_A-12/ --to pytorch
      bridge check bert_model.ckpt --to pytorch --target BertModel --json
      bridge check pytorch_model.bin --to tensorflow --target google-bert
      bridge check ckpt/ --to pytorch --map 'bert/emb/(.*)=bert.embeddings.{1}.weight'
    """
    from bridge.check import check as run_check
    from bridge.report import render_plan

    plan = run_check(
        source, to=to, target=target, config=config, rules=rules, maps=maps,
        strip_prefix=strip_prefix, add_prefix=add_prefix, source_format=format_name,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2, default=str))
    else:
        click.echo(render_plan(plan, verbose=verbose))
    if plan.exit_code:
        sys.exit(plan.exit_code)


@cli.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_formats(as_json: bool) -> None:
    """List the checkpoint formats this tool reads (names for --format)."""
    from bridge.formats import formats

    rows = formats()
    if as_json:
        payload = [{"name": f.name, "framework": f.framework, "description": f.description} for f in rows]
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(f.name) for f in rows)
    for f in rows:
        click.echo(f"{f.name:<{width}}  {f.description}")


def _progress(label: str) -> Any:
    """A progress-bar wrapper on a terminal, identity otherwise (pipes, CI, tests)."""

    def wrap(items: Any) -> Any:
        items = list(items)
        if not sys.stderr.isatty() or len(items) < 2:
            yield from items
            return
        show = lambda r: r.name if r else ""  # noqa: E731
        with click.progressbar(items, label=label, file=sys.stderr, item_show_func=show) as bar:
            yield from bar

    return wrap


def main() -> None:
    cli(prog_name="bridge")


if __name__ == "__main__":
    main()
