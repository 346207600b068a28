"""The Python API; the CLI is a thin shell over these functions."""

from __future__ import annotations

import os

from bridge import formats
from bridge.core.model import Checkpoint
from bridge.core.source import as_path


def load(path: str | os.PathLike[str], *, format: str | None = None) -> Checkpoint:
    """Open a checkpoint of any registered format, reading only its index.

    Args:
        path: a file, a directory, or a TF checkpoint prefix (``model.ckpt-1000``).
        format: a registry name to skip detection (``bridge formats`` lists them).

    Returns:
        A :class:`~bridge.core.model.Checkpoint`; values are read when asked for.

    Raises:
        CheckpointNotFound: nothing exists at ``path``.
        FormatNotRecognized: no format claims it.
        CorruptCheckpoint: the index contradicts the format.

    Example:
        >>> import bridge
        >>> ckpt = bridge.load("examples/tiny-bert/bert_model.ckpt")   # doctest: +SKIP
        >>> ckpt["bert/pooler/dense/kernel"].numpy().shape             # doctest: +SKIP
        (16, 16)
    """
    p = as_path(path)  # a URL reads by range requests (bridge.core.source)
    fmt = formats.get(format) if format else formats.detect(p)
    return fmt.reader(p)
