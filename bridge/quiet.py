"""Keep the frameworks' start-up chatter out of bridge's reports, and nothing else.

TensorFlow's native libraries log to file descriptor 2 before absl's logging is initialised (oneDNN, the CUDA stub,
``cpu_feature_guard``, ``cuInit`` on a machine without a GPU), ignoring ``TF_CPP_MIN_LOG_LEVEL``; transformers and
the frameworks raise ``FutureWarning``/``DeprecationWarning`` about their own APIs.  None of it is about the user's
checkpoint.  While a command runs, descriptor 2 goes through a filter that drops exactly those lines (absl INFO and
WARNING lines, the ``cuInit`` error of a CPU-only machine) and passes every other byte through as it comes: real
errors, tracebacks and bridge's own messages stay.  ``--debug``/``BRIDGE_DEBUG=1`` shows everything, and warnings
options the user gives (``-W``, ``PYTHONWARNINGS``) win.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

# absl's "I0000 00:00:1795989095.023704   23550 port.cc:153] ..." (INFO and WARNING: what TF_CPP_MIN_LOG_LEVEL=2
# would drop, if it applied before absl starts) and the lines that come with them.
_NOISE = re.compile(
    rb"(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_[\w.-]+:\d+\] failed call to cuInit"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags)"
)
_NOISE_STARTS = (b"I", b"W", b"E", b"T")
_ENV_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's INFO and WARNING once absl is up (errors stay)
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' logging: errors only
}


@contextlib.contextmanager
def quiet_frameworks(debug: bool = False) -> Iterator[None]:
    """Run a command with the frameworks' start-up noise filtered out of stderr (see the module)."""
    if debug:
        yield
        return
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)  # read when the framework is imported: before any is
    with warnings.catch_warnings(), _filtered_fd2():
        if not sys.warnoptions:
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
        yield


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
