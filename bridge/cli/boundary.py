"""The CLI's one error boundary, and ``--debug`` before or after the subcommand.

A :class:`BridgeError` becomes one paragraph on stderr and its exit code (2: bad input; 1 is kept for "the report
has gaps"); anything else is an internal error, exit 3; ``--debug`` or ``BRIDGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from bridge.core.errors import BridgeError
from bridge.quiet import quiet_frameworks

INTERNAL_ERROR = 3  # not bad input and not a gap: a bug here or in a framework this called
DEBUG_HELP = "Show tracebacks instead of one-paragraph errors (also BRIDGE_DEBUG=1)."


def set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:  # ctx.meta is shared by the group's and the subcommand's contexts
        ctx.meta["bridge.debug"] = True


class BridgeCommand(click.Command):
    """A subcommand that also takes ``--debug``, so it works after the subcommand name too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(["--debug"], is_flag=True, expose_value=False, callback=set_debug, help=DEBUG_HELP)
        )


def _quiet_stdout() -> None:
    """The reader closed the pipe (``| head``): point stdout at /dev/null so the interpreter's
    flush at exit has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (a test runner's buffer): nothing to flush into
        pass
    finally:
        os.close(devnull)


class BridgeGroup(click.Group):
    command_class = BridgeCommand

    def invoke(self, ctx: click.Context) -> Any:
        def debug() -> bool:  # known once the group's and the subcommand's options are parsed
            return bool(ctx.meta.get("bridge.debug")) or os.environ.get("BRIDGE_DEBUG") == "1"

        # Filtering starts before the subcommand's own --debug is parsed: look for it in the arguments too.
        asked = debug() or "--debug" in sys.argv[1:]
        try:
            with quiet_frameworks(debug=asked):
                return super().invoke(ctx)
        except BrokenPipeError:  # `bridge inspect ... | head`: what was written was wanted, the rest was not
            _quiet_stdout()
            ctx.exit(0)
        except BridgeError as e:
            if debug():
                raise
            click.echo(click.style("error: ", fg="red", bold=True) + str(e), err=True)
            ctx.exit(e.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if debug():
                raise
            click.echo(
                click.style("internal error: ", fg="red", bold=True) + f"{type(e).__name__}: {e}. This is "
                "a bug (in bridge, or in a framework it called), not your input: rerun with --debug for "
                "the traceback and report it.",
                err=True,
            )
            ctx.exit(INTERNAL_ERROR)
