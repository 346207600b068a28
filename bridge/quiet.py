"""Keep the frameworks' start-up chatter out of bridge's reports, and nothing else.

TensorFlow's native libraries log to file descriptor 2 before absl's logging is initialised (oneDNN, the CUDA stub,
``cpu_feature_guard``, ``cuInit`` on a machine without a GPU), ignoring ``TF_CPP_MIN_LOG_LEVEL``; transformers and
the frameworks raise ``FutureWarning``/``DeprecationWarning`` about their own APIs.  None of it is about the user's
checkpoint.  While a command runs, descriptor 2 goes through a filter that drops exactly those lines (absl INFO and
WARNING lines, the ``cuInit`` error of a CPU-only machine) and passes every other byte through as it comes: real
errors, tracebacks and bridge's own messages stay.  ``--debug``/``BRIDGE_DEBUG=1`` shows everything, and warnings
options the user gives (``-W``, ``PYTHONWARNINGS``) win.

The filter makes descriptor 2 a pipe, so whether the user sees a terminal is remembered before: progress bars ask
:func:`stderr_is_terminal` and write to :func:`bar_file`, and on a terminal a slow framework import first says
``loading TensorFlow...`` (a pipe or a CI log gets neither).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, ParamSpec, TextIO, TypeVar

# absl's "I0000 00:00:1795989095.023704   23550 port.cc:153] ..." (INFO and WARNING: what TF_CPP_MIN_LOG_LEVEL=2
# would drop, if it applied before absl starts) and the lines that come with them.
_NOISE = re.compile(
    rb"(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_[\w.-]+:\d+\] failed call to cuInit"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags)"
)
_P = ParamSpec("_P")
_R = TypeVar("_R")
_NOISE_STARTS = (b"I", b"W", b"E", b"T")
_ENV_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's INFO and WARNING once absl is up (errors stay)
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' logging: errors only
}

# top-level modules whose first import takes seconds -> the name said while it loads
_SLOW_IMPORTS = {
    "tensorflow": "TensorFlow",
    "torch": "PyTorch",
    "transformers": "transformers",
    "keras": "Keras",
    "tf_keras": "tf-keras",
}
_terminal: list[bool] = []  # whether descriptor 2 was a terminal when the filter took it (innermost last)


def stderr_is_terminal() -> bool:
    """Whether the user's stderr is a terminal, also while the filter has made descriptor 2 a pipe."""
    if _terminal:
        return _terminal[-1]
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


class _TerminalStderr:
    """``sys.stderr`` as a terminal: its text still passes the filter (in order with every other line), but a
    progress bar that asks ``isatty()`` learns the truth about where it ends up."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return True


def bar_file() -> TextIO | Any:
    """Where a progress bar writes: stderr, which reads as a terminal when the user's is one."""
    if stderr_is_terminal() and not sys.stderr.isatty():
        return _TerminalStderr()
    return sys.stderr


class _ImportAnnouncer:
    """A meta path finder that finds nothing: it says ``loading TensorFlow...`` before the first import of a
    slow framework, then lets the real finders do the work."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        label = _SLOW_IMPORTS.get(name)
        if label is not None and name not in sys.modules and _importing():
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"loading {label}...\n")
                sys.stderr.flush()
        return None


def _importing() -> bool:
    """Whether the finders are asked by an import statement, not by a probe (``importlib.util.find_spec``, which a
    library calls to learn whether a framework is installed, and which loads nothing)."""
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            break
        if frame.f_code.co_name == "_find_and_load_unlocked":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def _announced_imports() -> Iterator[None]:
    """Slow framework imports announce themselves while inside, on a terminal only."""
    if not stderr_is_terminal():
        yield
        return
    announcer = _ImportAnnouncer()
    sys.meta_path.insert(0, announcer)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(announcer)


@contextlib.contextmanager
def quiet_frameworks(debug: bool = False) -> Iterator[None]:
    """Run a command with the frameworks' start-up noise filtered out of stderr (see the module)."""
    _terminal.append(stderr_is_terminal())
    try:
        if debug:
            with _announced_imports():
                yield
            return
        unset = [key for key in _ENV_DEFAULTS if key not in os.environ]
        os.environ.update({key: _ENV_DEFAULTS[key] for key in unset})  # read when a framework is imported
        try:
            with warnings.catch_warnings(), _filtered_fd2(), _announced_imports():
                if not sys.warnoptions:
                    warnings.simplefilter("ignore", FutureWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                yield
        finally:
            for key in unset:  # an API caller's environment is theirs again
                os.environ.pop(key, None)
    finally:
        _terminal.pop()


def quietly(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """An API entry point that may import a framework runs inside the same filter as a command (and inside a
    command, which filters already, as it is); the caller's stderr, warnings filters and environment are theirs
    again when it returns.  ``BRIDGE_DEBUG=1`` shows everything."""

    @functools.wraps(function)
    def filtered(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _terminal:
            return function(*args, **kwargs)
        with quiet_frameworks(debug=os.environ.get("BRIDGE_DEBUG") == "1"):
            return function(*args, **kwargs)

    return filtered


@contextlib.contextmanager
def _filtered_fd2() -> Iterator[None]:
    """Descriptor 2 through a pipe whose reader drops :data:`_NOISE` lines; restored (and drained) on exit."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (an embedding host): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        passing = False  # the current line was already judged and partly written (a progress bar's `\r`)
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if passing or not _NOISE.match(line):
                        os.write(saved, line + b"\n")
                    passing = False
                # A line no noise line begins like goes out now, not when its newline comes.
                if pending and (passing or pending[:1] not in _NOISE_STARTS):
                    os.write(saved, pending)
                    pending, passing = b"", True
            if pending and (passing or not _NOISE.match(pending)):
                os.write(saved, pending)

    thread = threading.Thread(target=pump, name="bridge-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer (unless a child process still holds it) closes: the pump ends
        thread.join(timeout=2)
        os.close(saved)
