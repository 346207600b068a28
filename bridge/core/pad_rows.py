"""The padding token's row of a word-embedding table: which id, its norm against the table's typical row, whether
the table is also the output projection, and why it is not zero.

Which tensor is the table, the family's default pad id and whether it is tied come from the pack
(:class:`bridge.core.packs.WordEmbeddings`); the pad id itself from ``config.json``'s ``pad_token_id``, else the
line ``[PAD]`` of a ``vocab.txt`` beside the checkpoint, else that default.

``check`` and ``convert`` only note the row, so of a large table they read the pad row and an even sample of rows
(:data:`SAMPLE_BYTES`, where the format reads rows alone) for the typical norm; ``inspect --stats`` reads it all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import BridgeError
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.packs import RulePack
from bridge.core.source import as_path


@dataclass(frozen=True)
class PadRow:
    """The padding row of one word-embedding table."""

    table: str  # the tensor (its readable path when it has one)
    pad_token_id: int
    pad_from: str  # where the id came from: "config.json", "vocab.txt" or "the <pack> default"
    rows: int
    norm: float
    median_norm: float  # the typical row's norm
    tied: bool  # the table is also the output projection (an MLM decoder)
    sampled_rows: int | None = None  # median_norm is of this many rows, evenly spread (None: of every row)

    @property
    def zero(self) -> bool:
        return self.norm == 0.0

    @property
    def explanation(self) -> str | None:
        """Why the row is not zero (None when it is)."""
        if self.zero:
            return None
        text = (
            f"the checkpoint was trained without padding_idx: row {self.pad_token_id} was initialised like every "
            "other row and holds what training left; nn.Embedding(padding_idx=...) only stops that row's gradient "
            "from the input side (and its zero initialisation is overwritten on load)"
        )
        if self.tied:
            text += "; the table is tied to the output projection, so the decoder's gradient reaches every row"
        return text + ". Harmless: attention masks keep padded positions out; bridge keeps the row as it is"

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "pad_token_id": self.pad_token_id,
            "pad_token_id_from": self.pad_from,
            "rows": self.rows,
            "norm": self.norm,
            "median_norm": self.median_norm,
            "median_of": "every row" if self.sampled_rows is None else f"a sample of {self.sampled_rows} rows",
            "ratio": self.norm / self.median_norm if self.median_norm else None,
            "tied": self.tied,
            "zero": self.zero,
            "explanation": self.explanation,
        }


def _config(folder: Path) -> dict[str, Any]:
    """``config.json`` beside the checkpoint, or nothing (an unreadable one is the config reader's to report)."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        loaded = load_json(path.read_bytes(), path=path, what="config", hint="Pass a JSON config file")
    except (OSError, BridgeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def pad_token_id(folder: Path, default: int | None) -> tuple[int, str] | None:
    """``config.json``'s ``pad_token_id``, else ``[PAD]``'s line in ``vocab.txt``, else the family default."""
    value = _config(folder).get("pad_token_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value, "config.json"
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        with vocab.open(encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if line.rstrip("\r\n") == "[PAD]":
                    return i, "vocab.txt"
    return None if default is None else (default, "default")


def _row_norms(table: np.ndarray, rows_per_chunk: int = 4096) -> np.ndarray:
    """Each row's L2 norm, in float64 a chunk at a time (no float64 copy of a whole vocabulary-sized table)."""
    norms = np.empty(table.shape[0], dtype=np.float64)
    for start in range(0, table.shape[0], rows_per_chunk):
        norms[start : start + rows_per_chunk] = np.linalg.norm(
            table[start : start + rows_per_chunk].astype(np.float64), axis=1
        )
    return norms


# Of a table over SAMPLE_BYTES * FULL_READ_FACTOR, a note reads SAMPLE_BYTES of rows in SAMPLE_BLOCKS even runs
# (BERT-base: 340 of 30,522 rows, 1 MiB of 94 MB).
SAMPLE_BYTES = 1 << 20
SAMPLE_BLOCKS = 16
FULL_READ_FACTOR = 4


def _median(values: np.ndarray) -> float:
    """np.median's value without its import of numpy.ma (a tenth of a command's start-up)."""
    ordered = np.sort(values)
    return float((ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2)


def _sampled_norms(record: TensorRecord, pad: int) -> tuple[float, np.ndarray, int] | None:
    """The pad row's norm and a sample's norms, read row-wise; None when the table is small or not row-readable."""
    rows = record.shape[0]
    row_bytes = record.nbytes // rows if rows else 0
    if record.row_reader is None or not row_bytes or record.nbytes <= SAMPLE_BYTES * FULL_READ_FACTOR:
        return None
    block = max(1, SAMPLE_BYTES // row_bytes // SAMPLE_BLOCKS)
    starts = np.linspace(0, rows - block, SAMPLE_BLOCKS).astype(np.int64)
    sample = np.concatenate([_row_norms(record.row_reader(int(a), int(a) + block)) for a in starts])
    pad_norm = float(_row_norms(record.row_reader(pad, pad + 1))[0])
    return pad_norm, sample, len(sample)


def pad_rows(
    ckpt: Checkpoint, packs: list[RulePack], names: set[str] | None = None, *, sample: bool = False
) -> list[PadRow]:
    """The pad row of the first table a pack declares (``names``: only these records), or nothing.

    ``sample``: of a large table read the pad row and a sample of rows (unchecksummed) instead of all of it.
    """
    kept = [r for r in ckpt.values() if r.kind == "model" and (names is None or r.name in names)]
    all_names = {r.name for r in ckpt.values()}
    base = as_path(ckpt.path)
    folder = base if base.is_dir() else base.parent
    for pack in packs:
        spec = pack.word_embeddings
        if spec is None:
            continue
        record = next((r for r in kept if len(r.shape) == 2 and spec.matches(r.name)), None)
        if record is None:
            continue
        found = pad_token_id(folder, spec.pad_token_id)
        if found is None or not 0 <= found[0] < record.shape[0]:
            return []
        pad, origin = found
        try:
            sampled = _sampled_norms(record, pad) if sample else None
            if sampled is None:
                norms = _row_norms(record.numpy())
                pad_norm, typical, sampled_rows = float(norms[pad]), norms, None
            else:
                pad_norm, typical, sampled_rows = sampled
        except BridgeError:  # data missing or damaged: check warns of it already; convert and verify refuse it
            return []
        tied = bool(spec.tied(all_names, _config(folder))) if spec.tied is not None else False
        return [
            PadRow(
                record.path or record.name,
                pad,
                f"the {pack.name} default" if origin == "default" else origin,
                int(record.shape[0]),
                pad_norm,
                _median(typical),
                tied,
                sampled_rows,
            )
        ]
    return []
