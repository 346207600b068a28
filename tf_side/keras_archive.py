"""Reader of the Keras 3 ``.keras`` archive, with h5py only.

A zip of ``metadata.json``, ``config.json`` and ``model.weights.h5`` (Keras'
``saving_lib``; tf.keras 2.13+ writes the same archive).  The inner h5 is opened
in place: a stored member through a window on the archive, a compressed one by
streaming it into a temporary file (never the whole archive into memory); its
records are those of a Keras 3 ``.weights.h5`` (:mod:`tf_side.keras3_weights`).
"""

from __future__ import annotations

import io
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

from bridge.core.errors import CorruptCheckpoint, FormatNotRecognized, UnsupportedFeature
from bridge.core.jsonio import load_json
from bridge.core.limits import check_inflate
from bridge.core.model import Checkpoint
from bridge.core.source import Window
from tf_side.h5io import H5_ERRORS, Source, check_file, guarded, hint_redownload, wrap_open_error
from tf_side.keras3_weights import keras3_records
from tf_side.signatures import ARCHIVE_CONFIG, ARCHIVE_METADATA, ZIP_ERRORS, ZIP_SIGNATURE, sniff_keras_archive

__all__ = [
    "read_keras_archive",
    "sniff_keras_archive",
]


# Member names written by Keras' saving_lib (_VARS_FNAME_H5, _VARS_FNAME_NPZ); config and metadata: tf_side.h5_sniff.
_ARCHIVE_WEIGHTS = "model.weights.h5"
_ARCHIVE_WEIGHTS_NPZ = "model.weights.npz"
# config.json and metadata.json are a few KiB; a member inflating past this is not one Keras wrote.
_MAX_JSON_MEMBER = 64 << 20


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes start: after its local header (30 bytes + name + extra)."""
    header = b""
    if info.header_offset >= 0:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            header = fh.read(30)
    if len(header) != 30 or header[:4] != ZIP_SIGNATURE:
        raise CorruptCheckpoint(
            "Bad zip local header",
            path=path,
            detail=f"member {info.filename!r} at offset {info.header_offset}",
            hint=hint_redownload(path),
        )
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return int(info.header_offset) + 30 + int(name_len) + int(extra_len)


def _archive_opener(path: Path, info: zipfile.ZipInfo, display: str) -> Callable[[], tuple[h5py.File, list[io.IOBase]]]:
    def opener() -> tuple[h5py.File, list[io.IOBase]]:
        inner: io.IOBase
        if info.compress_type == zipfile.ZIP_STORED:
            # Keras writes the member stored: read it in place, no copy.
            inner = Window(path, _member_data_offset(path, info), info.file_size)
        else:
            # A compressed member cannot be seeked cheaply (zipfile re-inflates from
            # the start on every backward seek): inflate it once into a temp file, no
            # larger than the limit on inflation allows (a zip bomb declares terabytes).
            check_inflate(
                info.file_size, info.compress_size, path=display, tensor=info.filename, how="deflate-compressed"
            )
            inner = tempfile.TemporaryFile()  # closed with the Source
            try:
                with zipfile.ZipFile(path) as zf, zf.open(info) as member:
                    shutil.copyfileobj(member, inner, 1 << 20)
            except ZIP_ERRORS as exc:  # a bad CRC, a damaged deflate stream, an unknown method
                inner.close()
                raise CorruptCheckpoint(
                    f"Cannot inflate {info.filename} in Keras archive",
                    path=path,
                    detail=f"{type(exc).__name__}: {exc}",
                    hint=hint_redownload(path),
                ) from None
            inner.seek(0)
        try:
            return h5py.File(inner, "r"), [inner]
        except H5_ERRORS as exc:
            inner.close()
            raise wrap_open_error(display, exc) from None

    return opener


def _load_json_member(zf: zipfile.ZipFile, path: Path, member: str) -> dict[str, Any]:
    # json.load only: config.json may name Lambda layers and custom objects; nothing
    # in it is deserialised into Python objects or run.
    try:
        with zf.open(member) as fh:
            text = fh.read(_MAX_JSON_MEMBER + 1)
    except ZIP_ERRORS as exc:
        raise CorruptCheckpoint(
            f"Unreadable {member} in Keras archive", path=path, detail=str(exc), hint=hint_redownload(path)
        ) from None
    if len(text) > _MAX_JSON_MEMBER:
        raise CorruptCheckpoint(
            f"Unreadable {member} in Keras archive",
            path=path,
            detail=f"it inflates past {_MAX_JSON_MEMBER >> 20} MiB",
            hint=hint_redownload(path),
        )
    value = load_json(text, path=path, what=f"{member} in Keras archive", hint=hint_redownload(path))
    return value if isinstance(value, dict) else {}


def read_keras_archive(path: Path) -> Checkpoint:
    """A Keras 3 ``.keras`` zip: the inner ``model.weights.h5``, read in place."""
    check_file(path)
    with open(path, "rb") as fh:
        if fh.read(4) != ZIP_SIGNATURE:
            raise FormatNotRecognized(
                "Not a .keras archive",
                path=path,
                detail="it does not start with a zip header",
                hint="Let bridge detect the format instead of passing --format keras",
            )
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            if _ARCHIVE_WEIGHTS not in members:
                if _ARCHIVE_WEIGHTS_NPZ in members:
                    raise UnsupportedFeature(
                        "Keras archive stores its weights as .npz",
                        path=path,
                        detail=f"found {_ARCHIVE_WEIGHTS_NPZ}, not {_ARCHIVE_WEIGHTS}",
                        hint="Re-save with Keras' default H5 weights store (model.save('x.keras'))",
                    )
                if "model.weights.json" in members:
                    raise UnsupportedFeature(
                        "Keras archive with sharded weights",
                        path=path,
                        detail="found model.weights.json instead of model.weights.h5",
                        hint="Extract the archive and load its model.weights.json",
                    )
                raise CorruptCheckpoint(
                    f"No {_ARCHIVE_WEIGHTS} in Keras archive",
                    path=path,
                    detail=f"members are {sorted(members)}",
                    hint="Re-save the model with model.save('x.keras'), or load the .weights.h5 directly",
                )
            info = members[_ARCHIVE_WEIGHTS]
            if info.flag_bits & 0x1:
                raise UnsupportedFeature(
                    "Encrypted zip member",
                    path=path,
                    detail=_ARCHIVE_WEIGHTS,
                    hint="Decrypt the archive first",
                )
            keras_meta = _load_json_member(zf, path, ARCHIVE_METADATA) if ARCHIVE_METADATA in members else {}
            config = _load_json_member(zf, path, ARCHIVE_CONFIG) if ARCHIVE_CONFIG in members else {}
    except ZIP_ERRORS as exc:
        raise CorruptCheckpoint(
            "Not a readable zip archive", path=path, detail=str(exc), hint=hint_redownload(path)
        ) from None

    display = f"{path}!{_ARCHIVE_WEIGHTS}"
    source = Source(display, _archive_opener(path, info, display), int(info.file_size))
    f = source.file()

    def build() -> Checkpoint:
        records, metadata = keras3_records(source, f, offsets=False)  # offsets would be inner-file ones
        for key in ("keras_version", "date_saved"):
            if key in keras_meta:
                metadata[key] = keras_meta[key]
        inner_config = config.get("config")
        if "class_name" in config:
            metadata["model_class"] = config["class_name"]
        if isinstance(inner_config, dict) and isinstance(inner_config.get("name"), str):
            metadata["model_name"] = inner_config["name"]
        metadata["weights_member"] = _ARCHIVE_WEIGHTS
        metadata["compressed"] = info.compress_type != zipfile.ZIP_STORED
        return Checkpoint(
            records,
            format="keras",
            path=str(path),
            files=[str(path)],
            framework="keras",
            metadata=metadata,
            closer=source.close,
        )

    return guarded(source, build)
