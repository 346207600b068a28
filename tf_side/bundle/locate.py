"""Where a tensor bundle lies: the prefix ``P`` (``P.index`` + ``P.data-%05d-of-%05d``) a path designates.

A path may be the prefix, its ``.index``, a ``.data-*`` shard or the TF1 ``.meta`` beside it, a directory with a
``checkpoint`` state file or a single ``*.index``, or a SavedModel / TF1 Hub module (its ``variables/variables``).
"""

from __future__ import annotations

import codecs
import glob
import os
import re
from pathlib import Path

from bridge.core.errors import CheckpointNotFound, UsageError
from bridge.core.source import RemotePath, as_path

_DATA_NAME = re.compile(r"(?P<prefix>.+)\.data-\d{5,}-of-\d{5,}")
_STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb")


def data_filename(prefix: str | os.PathLike[str], shard: int, num_shards: int) -> str:
    """``DataFilename`` of ``tensor_bundle/naming.cc``."""
    return f"{os.fspath(prefix)}.data-{shard:05d}-of-{num_shards:05d}"


def _is_saved_model_dir(path: Path) -> bool:
    return (path / "variables").is_dir() and any((path / name).is_file() for name in _SAVED_MODEL_FILES)


def index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _prefix_from_state(directory: Path) -> Path | None:
    """The latest checkpoint named by a ``checkpoint`` state file (a text-format proto)."""
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    try:
        with state.open("rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    match = _STATE_LINE.search(text)
    if match is None:
        return None
    # Text-format strings use C escapes.
    value = codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8", "surrogateescape")
    prefix = Path(value)
    if isinstance(directory, RemotePath):
        # A path recorded by the machine that trained names nothing behind a URL: the prefix sits beside the state.
        return directory / prefix.name
    if not prefix.is_absolute():
        prefix = directory / prefix
    if not index_of(prefix).exists() and index_of(directory / prefix.name).exists():
        # TF1 Saver often recorded absolute paths of the machine that trained; the
        # directory has since been moved or downloaded.
        prefix = directory / prefix.name
    return prefix


def _claims(path: Path) -> bool:
    if path.is_dir():
        if _is_saved_model_dir(path):
            return False
        return _prefix_from_state(path) is not None or any(path.glob("*.index"))
    if path.name.endswith(".index"):
        return path.is_file()
    if index_of(path).is_file():
        return True
    if _DATA_NAME.fullmatch(path.name) and path.is_file():
        return True
    if path.suffix == ".meta" and index_of(path.with_suffix("")).is_file():
        return True  # the TF1 MetaGraphDef beside the bundle
    # A prefix whose .index is missing but whose data shards exist: ours, to say so.
    return not path.exists() and any(path.parent.glob(glob.escape(path.name) + ".data-*-of-*"))


def locate(path: Path) -> Path:
    """The prefix ``P`` (``P.index`` + ``P.data-*``) that ``path`` designates."""
    if path.is_dir():
        if _is_saved_model_dir(path) and index_of(path / "variables" / "variables").is_file():
            return path / "variables" / "variables"  # asked for as a plain checkpoint (--format)
        prefix = _prefix_from_state(path)
        if prefix is not None:
            if not index_of(prefix).is_file():
                raise CheckpointNotFound(
                    "Checkpoint named by the state file not found",
                    path=path / "checkpoint",
                    detail=f"model_checkpoint_path points at '{prefix}', which has no .index file",
                    hint="Pass a checkpoint prefix explicitly (e.g. DIR/model.ckpt-1000)",
                )
            return prefix
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_name(indexes[0].name[: -len(".index")])
        if not indexes:
            raise CheckpointNotFound(
                "No TensorFlow checkpoint in directory",
                path=path,
                detail="no 'checkpoint' state file and no *.index file",
                hint="Pass the checkpoint prefix or its .index file",
            )
        names = ", ".join(p.name[: -len(".index")] for p in indexes[:8])
        raise UsageError(
            "Several checkpoints in directory",
            path=path,
            detail=f"{len(indexes)} *.index files and no 'checkpoint' state file: {names}",
            hint="Pass one prefix, e.g. " + str(indexes[-1])[: -len(".index")],
        )
    if path.name.endswith(".index") and path.is_file():
        return path.with_name(path.name[: -len(".index")])
    match = _DATA_NAME.fullmatch(path.name)
    if match and path.is_file():
        path = path.with_name(match.group("prefix"))
    elif path.suffix == ".meta" and path.is_file():
        path = path.with_suffix("")
    if not index_of(path).is_file():
        raise CheckpointNotFound(
            "Checkpoint index not found",
            path=index_of(path),
            detail="a TensorFlow checkpoint needs its .index file beside the .data-* shards",
            hint="Copy the .index file too, or pass the prefix of a complete checkpoint",
        )
    return path


def sniff_checkpoint(path: Path) -> bool:
    """True for a ``.index`` file, a prefix with one, or a directory of TF checkpoints.

    SavedModel directories are left to :func:`sniff_saved_model`.
    """
    try:
        return _claims(as_path(path))
    except OSError:
        return False


def saved_model(path: Path) -> tuple[Path, str] | None:
    directory = path.parent if path.is_file() and path.name in _SAVED_MODEL_FILES else path
    if not directory.is_dir():
        return None
    directory = _latest_version(directory)
    if (directory / "tfhub_module.pb").is_file():
        container = "tfhub-module"
    elif (directory / "saved_model.pb").is_file() or (directory / "saved_model.pbtxt").is_file():
        container = "saved-model"
    else:
        return None
    return directory, container


def _latest_version(directory: Path) -> Path:
    """A TF Serving model base path (``model/123/saved_model.pb``): its highest numbered version, as Serving loads."""
    if any((directory / name).is_file() for name in _SAVED_MODEL_FILES):
        return directory
    versions = [d for d in directory.iterdir() if d.name.isdigit() and (d / "saved_model.pb").is_file()]
    return max(versions, key=lambda d: int(d.name)) if versions else directory


def sniff_saved_model(path: Path) -> bool:
    """True for a SavedModel / TF1 Hub module directory with a ``variables/variables`` bundle."""
    try:
        found = saved_model(as_path(path))
        return found is not None and (found[0] / "variables" / "variables.index").is_file()
    except OSError:
        return False
