"""The names and first bytes of the Keras and HDF5 formats, with the standard library alone (no h5py).

Detection asks each format in turn whether it claims a path, so what is here runs on TF checkpoints, safetensors and
torch files too; :mod:`tf_side.h5_sniff` reaches h5py only past these checks.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from bridge.core.source import BLOCK, is_remote

__all__ = [
    "ARCHIVE_CONFIG",
    "ARCHIVE_METADATA",
    "HDF5_SIGNATURE",
    "HF_TF_INDEX",
    "HF_TF_WEIGHTS",
    "ZIP_ERRORS",
    "ZIP_SIGNATURE",
    "hdf5_base",
    "sniff_keras_archive",
    "sniff_plain_hdf5",
]

# The HDF5 superblock signature.  The library looks for it at offset 0 and, when
# the file has a user block, at every power of two from 512 up to the end of file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

ZIP_SIGNATURE = b"PK\x03\x04"
# Member names written by Keras' saving_lib (_CONFIG_FILENAME, _METADATA_FILENAME); tf.keras 2.13+ writes the same.
ARCHIVE_CONFIG = "config.json"
ARCHIVE_METADATA = "metadata.json"
# What zipfile raises on a damaged archive: besides BadZipFile, a bad deflate stream is zlib.error, a short one
# EOFError, an unknown compression method NotImplementedError, impossible header fields ValueError/OverflowError.
ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    OSError,
    ValueError,
    OverflowError,
)

# transformers' save_pretrained names for TF weights (TF2_WEIGHTS_NAME, TF2_WEIGHTS_INDEX_NAME).
HF_TF_WEIGHTS = "tf_model.h5"
HF_TF_INDEX = "tf_model.h5.index.json"


def hdf5_base(path: Path) -> int | None:
    """Offset of the HDF5 signature (0 or a user-block size), or None if absent."""
    try:
        size = path.stat().st_size
        # Behind a URL each probe may be a request: a user block past the first block (Keras writes none) is not sought.
        end = min(size, BLOCK) if is_remote(path) else size
        with path.open("rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= end:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return offset
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return None
    return None


def sniff_plain_hdf5(path: Path) -> bool:
    """Any HDF5 file, by its signature (at 0 or after a user block)."""
    return path.is_file() and hdf5_base(path) is not None


def sniff_keras_archive(path: Path) -> bool:
    """A ``.keras`` zip: ``config.json`` and ``metadata.json`` at the top.

    A zip named ``*.keras`` is claimed even when unreadable, so that the reader
    reports the damage instead of "format not recognized".
    """
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != ZIP_SIGNATURE:
                return False
        if path.suffix == ".keras":
            return True
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except ZIP_ERRORS:
        return False
    return ARCHIVE_CONFIG in names and ARCHIVE_METADATA in names
