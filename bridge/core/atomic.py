"""Outputs appear whole or not at all: written into a temporary sibling, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.core.errors import UsageError


class OutputExists(UsageError):
    """The output path exists and overwriting was not asked for."""


@contextmanager
def atomic_directory(out: Path, *, force: bool = False, inputs: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``out`` when the block succeeds.

    On any exception (Ctrl-C included) the temporary directory is removed and
    ``out`` is left as it was.  An existing ``out`` is replaced only with
    ``force``, and never when it is, or contains, one of ``inputs``.
    """
    out = out.absolute()
    for src in inputs:
        src = src.absolute()
        if src == out or out in src.parents:
            raise UsageError(
                "Refusing to write over an input",
                path=out,
                detail=f"it holds the input {src}",
                hint="Choose another output directory",
            )
    if out.exists() and not force:
        raise OutputExists("Output already exists", path=out, hint="Pass --force to replace it, or choose another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the output should look like any new directory
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
