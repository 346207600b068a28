"""The command name to print in a suggested command line: the one the user typed.

``bridge`` is also iproute2's command on most Linux machines, so a user who ran ``ckpt-bridge`` (or ``python -m
bridge``) must be shown that, never a ``bridge ...`` line that runs something else.
"""

from __future__ import annotations

import os
import sys

_INSTALLED = ("bridge", "ckpt-bridge")  # [project.scripts] in pyproject.toml
_DEFAULT = "bridge"  # the Python API, a test runner: the documented name


def command_name() -> str:
    """``ckpt-bridge``, ``bridge`` or ``python -m bridge``, as this process was started; ``bridge`` otherwise."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = os.path.basename(argv0)
    for installed in _INSTALLED:
        if name in (installed, f"{installed}.exe", f"{installed}-script.py"):
            return installed
    if name == "__main__.py" and os.path.basename(os.path.dirname(argv0)) == "bridge":
        return "python -m bridge"
    return _DEFAULT
