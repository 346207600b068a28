"""The sniffs of the Keras HDF5 formats, light enough to run on every input detection asks about.

Each looks at names and first bytes first (:mod:`tf_side.signatures`) and imports its reader, and with it h5py, only
for a file that carries HDF5's signature, a shard index named like one, or a folder holding transformers'
``tf_model.h5``.
"""

from __future__ import annotations

from pathlib import Path

from tf_side.signatures import HF_TF_INDEX, HF_TF_WEIGHTS, sniff_plain_hdf5

__all__ = ["sniff_keras3_weights", "sniff_legacy_h5"]


def sniff_keras3_weights(path: Path) -> bool:
    """A Keras 3 ``.weights.h5`` or its ``.weights.json`` shard index (h5py only past the signature)."""
    if not path.name.endswith(".weights.json") and not sniff_plain_hdf5(path):
        return False
    from tf_side.keras3_weights import sniff_keras3_weights as sniff

    return sniff(path)


def sniff_legacy_h5(path: Path) -> bool:
    """A Keras 2 / tf-keras / transformers ``.h5`` or a folder holding one (h5py only past these names and bytes)."""
    candidate = path.is_dir() and any((path / name).is_file() for name in (HF_TF_WEIGHTS, HF_TF_INDEX))
    if not candidate and not path.name.endswith(".h5.index.json") and not sniff_plain_hdf5(path):
        return False
    from tf_side.keras2_h5 import sniff_legacy_h5 as sniff

    return sniff(path)
