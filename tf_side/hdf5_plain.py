"""Reader of any other HDF5 file, with h5py only: every dataset by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.core.model import Checkpoint, TensorRecord
from tf_side.h5io import guarded, open_plain, record, walk
from tf_side.signatures import hdf5_base, sniff_plain_hdf5

__all__ = [
    "read_plain_hdf5",
    "sniff_plain_hdf5",
]


def read_plain_hdf5(path: Path) -> Checkpoint:
    """Any HDF5 file: every dataset by path; datasets that are not tensors are skipped."""
    source, f = open_plain(path)

    def build() -> Checkpoint:
        records: list[TensorRecord] = []
        skipped: dict[str, str] = {}
        for name, ds in walk(f):
            result = record(source, ds, name)
            if isinstance(result, str):
                skipped[name] = result
            else:
                records.append(result)
        metadata: dict[str, Any] = {}
        if skipped:
            metadata["skipped"] = skipped
        base = hdf5_base(path)
        if base:
            metadata["userblock"] = base
        return Checkpoint(
            records,
            format="hdf5",
            path=str(path),
            files=[str(path)],
            framework="hdf5",
            metadata=metadata,
            closer=source.close,
        )

    return guarded(source, build)
