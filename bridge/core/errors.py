"""One exception family for the whole project; the CLI catches it once.

Messages follow one template so that a person can act on them::

    <what> in '<file>' for tensor `<name>`: <detail>. <fix>

Every error carries the ``path`` and, where there is one, the ``tensor`` it is
about, plus a ``hint`` that says what to do.  Subclasses also derive from the
builtin a caller would naturally catch (``FileNotFoundError``, ``ValueError``...).
"""

from __future__ import annotations

from os import PathLike


class BridgeError(Exception):
    """Base class of every error this project raises on purpose.

    Args:
        what: the short statement of the problem (``"Checksum mismatch"``).
        path: the file (or directory) the problem is in.
        tensor: the tensor name, where the problem concerns one tensor.
        detail: what was expected and what was found.
        hint: the fix: a command, a flag, a package to install.
    """

    exit_code = 2

    def __init__(
        self,
        what: str,
        *,
        path: str | PathLike[str] | None = None,
        tensor: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.tensor = tensor
        self.detail = detail
        self.hint = hint
        super().__init__(self._compose())

    def __str__(self) -> str:
        # KeyError would otherwise print the repr of the message.
        return self._compose()

    def _compose(self) -> str:
        text = self.what
        if self.path is not None:
            text += f" in '{self.path}'"
        if self.tensor is not None:
            text += f" for tensor `{self.tensor}`"
        if self.detail:
            text += f": {self.detail}"
        text = text.rstrip(".") + "."
        if self.hint:
            text += " " + (self.hint if self.hint.endswith(("?", "!", ".")) else self.hint + ".")
        return text


class CheckpointNotFound(BridgeError, FileNotFoundError):
    """A path, a shard or a companion file does not exist."""


class FormatNotRecognized(BridgeError, ValueError):
    """No registered format claims the path."""


class CorruptCheckpoint(BridgeError, ValueError):
    """The bytes on disk contradict the format: truncation, bad magic, CRC mismatch."""


class UnsafeCheckpoint(BridgeError, ValueError):
    """The file asks to run code (a pickle global outside the allow-list)."""


class UnsupportedFeature(BridgeError, NotImplementedError):
    """A valid file uses a feature this project does not read yet."""


class MissingDependency(BridgeError, ImportError):
    """An optional framework is needed for this operation and is not installed."""


class UsageError(BridgeError, ValueError):
    """The caller asked for something inconsistent (an unknown format name, a bad pattern)."""


class TensorNotFound(BridgeError, KeyError):
    """A tensor name that the checkpoint does not hold."""


class SizeLimitExceeded(BridgeError, ValueError):
    """A value would take far more memory than the bytes the file holds for it (a decompression or a broadcast)."""
